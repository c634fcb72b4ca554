//! Errors of the PostgreSQL side, each a one-line message for the user
//! naming what is wrong and the fix.
//!
//! Kinds come from the server's SQLSTATE (typed, [`SqlState`]), never from
//! message text: tokio-postgres hands it over as `DbError::code()`,
//! pgwire-replication appends it to the server's message, where
//! [`sqlstate_of`] reads it back. Whether a failure is worth another attempt
//! is decided in one place, [`SourceError::retry`] (transient: reconnect;
//! a busy slot: wait; definite: stop and tell the user), and every loop
//! that could retry (the streamer's reconnects, the start's wait for a busy
//! slot, the publication check while streaming) asks it.

use pgwire_replication::{PgWireError, ReplicationConfig};
use tokio_postgres::error::SqlState;

use super::tables::TablesError;

use crate::postgres::{pg_message, redact_url};
use crate::sql::display_ident;

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
    #[error("PostgreSQL {version} is not supported: {reason}; upgrade the server in source.url", reason = super::version::TOO_OLD_REASON)]
    UnsupportedServer { version: String },
    #[error("PostgreSQL wal_level is {current:?}, logical replication needs \"logical\" (ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL)")]
    WalLevelNotLogical { current: String },
    #[error("the PostgreSQL role lacks a privilege kinesync needs: {detail} (it needs REPLICATION, or rds_replication on RDS, and SELECT on the tables)")]
    PermissionDenied { detail: String },
    #[error(transparent)]
    Tables(TablesError),
    #[error("cannot create publication {publication}: {detail} (have the tables' owner or a superuser run CREATE PUBLICATION {publication} FOR TABLE ... and ALTER PUBLICATION {publication} OWNER TO the kinesync role; see docs/security.md)")]
    PublicationSetup { publication: String, detail: String },
    #[error("publication {publication} does not include table {table} and kinesync cannot add it: {detail} (run ALTER PUBLICATION {publication} ADD TABLE {table} as its owner)")]
    PublicationMissingTable {
        publication: String,
        table: String,
        detail: String,
    },
    #[error("table {from} was renamed to {to} while streaming, and kinesync follows tables by name: its changes no longer reach the mirror. Put {to} in source.tables in place of {from} and restart the producer (the renamed table is back-filled by a resync into a mirror table of its own; drop the old mirror with kinesync teardown --redshift --table {from})")]
    TableRenamed { from: String, to: String },
    #[error("publication {publication} no longer publishes table {table} (someone ran ALTER PUBLICATION {publication} DROP TABLE {table}?): its changes since then are lost. To recover: ALTER PUBLICATION {publication} ADD TABLE {table}, restart the producer, then re-sync the table (docs/operations.md, \"Re-syncing one table\")")]
    PublicationDroppedTable { publication: String, table: String },
    #[error("publication {} does not exist: {detail}", display_ident(.publication))]
    PublicationMissing { publication: String, detail: String },
    #[error("replication slot {slot} is missing: {detail}")]
    SlotMissing { slot: String, detail: String },
    #[error("replication slot {slot} is in use by another session{}: is another kinesync producer running?", pid_note(*.pid))]
    SlotInUse { slot: String, pid: Option<i32> },
    #[error("replication slot {slot} is not usable by kinesync: {detail}")]
    SlotUnusable { slot: String, detail: String },
    #[error("replication failed: {detail}")]
    Replication {
        detail: String,
        code: Option<SqlState>,
    },
    /// The replication worker ended under us (same message as `Replication`).
    #[error("replication failed: {detail}")]
    Session { detail: String },
    #[error("SQL error while {context}: {detail}")]
    Sql {
        context: String,
        detail: String,
        code: Option<SqlState>,
    },
    #[error("initial snapshot failed: {detail}")]
    Snapshot { detail: String },
}

/// ` (pid N)` when the server named the session holding the slot.
fn pid_note(pid: Option<i32>) -> String {
    pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
}

