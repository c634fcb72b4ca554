//! Errors of the PostgreSQL side, each a one-line message for the user
//! naming what is wrong and the fix.
//!
//! A server error is classified by its SQLSTATE; whether a failed session is
//! worth reopening is decided in one place (see [`SourceError::retry`]).

use pgwire_replication::PgWireError;

use crate::postgres::{pg_message, redact_url};

/// What went wrong on the PostgreSQL side.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "source.url {url} is not a valid PostgreSQL URL (postgres://user:password@host:port/db)"
    )]
    InvalidSourceUrl { url: String },
    #[error("TLS to the source database: {detail}")]
    Tls { detail: String },
    #[error("cannot connect to PostgreSQL at {target}: {detail}")]
    Connect { target: String, detail: String },
    #[error("PostgreSQL rejected the credentials for {target}: {detail} (check user and password in source.url, and pg_hba.conf)")]
    AuthFailed { target: String, detail: String },
    #[error("PostgreSQL {version} is not supported: kinesync needs {supported} (it creates its slot with the CREATE_REPLICATION_SLOT ... (SNAPSHOT 'export') syntax of PostgreSQL 15); upgrade the server in source.url")]
    UnsupportedServer {
        version: String,
        supported: &'static str,
    },
    #[error("PostgreSQL wal_level is {current:?}, logical replication needs \"logical\" (ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL)")]
    WalLevelNotLogical { current: String },
    #[error("the PostgreSQL role lacks a privilege kinesync needs: {detail} (it needs REPLICATION, or rds_replication on RDS, and SELECT on the tables)")]
    PermissionDenied { detail: String },
    #[error("PostgreSQL role {role} may not read table {table}: run GRANT SELECT ON {table} TO {role} (and GRANT USAGE ON SCHEMA {schema} TO {role})")]
    NoSelect {
        role: String,
        table: String,
        schema: String,
    },
    #[error("table {table} does not exist (fix source.tables; names are case-sensitive: a mixed-case name is written public.\"Odd Table\" or public.Odd Table)")]
    TableNotFound { table: String },
    #[error(transparent)]
    BadTableEntry(#[from] crate::sql::TableEntryError),
    #[error("source.tables entry {pattern} matches no table")]
    NoTablesMatched { pattern: String },
    #[error("table {table} has no primary key and no REPLICA IDENTITY FULL, so its updates and deletes cannot be keyed: add a primary key or run ALTER TABLE {table} REPLICA IDENTITY FULL")]
    NoReplicaIdentity { table: String },
    #[error("cannot create publication {publication}: {detail} (have the tables' owner or a superuser run CREATE PUBLICATION {publication} FOR TABLE ... and ALTER PUBLICATION {publication} OWNER TO the kinesync role; see docs/security.md)")]
    PublicationSetup { publication: String, detail: String },
    #[error("publication {publication} does not include table {table} and kinesync cannot add it: {detail} (run ALTER PUBLICATION {publication} ADD TABLE {table} as its owner)")]
    PublicationMissingTable {
        publication: String,
        table: String,
        detail: String,
    },
    #[error("publication {publication} no longer publishes table {table} (someone ran ALTER PUBLICATION {publication} DROP TABLE {table}?): its changes since then are lost. To recover: ALTER PUBLICATION {publication} ADD TABLE {table}, restart the producer, then re-sync the table (docs/operations.md, \"Re-syncing one table\")")]
    PublicationDroppedTable { publication: String, table: String },
    #[error("publication {publication} does not exist: {detail}")]
    PublicationMissing { publication: String, detail: String },
    #[error("replication slot {slot} is missing: {detail}")]
    SlotMissing { slot: String, detail: String },
    #[error("replication slot {slot} is in use by another session (pid {pid}): is another kinesync producer running?")]
    SlotInUse { slot: String, pid: String },
    #[error("replication slot {slot} is not usable by kinesync: {detail}")]
    SlotUnusable { slot: String, detail: String },
    #[error("replication failed: {detail}")]
    Replication { detail: String },
    #[error("SQL error while {context}: {detail}")]
    Sql { context: String, detail: String },
    #[error("initial snapshot failed: {detail}")]
    Snapshot { detail: String },
}

impl SourceError {
    pub fn sql(context: &str, e: &tokio_postgres::Error) -> SourceError {
        let detail = pg_message(e);
        match e.code().map(|c| c.code()) {
            Some("42501") => SourceError::PermissionDenied {
                detail: format!("{context}: {detail}"),
            },
            _ => SourceError::Sql {
                context: context.to_owned(),
                detail,
            },
        }
    }

