//! The publication must keep covering every configured table. If someone
//! runs `ALTER PUBLICATION ... DROP TABLE`, PostgreSQL silently stops
//! sending that table's changes: the mirror would drift without a word.
//!
//! The snapshot marker (the publication's comment, see `replication`)
//! records the tables kinesync streams, as a last line `kinesync tables:
//! [["schema","table"], ...]`. At start, a recorded and configured table
//! missing from the publication stops the producer (it is never silently
//! added back: its changes since the drop are lost and the table needs a
//! re-sync); a configured table not recorded yet is new and may be added.
//! While streaming, the publication is checked every heartbeat interval.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio_postgres::Client;

use super::tables::{self, admit, describe, SourceTable};
use crate::config::KeylessTables;
use crate::sql::parse_table_entry;

use super::error::{Retry, SourceError};
use super::relation_cache::Relation;
use super::replication::published_tables;

/// Longest a check while streaming may take (it runs in the streaming
/// loop; a server that does not answer must not stall delivery).
pub const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Prefix of the marker line listing the streamed tables.
const TABLES_LINE: &str = "\nkinesync tables: ";

pub use crate::sql::TableName;

pub fn table_names(tables: &[Relation]) -> Vec<TableName> {
    tables
        .iter()
        .map(|t| TableName::new(&t.schema, &t.name))
        .collect()
}

/// `marker` with its table line replaced by `tables`.
pub fn with_tables(marker: &str, tables: &[TableName]) -> String {
    let base = marker.split(TABLES_LINE).next().unwrap_or(marker);
    let list = serde_json::to_string(tables).unwrap_or_else(|_| "[]".to_owned());
    format!("{base}{TABLES_LINE}{list}")
}

/// Whether `marker` records its tables (markers written before the table
/// line existed do not: every table looks new to them).
pub fn records_tables(marker: &str) -> bool {
    marker.contains(TABLES_LINE)
}

/// The tables a marker records (none for markers written before this line existed).
pub fn recorded_tables(marker: &str) -> Vec<TableName> {
    marker
        .split(TABLES_LINE)
        .nth(1)
        .and_then(|list| serde_json::from_str(list.trim()).ok())
        .unwrap_or_default()
}

/// The error for `table`, no longer published by `publication`.
pub fn dropped(publication: &str, table: &TableName) -> SourceError {
    SourceError::PublicationDroppedTable {
        publication: crate::sql::display_ident(publication),
        table: format!(
            "{}.{}",
            crate::sql::display_ident(&table.schema),
            crate::sql::display_ident(&table.name)
        ),
    }
}

/// The first of `wanted` that `publication` does not publish.
pub async fn first_missing(
    client: &Client,
    publication: &str,
    wanted: &[TableName],
) -> Result<Option<TableName>, SourceError> {
    let published = published_tables(client, publication).await?;
    Ok(wanted.iter().find(|t| !published.contains(*t)).cloned())
}

/// The OIDs of `tables` (those that exist).
const TABLE_OIDS: &str = "SELECT n.nspname::text, c.relname::text, c.oid \
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     JOIN unnest($1::text[], $2::text[]) AS t (schema_name, table_name) \
       ON n.nspname = t.schema_name AND c.relname = t.table_name";

/// The table an OID names now.
const TABLE_OF_OID: &str = "SELECT n.nspname::text, c.relname::text \
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.oid = $1";

async fn oids_of(
    client: &Client,
    tables: &[TableName],
) -> Result<HashMap<TableName, u32>, tokio_postgres::Error> {
    let (schemas, names) = TableName::columns_of(tables);
    let rows = client.query(TABLE_OIDS, &[&schemas, &names]).await?;
    Ok(rows
        .iter()
        .map(|r| (TableName::from((r.get(0), r.get(1))), r.get(2)))
        .collect())
}

/// The name `oid` has now, if the table still exists.
async fn name_of(client: &Client, oid: u32) -> Option<TableName> {
    let row = client.query_opt(TABLE_OF_OID, &[&oid]).await.ok()??;
    Some(TableName::from((row.get(0), row.get(1))))
}

