//! `[source]`: the PostgreSQL database to mirror, its defaults and its
//! validation.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::checks::is_simple_lowercase_name;
use crate::postgres::redact_url;

/// Default publication and slot name.
pub const DEFAULT_PUBLICATION: &str = "kinesync";
pub const DEFAULT_SLOT: &str = "kinesync";
/// How often an idle producer writes a heartbeat so the slot keeps advancing.
pub const DEFAULT_HEARTBEAT_SECS: u64 = 10;
/// Where `kinesync resync` requests and their progress are kept.
pub const DEFAULT_RESYNC_TABLE: &str = "public.kinesync_resync";
/// Rows per resync chunk (Debezium's incremental snapshot uses 1,024).
pub const DEFAULT_RESYNC_CHUNK_ROWS: u64 = 2_048;
/// Largest resync chunk allowed.
pub const MAX_RESYNC_CHUNK_ROWS: u64 = 1_000_000;

/// `[source]`: the PostgreSQL database to mirror.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `postgres://user:password@host:port/db?sslmode=...` (or a libpq
    /// `key=value` string); printed with its password redacted.
    #[serde(serialize_with = "serialize_redacted")]
    pub url: String,
    /// `schema.table` entries; `schema.*` selects every table of a schema.
    pub tables: Vec<String>,
    #[serde(default = "default_publication")]
    pub publication: String,
    #[serde(default = "default_slot")]
    pub slot: String,
    #[serde(default)]
    pub snapshot: SnapshotMode,
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_interval_secs: u64,
    #[serde(default)]
    pub keyless_tables: KeylessTables,
    /// `schema.table` of the resync requests (see `source::resync`).
    #[serde(default = "default_resync_table")]
    pub resync_table: String,
    #[serde(default = "default_resync_chunk_rows")]
    pub resync_chunk_rows: u64,
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceConfig")
            .field("url", &redact_url(&self.url))
            .field("tables", &self.tables)
            .field("publication", &self.publication)
            .field("slot", &self.slot)
            .field("snapshot", &self.snapshot)
            .field("heartbeat_interval_secs", &self.heartbeat_interval_secs)
            .field("keyless_tables", &self.keyless_tables)
            .field("resync_table", &self.resync_table)
            .field("resync_chunk_rows", &self.resync_chunk_rows)
            .finish()
    }
}

/// Whether the producer copies the tables before streaming.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMode {
    /// Copy the tables when the slot is created, then stream.
    #[default]
    Initial,
    /// Stream only; never copy.
    Never,
    /// Copy the tables when the slot is created, then exit.
    InitialOnly,
}

/// What to do with a table that has no primary key and no replica
/// identity index, only `REPLICA IDENTITY FULL`: its rows have no key but
/// all their values, and two equal rows cannot be told apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeylessTables {
    /// Refuse it, naming the fixes (a primary key, a unique index).
    #[default]
    Refuse,
    /// Mirror it keyed by every column: right while its rows are distinct;
    /// equal rows become one mirror row (docs/redshift.md "Keyless tables").
    DistinctRows,
}

fn default_publication() -> String {
    DEFAULT_PUBLICATION.to_owned()
}
fn default_slot() -> String {
    DEFAULT_SLOT.to_owned()
}
fn default_heartbeat_secs() -> u64 {
    DEFAULT_HEARTBEAT_SECS
}

fn default_resync_table() -> String {
    DEFAULT_RESYNC_TABLE.to_owned()
}
fn default_resync_chunk_rows() -> u64 {
    DEFAULT_RESYNC_CHUNK_ROWS
}

fn serialize_redacted<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url))
}

impl SourceConfig {
    /// `source.resync_table` as a table (validated: see [`validate`](Self::validate)).
    pub fn resync_table(&self) -> crate::sql::TableName {
        match crate::sql::parse_table_entry(&self.resync_table) {
            Ok(crate::sql::TableEntry {
                schema,
                table: Some(name),
            }) => crate::sql::TableName { schema, name },
            _ => crate::sql::TableName::new("public", "kinesync_resync"),
        }
    }

    /// The `[source]` section's problems.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.url.trim().is_empty() {
            problems.push(
                "source.url is empty: set it to postgres://user:password@host:port/db".to_owned(),
            );
        } else if let Err(error) = crate::postgres::SourceUrl::parse(&self.url) {
            problems.push(error.to_string());
        }
        if self.tables.is_empty() {
            problems.push(
                "source.tables is empty: list tables as \"schema.table\" (or \"schema.*\")"
                    .to_owned(),
            );
        }
        for table in &self.tables {
            if table
                .split_once('.')
                .is_none_or(|(s, t)| s.is_empty() || t.is_empty())
            {
                problems.push(format!(
                    "source.tables entry {table:?} must be \"schema.table\" or \"schema.*\""
                ));
            }
        }
        for (key, value) in [
            ("source.publication", &self.publication),
            ("source.slot", &self.slot),
        ] {
            if !is_simple_lowercase_name(value) {
                problems.push(format!("{key} {value:?} must be lower-case letters, digits and _ (at most 63 characters)"));
            }
        }
        match crate::sql::parse_table_entry(&self.resync_table) {
            Ok(entry) if entry.table.is_some() => {}
            _ => problems.push(format!(
                "source.resync_table {:?} must be \"schema.table\"",
                self.resync_table
            )),
        }
        if !(1..=MAX_RESYNC_CHUNK_ROWS).contains(&self.resync_chunk_rows) {
            problems.push(format!(
                "source.resync_chunk_rows must be between 1 and {MAX_RESYNC_CHUNK_ROWS}"
            ));
        }
        if self.heartbeat_interval_secs == 0 {
            problems.push("source.heartbeat_interval_secs must be at least 1".to_owned());
        }
        problems
    }
}
