//! Shape probes: a schema change reaches the stream even when no row
//! change follows it.
//!
//! pgoutput describes a table (a Relation message) only before a change of
//! it, so a column added to a table nobody writes to would never reach the
//! mirror, and one added while the producer was stopped would reach it only
//! with the table's next change. So every check interval the producer reads
//! a fingerprint per configured table of the catalog facts its shape is
//! made of (`sql/produce/fingerprints.sql`). For each table whose
//! fingerprint is new (every table at a process's first probe) it reads the
//! shape from the catalog, then writes a logical message of its own
//! ([`PROBE_PREFIX`], a token the process chose) into the WAL.
//!
//! When the stream brings that message, every change before it has been
//! read; the fingerprints are read again. A table whose fingerprint did not
//! change between the two reads, which bracket the message, had the read
//! shape at the message's position: its shape record is placed there
//! (before every change after it, after every change before it). A table
//! changed again in between waits for the next probe. Placing a shape the
//! stream already has changes nothing in the merge.
//!
//! Needs logical messages in the stream (PostgreSQL 14 and later); not on a
//! temporary slot (a look at the events). A failed probe is logged and
//! tried again at the next interval: the stream itself is unharmed.

use std::collections::HashMap;

use tokio_postgres::Client;

use super::shapes::{column_facts, Probed, COLUMN_FACTS};
use crate::encode::encode_text;
use crate::event::Shape;
use crate::postgres::pg_message;
use crate::source::replication::connect_sql;
use crate::source::resync::marks_supported;
use crate::source::tables::describe;
use crate::sql::{self, TableName};

/// The prefix of the probe's logical messages.
pub const PROBE_PREFIX: &str = "kinesync_shape_probe";

/// A probe whose message has not come back yet. A committed message
/// always comes back, however far behind the stream is: a session lost
/// before it arrived is reopened from a position before it.
struct Pending {
    token: String,
    read: Vec<Probed>,
}

/// The probe's state for one producer process (survives reconnects).
pub(super) struct ShapeProbe {
    url: String,
    tables: Vec<TableName>,
    client: Option<Client>,
    /// Whether the server sends logical messages (asked once).
    supported: Option<bool>,
    /// Each table's fingerprint when its shape was last placed.
    placed: HashMap<TableName, String>,
    pending: Option<Pending>,
    probes: u64,
}

impl ShapeProbe {
    pub(super) fn new(url: &str, tables: Vec<TableName>) -> ShapeProbe {
        ShapeProbe {
            url: url.to_owned(),
            tables,
            client: None,
            supported: None,
            placed: HashMap::new(),
            pending: None,
            probes: 0,
        }
    }

    /// Probe `table` too (created under a followed schema).
    pub(super) fn add_table(&mut self, table: TableName) {
        if !self.tables.contains(&table) {
            self.tables.push(table);
        }
    }

    /// An interval passed: start a probe unless one is on its way.
    pub(super) async fn tick(&mut self) {
        if self.pending.is_some() {
            return;
        }
        if let Err(error) = self.start().await {
            tracing::warn!("shape probe: {error}; trying again at the next interval");
            self.client = None;
        }
    }

    /// Whether a logical message is a probe's (its own or an older
    /// process's): not for the sink either way.
    pub(super) fn is_probe(prefix: &str) -> bool {
        prefix == PROBE_PREFIX
    }

    /// The probe message `content` came back: the shapes to place at it.
    pub(super) async fn settle(&mut self, content: &[u8]) -> Vec<Probed> {
        let Some(pending) = self.pending.take_if(|p| p.token.as_bytes() == content) else {
            return Vec::new();
        };
        let names: Vec<TableName> = pending.read.iter().map(|p| p.shape.table_name()).collect();
        let now = match self.fingerprints(&names).await {
            Ok(now) => now,
            Err(error) => {
                tracing::warn!("shape probe: {error}; trying again at the next interval");
                self.client = None;
                return Vec::new();
            }
        };
        let steady: Vec<Probed> = pending
            .read
            .into_iter()
            .filter(|p| now.get(&p.shape.table_name()) == Some(&p.fingerprint))
            .collect();
        for probed in &steady {
            self.placed
                .insert(probed.shape.table_name(), probed.fingerprint.clone());
        }
        steady
    }

    async fn start(&mut self) -> Result<(), String> {
        if !self.supports_messages().await? {
            return Ok(());
        }
        let now = self.fingerprints(&self.tables.clone()).await?;
        let mut read = Vec::new();
        for (table, fingerprint) in now {
            if self.placed.get(&table) != Some(&fingerprint) {
                read.push(self.read(&table, fingerprint).await?);
            }
        }
        if read.is_empty() {
            return Ok(());
        }
        self.probes += 1;
        let token = format!("{}.{}", std::process::id(), self.probes);
        self.session()
            .await?
            .execute(
                "SELECT pg_logical_emit_message(true, $1, $2)",
                &[&PROBE_PREFIX, &token],
            )
            .await
            .map_err(|e| format!("writing the probe message: {}", pg_message(&e)))?;
        tracing::debug!(tables = read.len(), "shape probe sent");
        self.pending = Some(Pending { token, read });
        Ok(())
    }

    async fn supports_messages(&mut self) -> Result<bool, String> {
        if let Some(supported) = self.supported {
            return Ok(supported);
        }
        let (supported, _) = marks_supported(self.session().await?)
            .await
            .map_err(|e| e.to_string())?;
        self.supported = Some(supported);
        Ok(supported)
    }

    /// `table`'s shape from the catalog, with the kept defaults a shape
    /// record carries for the rows older than their column.
    async fn read(&mut self, table: &TableName, fingerprint: String) -> Result<Probed, String> {
        let client = self.session().await?;
        let (described, _) = describe(client, table).await.map_err(|e| e.to_string())?;
        let mut shape = Shape::of_table(&described);
        let rows = client
            .query(COLUMN_FACTS, &[&described.oid])
            .await
            .map_err(|e| format!("reading kept defaults: {}", pg_message(&e)))?;
        let facts = column_facts(&rows);
        for column in &mut shape.columns {
            let missing = facts.get(&column.name).and_then(|f| f.missing.as_deref());
            column.missing = missing.map(|text| encode_text(column.base_oid, text));
        }
        Ok(Probed {
            shape,
            facts,
            fingerprint,
        })
    }

    async fn fingerprints(
        &mut self,
        tables: &[TableName],
    ) -> Result<HashMap<TableName, String>, String> {
        let (schemas, names) = TableName::columns_of(tables);
        let rows = self
            .session()
            .await?
            .query(&sql::PRODUCE_FINGERPRINTS.plain(), &[&schemas, &names])
            .await
            .map_err(|e| format!("reading table fingerprints: {}", pg_message(&e)))?;
        Ok(rows
            .iter()
            .map(|r| {
                let table = TableName::new(r.get::<_, &str>(0), r.get::<_, &str>(1));
                (table, r.get::<_, String>(2))
            })
            .collect())
    }

    async fn session(&mut self) -> Result<&Client, String> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(connect_sql(&self.url).await.map_err(|e| e.to_string())?);
        }
        self.client
            .as_ref()
            .ok_or_else(|| "no catalog session".to_owned())
    }
}