/// The check while streaming, on a session of its own (reconnected after
/// transient errors; a definite one, or "not published", stops the producer).
/// It also watches the partitions of partitioned tables: one attached or
/// detached changes the root's rows without a change event.
pub struct PublicationWatch {
    url: String,
    publication: String,
    tables: Vec<TableName>,
    /// Each table's OID at the last check that found it published: a table
    /// missing since, whose OID has another name now, was renamed.
    oids: HashMap<TableName, u32>,
    client: Option<Client>,
    /// Per partitioned table (SQL spelling), its leaf partitions when last
    /// looked at; `None` before the first look.
    partitions: Option<BTreeMap<String, BTreeSet<String>>>,
    /// The `schema.*` entries of `source.tables`, followed while streaming.
    schemas: Vec<String>,
    keyless: KeylessTables,
    /// Tables under a followed schema that could not be taken (said once).
    refused: BTreeSet<TableName>,
}

/// What a check found besides a publication that still covers every table.
#[derive(Debug, Default)]
pub struct WatchNews {
    /// Partitioned tables whose leaf partitions changed.
    pub repartitioned: Vec<TableName>,
    /// Tables created under a followed `schema.*` entry, now published.
    pub created: Vec<SourceTable>,
}

impl PublicationWatch {
    pub fn new(url: &str, publication: &str, tables: Vec<TableName>) -> PublicationWatch {
        PublicationWatch {
            url: url.to_owned(),
            publication: publication.to_owned(),
            tables,
            oids: HashMap::new(),
            client: None,
            partitions: None,
            schemas: Vec::new(),
            keyless: KeylessTables::default(),
            refused: BTreeSet::new(),
        }
    }

    /// Also follow the `schema.*` entries of `patterns`: a table created
    /// under one while streaming is added to the publication and reported.
    pub fn following(mut self, patterns: &[String], keyless: KeylessTables) -> Self {
        self.schemas = patterns
            .iter()
            .filter(|p| parse_table_entry(p).is_ok_and(|e| e.table.is_none()))
            .cloned()
            .collect();
        self.keyless = keyless;
        self
    }

    /// The publication still covers every table (else the error); what
    /// changed since the last check (see [`WatchNews`]).
    pub async fn check(&mut self) -> Result<WatchNews, SourceError> {
        match tokio::time::timeout(CHECK_TIMEOUT, self.check_now()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                tracing::warn!("checking the publication timed out; retrying");
                self.client = None;
                return Ok(WatchNews::default());
            }
        }
        let created = self.created_tables().await;
        Ok(WatchNews {
            repartitioned: self.repartitioned().await,
            created,
        })
    }

    /// Tables under a followed schema not streamed yet, each added to the
    /// publication (and to the snapshot marker's list) before it is
    /// reported; one that cannot be is warned about once.
    async fn created_tables(&mut self) -> Vec<SourceTable> {
        let Some(client) = &self.client else {
            return Vec::new();
        };
        if self.schemas.is_empty() {
            return Vec::new();
        }
        let Ok(Ok(names)) =
            tokio::time::timeout(CHECK_TIMEOUT, tables::table_names(client, &self.schemas)).await
        else {
            return Vec::new();
        };
        let mut created = Vec::new();
        for name in names {
            if self.tables.contains(&name) || self.refused.contains(&name) {
                continue;
            }
            match adopt(client, &self.publication, &name, self.keyless).await {
                Ok(table) => {
                    self.tables.push(name);
                    created.push(table);
                }
                Err(why) => {
                    tracing::warn!(table = %name, "a table was created under a schema.* entry but cannot be streamed: {why}");
                    self.refused.insert(name);
                }
            }
        }
        if !created.is_empty() {
            record_tables(client, &self.publication, &self.tables).await;
        }
        created
    }

    /// The roots whose leaf partitions differ from the last look (none at
    /// the first look, or when they cannot be read now).
    async fn repartitioned(&mut self) -> Vec<TableName> {
        let Some(client) = &self.client else {
            return Vec::new();
        };
        let names: Vec<String> = self.tables.iter().map(ToString::to_string).collect();
        let statement = crate::sql::RESYNC_PARTITIONS.plain();
        let read = tokio::time::timeout(CHECK_TIMEOUT, client.query(&statement, &[&names])).await;
        let Ok(Ok(rows)) = read else {
            tracing::debug!("cannot read the partitions now; retrying");
            return Vec::new();
        };
        let mut now: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for row in &rows {
            now.entry(row.get("root"))
                .or_default()
                .insert(row.get("leaf"));
        }
        let Some(before) = self.partitions.replace(now.clone()) else {
            return Vec::new();
        };
        self.tables
            .iter()
            .filter(|t| before.get(&t.to_string()) != now.get(&t.to_string()))
            .cloned()
            .collect()
    }

    async fn check_now(&mut self) -> Result<(), SourceError> {
        if self.client.is_none() {
            match super::replication::connect_sql(&self.url).await {
                Ok(client) => self.client = Some(client),
                Err(error) if error.retry() == Retry::Stop => return Err(error),
                Err(error) => {
                    tracing::warn!(%error, "cannot check the publication now; retrying");
                    return Ok(());
                }
            }
        }
        let Some(client) = &self.client else {
            return Ok(());
        };
        match first_missing(client, &self.publication, &self.tables).await {
            Ok(Some(table)) => {
                let now = match self.oids.get(&table) {
                    Some(oid) => name_of(client, *oid).await,
                    None => None,
                };
                Err(match now {
                    // Renamed: the stream reports it too, with the
                    // table's next change; whichever comes first says it.
                    Some(to) if to != table => SourceError::TableRenamed {
                        from: table.to_string(),
                        to: to.to_string(),
                    },
                    _ => dropped(&self.publication, &table),
                })
            }
            Ok(None) => {
                if let Ok(oids) = oids_of(client, &self.tables).await {
                    self.oids = oids;
                }
                Ok(())
            }
            Err(error) if error.retry() == Retry::Stop => Err(error),
            Err(error) => {
                tracing::warn!(%error, "cannot check the publication now; retrying");
                self.client = None;
                Ok(())
            }
        }
    }
}