/// The pid in the server's "replication slot \"s\" is active for PID 42".
fn active_pid(message: &str) -> Option<i32> {
    let (_, rest) = message.split_once("PID ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// What to do after a failure: the one retry-or-stop decision
/// ([`SourceError::retry`]), used wherever a failure could be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Transient: the session was lost (network, a restarting or
    /// overloaded server, a terminated backend); open a new one.
    Reconnect,
    /// The slot is held by another session (often our previous one, not yet
    /// gone): wait, bounded, and try again.
    WaitForSlot,
    /// Definite: retrying cannot help; stop and tell the user.
    Stop,
}

/// SQLSTATEs that end a session but not the pipeline: the backend was
/// terminated (admin shutdown, a failover, a server restart), the server
/// is starting up or out of connections, or a connection exception.
const TRANSIENT_SQLSTATES: [SqlState; 6] = [
    SqlState::ADMIN_SHUTDOWN,
    SqlState::CRASH_SHUTDOWN,
    SqlState::CANNOT_CONNECT_NOW,
    SqlState::TOO_MANY_CONNECTIONS,
    SqlState::CONNECTION_FAILURE,
    SqlState::CONNECTION_DOES_NOT_EXIST,
];

/// A catalog query refused for lack of a privilege is reported as such
/// (see [`SourceError::sql`]); every other problem as the resolver says it.
impl From<TablesError> for SourceError {
    fn from(error: TablesError) -> SourceError {
        match error {
            TablesError::Query { context, source } => SourceError::sql(context, &source),
            other => SourceError::Tables(other),
        }
    }
}

impl SourceError {
    /// Retry or stop: the only place that decides it.
    pub fn retry(&self) -> Retry {
        match self {
            SourceError::Connect { .. } | SourceError::Session { .. } => Retry::Reconnect,
            SourceError::SlotInUse { .. } => Retry::WaitForSlot,
            // tokio-postgres reports a lost connection without a SQLSTATE.
            SourceError::Sql { code: None, .. } => Retry::Reconnect,
            SourceError::Replication {
                code: Some(code), ..
            }
            | SourceError::Sql {
                code: Some(code), ..
            } if TRANSIENT_SQLSTATES.contains(code) => Retry::Reconnect,
            _ => Retry::Stop,
        }
    }

    pub fn sql(context: &str, e: &tokio_postgres::Error) -> SourceError {
        let detail = pg_message(e);
        match e.code() {
            Some(code) if *code == SqlState::INSUFFICIENT_PRIVILEGE => {
                SourceError::PermissionDenied {
                    detail: format!("{context}: {detail}"),
                }
            }
            code => SourceError::Sql {
                context: context.to_owned(),
                detail,
                code: code.cloned(),
            },
        }
    }

    pub fn from_pg_connect(url: &str, e: &tokio_postgres::Error) -> SourceError {
        let target = redact_url(url);
        let detail = pg_message(e);
        match e.code() {
            Some(code) if is_auth_failure(code) => SourceError::AuthFailed { target, detail },
            _ => SourceError::Connect { target, detail },
        }
    }

    /// A replication session's error, by its kind and the server's SQLSTATE.
    pub fn from_replication(config: &ReplicationConfig, e: PgWireError) -> SourceError {
        let session = || "the replication session".to_owned();
        match e {
            PgWireError::Auth(detail) => SourceError::AuthFailed {
                target: session(),
                detail: format!("authentication error: {detail}"),
            },
            PgWireError::Server(msg) => from_server(config, msg),
            PgWireError::Io(_) => SourceError::Connect {
                target: session(),
                detail: e.to_string(),
            },
            // The worker ended under us (Internal covers "worker already
            // joined" after a recv raced its end): a fresh session cures it.
            PgWireError::Task(_) | PgWireError::Internal(_) => SourceError::Session {
                detail: e.to_string(),
            },
            other => SourceError::Replication {
                detail: other.to_string(),
                code: None,
            },
        }
    }
}

fn is_auth_failure(code: &SqlState) -> bool {
    *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
}

/// The SQLSTATE pgwire-replication appends to a server message (`... (SQLSTATE 42704)`).
pub fn sqlstate_of(message: &str) -> Option<SqlState> {
    let (_, code) = message.rsplit_once("SQLSTATE ")?;
    let code = code.trim_end_matches(')').trim();
    (code.len() == 5).then(|| SqlState::from_code(code))
}

/// A server error on the replication session, by its SQLSTATE.
fn from_server(config: &ReplicationConfig, msg: String) -> SourceError {
    let code = sqlstate_of(&msg);
    let slot = config.slot.clone();
    match code {
        Some(c) if is_auth_failure(&c) => SourceError::AuthFailed {
            target: "the replication session".into(),
            detail: msg,
        },
        Some(c) if c == SqlState::INSUFFICIENT_PRIVILEGE => {
            SourceError::PermissionDenied { detail: msg }
        }
        // Both a missing publication and a missing slot are 42704; the
        // message names which object it is.
        Some(c) if c == SqlState::UNDEFINED_OBJECT && msg.contains("publication") => {
            SourceError::PublicationMissing {
                publication: config.publication.names().join(","),
                detail: msg,
            }
        }
        Some(c) if c == SqlState::UNDEFINED_OBJECT => {
            SourceError::SlotMissing { slot, detail: msg }
        }
        Some(c) if c == SqlState::OBJECT_IN_USE => SourceError::SlotInUse {
            slot,
            pid: active_pid(&msg),
        },
        Some(c) if c == SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE && msg.contains("wal_level") => {
            SourceError::WalLevelNotLogical { current: msg }
        }
        code => SourceError::Replication {
            detail: format!("server error: {msg}"),
            code,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> ReplicationConfig {
        ReplicationConfig::new("h", "u", "", "db", "kinesync", "My Pub")
    }

    fn server(message: &str) -> SourceError {
        SourceError::from_replication(&names(), PgWireError::Server(message.into()))
    }

    #[test]
    fn messages_name_the_publication_and_the_pid_only() {
        let e = server("publication \"My Pub\" does not exist (SQLSTATE 42704)");
        assert!(
            e.to_string()
                .starts_with("publication \"My Pub\" does not exist"),
            "{e}"
        );
        let e = server("replication slot \"kinesync\" is active for PID 42 (SQLSTATE 55006)");
        assert!(
            matches!(e, SourceError::SlotInUse { pid: Some(42), .. }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "replication slot kinesync is in use by another session (pid 42): is another kinesync producer running?"
        );
        let e = server("replication slot \"kinesync\" is active (SQLSTATE 55006)");
        assert!(!e.to_string().contains("pid"), "{e}");
    }

    #[test]
    fn the_kind_comes_from_the_sqlstate() {
        let e = server("replication slot \"kinesync\" does not exist (SQLSTATE 42704)");
        assert!(matches!(e, SourceError::SlotMissing { .. }), "{e}");
        let e = server("publication \"p\" does not exist (SQLSTATE 42704)");
        assert!(matches!(e, SourceError::PublicationMissing { .. }), "{e}");
        let e = server("password authentication failed for user \"x\" (SQLSTATE 28P01)");
        assert!(matches!(e, SourceError::AuthFailed { .. }), "{e}");
        let e = server("permission denied to start WAL sender (SQLSTATE 42501)");
        assert!(matches!(e, SourceError::PermissionDenied { .. }), "{e}");
        let e = server("replication slot \"kinesync\" is active for PID 42 (SQLSTATE 55006)");
        assert!(matches!(e, SourceError::SlotInUse { .. }), "{e}");
        let e = server("logical decoding requires wal_level >= logical (SQLSTATE 55000)");
        assert!(matches!(e, SourceError::WalLevelNotLogical { .. }), "{e}");
        // The same words without the SQLSTATE are not classified by text.
        let e = server("replication slot \"kinesync\" does not exist");
        assert!(
            matches!(e, SourceError::Replication { code: None, .. }),
            "{e}"
        );
        assert_eq!(
            sqlstate_of("x (SQLSTATE 57P01)"),
            Some(SqlState::ADMIN_SHUTDOWN)
        );
        assert_eq!(sqlstate_of("no code here"), None);
    }

    #[test]
    fn lost_sessions_reconnect_a_busy_slot_waits_and_the_rest_stops() {
        let reconnect = [
            "terminating connection due to administrator command (SQLSTATE 57P01)",
            "the database system is starting up (SQLSTATE 57P03)",
            "sorry, too many clients already (SQLSTATE 53300)",
            "connection failure (SQLSTATE 08006)",
        ];
        for message in reconnect {
            assert_eq!(server(message).retry(), Retry::Reconnect, "{message}");
        }
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        for e in [
            PgWireError::from(io),
            PgWireError::Task("worker ended".into()),
            PgWireError::Internal("worker already joined".into()),
        ] {
            let e = SourceError::from_replication(&names(), e);
            assert_eq!(e.retry(), Retry::Reconnect, "{e}");
        }
        let busy = server("replication slot \"s\" is active for PID 42 (SQLSTATE 55006)");
        assert_eq!(busy.retry(), Retry::WaitForSlot);
        let stop = [
            "replication slot \"x\" does not exist (SQLSTATE 42704)",
            "password authentication failed for user \"x\" (SQLSTATE 28P01)",
            "permission denied to start WAL sender (SQLSTATE 42501)",
            "syntax error (SQLSTATE 42601)",
        ];
        for message in stop {
            assert_eq!(server(message).retry(), Retry::Stop, "{message}");
        }
        let auth = SourceError::from_replication(&names(), PgWireError::Auth("bad".into()));
        assert_eq!(auth.retry(), Retry::Stop);
    }

    #[test]
    fn an_sql_error_without_a_sqlstate_is_a_lost_connection() {
        let sql = |code| SourceError::Sql {
            context: "reading".into(),
            detail: "x".into(),
            code,
        };
        assert_eq!(sql(None).retry(), Retry::Reconnect);
        assert_eq!(
            sql(Some(SqlState::ADMIN_SHUTDOWN)).retry(),
            Retry::Reconnect
        );
        assert_eq!(sql(Some(SqlState::UNDEFINED_TABLE)).retry(), Retry::Stop);
    }
}
