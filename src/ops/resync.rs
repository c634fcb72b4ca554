//! `kinesync resync TABLE...`: ask the running producer to copy tables
//! again while it streams (`source::resync` has the protocol), and with
//! `--wait` follow the copy until its sweep is in the stream.
//!
//! Only the source is touched: one row per table in `source.resync_table`
//! (created when missing) and a logical message that wakes the producer.
//! The tables must be ones the producer streams, with a key to copy them
//! in order, on PostgreSQL 14 or later.

use std::time::Duration;

use tokio_postgres::Client;

use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::source::error::SourceError;
use crate::source::replication::connect_sql;
use crate::source::resync;
use crate::source::tables::{admit, describe, table_names, TablesError};
use crate::sql::{self, TableName};

/// How often `--wait` looks at the requests.
const WAIT_POLL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ResyncError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Tables(#[from] TablesError),
    #[error("resync: {table} is not in source.tables ({tables}): only tables the producer streams can be re-synced")]
    NotConfigured { table: String, tables: String },
    #[error("resync: {table} has no primary key or replica identity index, so it cannot be copied in key order: add a primary key (or a unique index and REPLICA IDENTITY USING INDEX), or re-sync by recreating the slot (docs/operations.md)")]
    Keyless { table: TableName },
    #[error("resync: the source is PostgreSQL {version}: {reason}")]
    Unsupported {
        version: String,
        reason: &'static str,
    },
    #[error("resync: {0}")]
    StateTable(#[from] resync::StateTableError),
    #[error("resync: give the tables to copy again, as schema.table (e.g. kinesync resync public.orders)")]
    NoTables,
}

impl From<resync::RequestError> for ResyncError {
    fn from(error: resync::RequestError) -> Self {
        match error {
            resync::RequestError::StateTable(e) => ResyncError::StateTable(e),
            resync::RequestError::Source(e) => ResyncError::Source(e),
        }
    }
}

/// The tables whose resync was requested, in SQL spelling.
#[derive(Debug, serde::Serialize)]
pub struct Requested {
    pub tables: Vec<String>,
}

/// Request a resync of `tables` (entries like `source.tables`').
pub async fn request(config: &Config, tables: &[String]) -> Result<Requested, ResyncError> {
    if tables.is_empty() {
        return Err(ResyncError::NoTables);
    }
    let source = &config.source;
    let client = connect_sql(&source.url).await?;
    if let (false, version) = resync::marks_supported(&client).await? {
        return Err(ResyncError::Unsupported {
            version,
            reason: resync::NEEDS_MESSAGES,
        });
    }
    let names = checked_tables(&client, config, tables).await?;
    let state_table = source.resync_table();
    resync::request_creating_table(&client, &state_table, &source.slot, &names).await?;
    Ok(Requested {
        tables: names.iter().map(ToString::to_string).collect(),
    })
}

/// `tables` expanded, each one streamed by the producer and keyed.
async fn checked_tables(
    client: &Client,
    config: &Config,
    tables: &[String],
) -> Result<Vec<TableName>, ResyncError> {
    let configured = table_names(client, &config.source.tables).await?;
    let mut names = Vec::new();
    for name in table_names(client, tables).await? {
        if !configured.contains(&name) {
            return Err(ResyncError::NotConfigured {
                table: name.to_string(),
                tables: config.source.tables.join(", "),
            });
        }
        let (described, _) = describe(client, &name).await?;
        let table = admit(described, config.source.keyless_tables)?;
        if table.relation().partition_indices.is_empty() {
            return Err(ResyncError::Keyless { table: name });
        }
        names.push(name);
    }
    Ok(names)
}

/// One request's state, for `--wait` and `status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResyncState {
    pub table: String,
    pub requested_at: String,
    pub rows_copied: u64,
    pub finished_at: Option<String>,
}

/// Every resync of this slot (none without the request table).
pub async fn states(client: &Client, config: &Config) -> Result<Vec<ResyncState>, SourceError> {
    let table = config.source.resync_table();
    if !resync::state_table_exists(client, &table).await? {
        return Ok(Vec::new());
    }
    let statement = resync::render(sql::RESYNC_STATUS, &table);
    let rows = client
        .query(&statement, &[&config.source.slot])
        .await
        .map_err(|e| SourceError::sql("reading the resync requests", &e))?;
    Ok(rows
        .iter()
        .map(|row| ResyncState {
            table: row.get("table_name"),
            requested_at: row.get("requested_at"),
            rows_copied: u64::try_from(row.get::<_, i64>("rows_copied")).unwrap_or(0),
            finished_at: row.get("finished_at"),
        })
        .collect())
}

/// Wait until every table of `requested` is finished, printing progress
/// as it changes. `false`: shutdown came first.
pub async fn wait(
    config: &Config,
    requested: &Requested,
    shutdown: &Shutdown,
) -> Result<bool, ResyncError> {
    let client = connect_sql(&config.source.url).await?;
    let mut shown = Vec::new();
    loop {
        let now: Vec<ResyncState> = states(&client, config)
            .await?
            .into_iter()
            .filter(|s| requested.tables.contains(&s.table))
            .collect();
        if now != shown {
            now.iter().for_each(|s| println!("{}", describe_state(s)));
            shown = now;
        }
        if shown.iter().all(|s| s.finished_at.is_some()) {
            return Ok(true);
        }
        tokio::select! {
            _ = shutdown.wait() => return Ok(false),
            _ = tokio::time::sleep(WAIT_POLL) => {}
        }
    }
}

/// `public.orders: 4096 rows copied` / `... finished at ...`.
pub fn describe_state(state: &ResyncState) -> String {
    match &state.finished_at {
        Some(at) => format!(
            "{}: resync finished at {at} ({} rows copied)",
            state.table, state.rows_copied
        ),
        None => format!(
            "{}: resync requested at {}, {} rows copied so far",
            state.table, state.requested_at, state.rows_copied
        ),
    }
}