/// `name`, described, admitted and readable, added to `publication`.
async fn adopt(
    client: &Client,
    publication: &str,
    name: &TableName,
    keyless: KeylessTables,
) -> Result<SourceTable, String> {
    let (table, access) = describe(client, name).await.map_err(|e| e.to_string())?;
    let table = admit(table, keyless).map_err(|e| e.to_string())?;
    if !access.can_select {
        return Err(format!("role {} may not SELECT it", access.role));
    }
    super::replication::ensure_publication(client, publication, &[table.relation()])
        .await
        .map_err(|e| e.to_string())?;
    Ok(table)
}

/// The snapshot marker lists `tables` (when it lists tables at all), so a
/// restart does not take a followed table for a new one.
async fn record_tables(client: &Client, publication: &str, tables: &[TableName]) {
    let marker = super::replication::snapshot_marker(client, publication).await;
    if let Ok(Some(text)) = marker.as_ref() {
        if records_tables(text) {
            let updated = with_tables(text, tables);
            if let Err(e) =
                super::replication::set_snapshot_marker(client, publication, Some(&updated)).await
            {
                tracing::warn!(error = %e, "could not record the followed tables in the snapshot marker");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_line_round_trips_and_replaces_itself() {
        let tables = vec![
            TableName::new("public", "orders"),
            TableName::new("We\"ird, schema", "t\nx"),
        ];
        let marker = with_tables("kinesync: snapshot complete (slot s; ...).", &tables);
        assert_eq!(recorded_tables(&marker), tables);
        let again = with_tables(&marker, &tables[..1]);
        assert_eq!(recorded_tables(&again), tables[..1].to_vec());
        assert!(again.starts_with("kinesync: snapshot complete (slot s; ...)."));
        assert!(recorded_tables("kinesync: snapshot complete (slot s; ...).").is_empty());
    }

    #[test]
    fn markers_written_before_table_names_were_typed_still_read() {
        let old =
            "kinesync: snapshot complete (slot s).\nkinesync tables: [[\"public\",\"orders\"]]";
        assert_eq!(recorded_tables(old), [TableName::new("public", "orders")]);
        assert_eq!(with_tables(old, &recorded_tables(old)), old);
    }
}
