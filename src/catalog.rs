//! What the merge needs to know about the source tables: columns, types and
//! key, read from the PostgreSQL catalog with ordinary SQL.
//!
//! `setup` builds the mirror tables from this, and every merge run reads it
//! again, so a column added on the source reaches the mirror at the next run
//! without manual steps. The key is the primary key, else the columns of the
//! `REPLICA IDENTITY USING INDEX` index, else every column under
//! `REPLICA IDENTITY FULL` (the three the producer accepts).

use tokio_postgres::Client;

use crate::config::SourceConfig;

/// One source table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTable {
    pub schema: String,
    pub name: String,
    /// In column order.
    pub columns: Vec<SourceColumn>,
    /// The key is every column (REPLICA IDENTITY FULL without a primary key
    /// or replica identity index): its values may be NULL, so the merge
    /// compares keys NULL-safe.
    pub nullable_key: bool,
}

/// One column of a source table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceColumn {
    pub name: String,
    /// `format_type()` text, e.g. `numeric(12,2)`, `character varying(40)`, `integer[]`.
    pub type_name: String,
    /// The type's OID; for domains, the base type's.
    pub type_oid: u32,
    /// `pg_type.typcategory`: `A` array, `E` enum, `N` numeric, ...
    pub category: char,
    /// Position in the key (1-based), if part of it.
    pub key_position: Option<usize>,
}

impl SourceTable {
    pub fn key_columns(&self) -> Vec<&SourceColumn> {
        let mut key: Vec<&SourceColumn> = self
            .columns
            .iter()
            .filter(|c| c.key_position.is_some())
            .collect();
        key.sort_by_key(|c| c.key_position);
        key
    }

    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read the source catalog: {}", crate::postgres::pg_message(.0))]
    Query(#[from] tokio_postgres::Error),
    #[error("source table {0} does not exist (check source.tables)")]
    MissingTable(String),
    #[error("source.tables entry {0} matches no table")]
    EmptyPattern(String),
    #[error(transparent)]
    BadEntry(#[from] crate::sql::TableEntryError),
    #[error(
        "source table {0} has no primary key, no replica identity index and no REPLICA IDENTITY FULL: add a primary key or run ALTER TABLE {0} REPLICA IDENTITY FULL"
    )]
    NoKey(String),
}

const TABLES_OF_SCHEMA: &str =
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.relname";

const COLUMNS: &str = "SELECT a.attname, format_type(a.atttypid, a.atttypmod), \
            CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END, \
            CASE WHEN t.typtype = 'd' THEN bt.typcategory ELSE t.typcategory END, \
            (SELECT array_position(i.indkey::int2[], a.attnum) FROM pg_index i \
              WHERE i.indrelid = c.oid AND (i.indisprimary OR (i.indisreplident AND c.relreplident = 'i' \
                AND NOT EXISTS (SELECT 1 FROM pg_index p WHERE p.indrelid = c.oid AND p.indisprimary)))), \
            c.relreplident \
     FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
     JOIN pg_type t ON t.oid = a.atttypid \
     LEFT JOIN pg_type bt ON bt.oid = t.typbasetype \
     WHERE n.nspname = $1 AND c.relname = $2 \
     ORDER BY a.attnum";

/// Expands `schema.*` entries and reads every configured table.
pub async fn read_tables(
    client: &Client,
    source: &SourceConfig,
) -> Result<Vec<SourceTable>, CatalogError> {
    let mut tables = Vec::new();
    for (schema, name) in table_names(client, source).await? {
        tables.push(read_table(client, &schema, &name).await?);
    }
    Ok(tables)
}

/// The configured tables as (schema, name), `schema.*` entries expanded to
/// the schema's tables, in configuration order without repeats. Names are
/// not checked to exist.
pub async fn table_names(
    client: &Client,
    source: &SourceConfig,
) -> Result<Vec<(String, String)>, CatalogError> {
    let mut names: Vec<(String, String)> = Vec::new();
    for entry in &source.tables {
        let parsed = crate::sql::parse_table_entry(entry)?;
        let schema = parsed.schema;
        if let Some(name) = parsed.table {
            names.push((schema, name));
        } else {
            let rows = client.query(TABLES_OF_SCHEMA, &[&schema]).await?;
            if rows.is_empty() {
                return Err(CatalogError::EmptyPattern(entry.clone()));
            }
            names.extend(rows.iter().map(|row| (schema.clone(), row.get(0))));
        }
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    Ok(names)
}

/// Reads one table's columns and key.
pub async fn read_table(
    client: &Client,
    schema: &str,
    name: &str,
) -> Result<SourceTable, CatalogError> {
    let rows = client.query(COLUMNS, &[&schema, &name]).await?;
    if rows.is_empty() {
        return Err(CatalogError::MissingTable(crate::sql::display_qualified(
            schema, name,
        )));
    }
    let replica_identity_full = rows
        .first()
        .map(|r| r.get::<_, i8>(5) as u8 == b'f')
        .unwrap_or(false);
    let mut columns: Vec<SourceColumn> = rows
        .iter()
        .map(|row| SourceColumn {
            name: row.get(0),
            type_name: row.get(1),
            type_oid: row.get(2),
            category: row.get::<_, i8>(3) as u8 as char,
            key_position: row.get::<_, Option<i32>>(4).map(|p| p as usize),
        })
        .collect();
    let nullable_key = columns.iter().all(|c| c.key_position.is_none());
    if nullable_key {
        if !replica_identity_full {
            return Err(CatalogError::NoKey(crate::sql::display_qualified(
                schema, name,
            )));
        }
        for (i, column) in columns.iter_mut().enumerate() {
            column.key_position = Some(i + 1);
        }
    }
    Ok(SourceTable {
        schema: schema.to_owned(),
        name: name.to_owned(),
        columns,
        nullable_key,
    })
}

/// An SQL connection to the source for catalog reads (TLS as the URL says).
pub async fn connect(url: &str) -> Result<Client, crate::postgres::ConnectError> {
    crate::postgres::SourceUrl::parse(url)?.connect().await
}
