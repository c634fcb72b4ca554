//! The source tables as the merge side's commands (`setup`, `merge`,
//! `check`, `verify`) name them: a thin front of the one resolver,
//! [`crate::source::tables`], plus the SQL connection they read it with.

use tokio_postgres::Client;

use crate::config::SourceConfig;
use crate::source::tables;
use crate::sql::TableName;

pub use crate::source::tables::{KeyKind, SourceColumn, SourceTable, TablesError as CatalogError};

/// Every configured table, read and checked (see [`tables::resolve`]).
pub async fn read_tables(
    client: &Client,
    source: &SourceConfig,
) -> Result<Vec<SourceTable>, CatalogError> {
    tables::resolve(client, &source.tables, source.keyless_tables).await
}

/// The configured tables, `schema.*` entries expanded (see
/// [`tables::table_names`]). Names are not checked to exist.
pub async fn table_names(
    client: &Client,
    source: &SourceConfig,
) -> Result<Vec<TableName>, CatalogError> {
    tables::table_names(client, &source.tables).await
}

/// An SQL connection to the source for catalog reads (TLS as the URL says).
pub async fn connect(url: &str) -> Result<Client, crate::postgres::ConnectError> {
    crate::postgres::SourceUrl::parse(url)?.connect().await
}