    pub fn from_pg_connect(url: &str, e: &tokio_postgres::Error) -> SourceError {
        let target = redact_url(url);
        let detail = pg_message(e);
        match e.code().map(|c| c.code()) {
            Some("28P01" | "28000") => SourceError::AuthFailed { target, detail },
            _ if detail.contains("TLS") || detail.contains("tls") => SourceError::Connect {
                target,
                detail: format!("{detail} (SQL sessions of this build connect without TLS: use sslmode=disable or prefer)"),
            },
            _ => SourceError::Connect { target, detail },
        }
    }

    pub fn from_replication(slot: &str, e: PgWireError) -> SourceError {
        let detail = e.to_string();
        let sqlstate = detail
            .rsplit("SQLSTATE ")
            .next()
            .map(|s| s.trim_end_matches(')'))
            .unwrap_or("");
        match &e {
            PgWireError::Auth(_) => SourceError::AuthFailed {
                target: "the replication session".into(),
                detail,
            },
            PgWireError::Server(msg) => match sqlstate {
                "28P01" | "28000" => SourceError::AuthFailed {
                    target: "the replication session".into(),
                    detail: msg.clone(),
                },
                "42501" => SourceError::PermissionDenied {
                    detail: msg.clone(),
                },
                "42704" if msg.contains("publication") => SourceError::PublicationMissing {
                    publication: String::new(),
                    detail: msg.clone(),
                },
                "42704" => SourceError::SlotMissing {
                    slot: slot.to_owned(),
                    detail: msg.clone(),
                },
                "55006" => SourceError::SlotInUse {
                    slot: slot.to_owned(),
                    pid: msg.clone(),
                },
                "55000" if msg.contains("wal_level") => SourceError::WalLevelNotLogical {
                    current: msg.clone(),
                },
                _ => SourceError::Replication { detail },
            },
            PgWireError::Io(_) => SourceError::Connect {
                target: "the replication session".into(),
                detail,
            },
            _ => SourceError::Replication { detail },
        }
    }
}

/// A replication error worth reconnecting for.
pub fn is_transient(e: &PgWireError) -> bool {
    // Internal covers "worker already joined" after a recv raced the
    // worker's end: a fresh session is the cure.
    e.is_transient() || matches!(e, PgWireError::Internal(_)) || server_error_is_transient(e)
}

/// Server errors that end a session but not the pipeline: the walsender
/// was terminated (admin shutdown, a failover, a server restart), the
/// server is starting up or out of connections, or a connection exception.
pub fn server_error_is_transient(e: &PgWireError) -> bool {
    match e {
        PgWireError::Server(message) => has_transient_sqlstate(message),
        _ => false,
    }
}

/// Whether a server message names a SQLSTATE worth reconnecting for.
pub fn has_transient_sqlstate(message: &str) -> bool {
    const TRANSIENT_SQLSTATES: [&str; 6] = ["57P01", "57P02", "57P03", "53300", "08006", "08003"];
    TRANSIENT_SQLSTATES
        .iter()
        .any(|code| message.contains(&format!("SQLSTATE {code}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminated_walsender_or_a_restarting_server_is_transient() {
        let terminated = PgWireError::Server(
            "terminating connection due to administrator command (SQLSTATE 57P01)".into(),
        );
        assert!(is_transient(&terminated));
        let missing =
            PgWireError::Server("replication slot \"x\" does not exist (SQLSTATE 42704)".into());
        assert!(!is_transient(&missing));
    }

    #[test]
    fn replication_errors_read_well() {
        let e = SourceError::from_replication(
            "kinesync",
            PgWireError::Server(
                "replication slot \"kinesync\" does not exist (SQLSTATE 42704)".into(),
            ),
        );
        assert!(matches!(e, SourceError::SlotMissing { .. }), "{e}");
        let e = SourceError::from_replication(
            "kinesync",
            PgWireError::Server(
                "password authentication failed for user \"x\" (SQLSTATE 28P01)".into(),
            ),
        );
        assert!(matches!(e, SourceError::AuthFailed { .. }), "{e}");
        let e = SourceError::from_replication(
            "kinesync",
            PgWireError::Server(
                "replication slot \"kinesync\" is active for PID 42 (SQLSTATE 55006)".into(),
            ),
        );
        assert!(matches!(e, SourceError::SlotInUse { .. }), "{e}");
    }
}
