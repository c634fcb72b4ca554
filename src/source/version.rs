//! Which PostgreSQL servers kinesync runs on, and what it sends to each.
//!
//! # Protocol
//!
//! The version is read as `server_version_num` (`130023` for 13.23,
//! `180004` for 18.4): an integer for every build, where `server_version` is
//! free text (`15.8 (Debian 15.8-1.pgdg120+1)`, `16beta1`). It is read once
//! per session that depends on it: by `check`, by the producer's start-up
//! check, and on each replication session before its first command (the
//! command's syntax depends on it). `SHOW` is a replication command too, so
//! the replication session asks itself.
//!
//! What differs between the supported versions (docs/postgres-versions.md):
//!
//! | what kinesync sends                    | 13              | 14 | 15, 16, 17, 18 |
//! |----------------------------------------|-----------------|----|----------------|
//! | `CREATE_REPLICATION_SLOT … LOGICAL pgoutput` | `EXPORT_SNAPSHOT` / `NOEXPORT_SNAPSHOT` | same as 13 | `(SNAPSHOT 'export')` / `(SNAPSHOT 'nothing')` |
//! | pgoutput `proto_version`               | `'1'`           | `'1'` | `'1'` |
//! | pgoutput `messages 'true'`             | left out (13 rejects it) | sent | sent |
//!
//! Protocol version 1 on every version: kinesync wants whole committed
//! transactions (versions 2 to 4 add streaming of in-progress transactions
//! and two-phase commit, which it does not request). The `messages` option
//! only lets kinesync's own heartbeat messages through; without it (13) a
//! heartbeat's transaction still arrives as Begin/Commit, because 13's
//! pgoutput sends every transaction, empty ones too (15 and later skip empty
//! ones, which is why they need the message). The parenthesised
//! `CREATE_REPLICATION_SLOT` options came with 15; 15 to 18 still parse the
//! old keywords but document them as deprecated, so each version gets its
//! own syntax.
//!
//! Refused: anything before 13. kinesync creates its publication
//! `WITH (publish_via_partition_root = true)` and bounds the slot's WAL with
//! `max_slot_wal_keep_size` (reporting `pg_replication_slots.wal_status`),
//! all three new in 13. Versions after [`NEWEST_TESTED_MAJOR`] are run but
//! reported by `check` as untested.

use std::fmt;

/// The oldest major version kinesync runs on.
pub const OLDEST_MAJOR: u32 = 13;
/// The newest major version the tests run on.
pub const NEWEST_TESTED_MAJOR: u32 = 18;
/// What is said about supported versions, in errors and `check`.
pub const SUPPORTED_SERVERS: &str = "PostgreSQL 13 to 18";
/// Why a server older than [`OLDEST_MAJOR`] is refused.
pub const TOO_OLD_REASON: &str = "kinesync needs PostgreSQL 13 or later: it creates its publication WITH (publish_via_partition_root = true) and bounds the slot's WAL with max_slot_wal_keep_size, both new in PostgreSQL 13";
/// The query that reads the version, on an SQL or a replication session.
pub const VERSION_QUERY: &str = "SHOW server_version_num";

/// A server's version, as `server_version_num` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion(u32);

/// A server kinesync does not run on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PostgreSQL {version} is not supported: {TOO_OLD_REASON}")]
pub struct Unsupported {
    /// The version, as [`ServerVersion`] displays it.
    pub version: String,
}

impl ServerVersion {
    /// From a `server_version_num` value (`130023`); `None` if it is not one.
    pub fn parse(server_version_num: &str) -> Option<ServerVersion> {
        let num: u32 = server_version_num.trim().parse().ok()?;
        // Since 10, major * 10000 + minor; before, major * 10000 + minor * 100 + patch.
        (num >= 10_000).then_some(ServerVersion(num))
    }

    /// The major version (13 for 13.23; 9 for 9.6).
    pub fn major(self) -> u32 {
        self.0 / 10_000
    }

    /// `Ok` if kinesync runs on this server, else why not.
    pub fn supported(self) -> Result<ServerVersion, Unsupported> {
        if self.major() >= OLDEST_MAJOR {
            Ok(self)
        } else {
            Err(Unsupported {
                version: self.to_string(),
            })
        }
    }

    /// Whether the tests run on this major version.
    pub fn tested(self) -> bool {
        (OLDEST_MAJOR..=NEWEST_TESTED_MAJOR).contains(&self.major())
    }

    /// Whether pgoutput takes the `messages` option (14 and later).
    pub fn logical_messages(self) -> bool {
        self.major() >= 14
    }

    /// Whether publications can publish stored generated columns
    /// (`publish_generated_columns`, 18 and later).
    pub fn publishes_generated_columns(self) -> bool {
        self.major() >= 18
    }

    /// The `CREATE_REPLICATION_SLOT` command for a pgoutput slot named
    /// `quoted_slot` (already quoted), in this version's syntax.
    pub fn create_slot_command(self, quoted_slot: &str, temporary: bool, export: bool) -> String {
        let temporary = if temporary { "TEMPORARY " } else { "" };
        let snapshot = match (self.major() >= 15, export) {
            (true, true) => "(SNAPSHOT 'export')",
            (true, false) => "(SNAPSHOT 'nothing')",
            (false, true) => "EXPORT_SNAPSHOT",
            (false, false) => "NOEXPORT_SNAPSHOT",
        };
        format!("CREATE_REPLICATION_SLOT {quoted_slot} {temporary}LOGICAL pgoutput {snapshot}")
    }
}

/// `13.23`; `9.6.24` for the old numbering.
impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, rest) = (self.major(), self.0 % 10_000);
        if major >= 10 {
            write!(f, "{major}.{rest}")
        } else {
            write!(f, "{major}.{}.{}", rest / 100, rest % 100)
        }
    }
}

/// What `check` says about a server: supported, run but untested, or
/// refused (with the reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Supported(String),
    Untested(String),
    Refused(String),
}

/// The verdict on a server whose `server_version_num` is `num`, each
/// naming the version and what is supported.
pub fn verdict(num: &str) -> Verdict {
    let Some(version) = ServerVersion::parse(num) else {
        return Verdict::Refused(format!(
            "server_version_num {num:?} is not a PostgreSQL version number; kinesync runs on {SUPPORTED_SERVERS}"
        ));
    };
    match version.supported() {
        Err(refused) => Verdict::Refused(refused.to_string()),
        Ok(_) if version.tested() => Verdict::Supported(format!(
            "PostgreSQL {version} (supported: {SUPPORTED_SERVERS})"
        )),
        Ok(_) => Verdict::Untested(format!(
            "PostgreSQL {version} is newer than the versions kinesync is tested on ({SUPPORTED_SERVERS})"
        )),
    }
}

/// What `check` says about a table's generated columns that are not
/// replicated (`None`: it has none): before PostgreSQL 18 pgoutput sends no
/// generated column; 18 sends stored ones (kinesync's publication sets
/// `publish_generated_columns = stored`), never virtual ones. They are
/// absent from the events and the mirror.
pub fn generated_columns_warning(columns: &[String]) -> Option<(String, String)> {
    if columns.is_empty() {
        return None;
    }
    Some((
        format!(
            "{} generated: not replicated (pgoutput sends no generated column before PostgreSQL 18, and no virtual one on 18), absent from the mirror",
            columns.join(", ")
        ),
        "compute them in Redshift from the replicated columns, or on PostgreSQL 18 make them STORED (docs/postgres-versions.md)".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(num: &str) -> ServerVersion {
        ServerVersion::parse(num).unwrap()
    }

    #[test]
    fn versions_read_from_server_version_num() {
        assert_eq!(v("130023").major(), 13);
        assert_eq!(v("130023").to_string(), "13.23");
        assert_eq!(v("180004").to_string(), "18.4");
        assert_eq!(v("90624").to_string(), "9.6.24");
        for bad in ["", "15.8", "garbage", "999"] {
            assert_eq!(ServerVersion::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn servers_older_than_13_are_refused_with_the_reason() {
        for ok in ["130000", "140013", "150008", "160004", "170002", "180000"] {
            assert!(v(ok).supported().is_ok(), "{ok}");
            assert!(matches!(verdict(ok), Verdict::Supported(s) if s.contains(SUPPORTED_SERVERS)));
        }
        for old in ["120022", "110000", "90624"] {
            let error = v(old).supported().unwrap_err().to_string();
            assert!(error.contains(&v(old).to_string()), "{error}");
            assert!(error.contains("publish_via_partition_root"), "{error}");
            assert!(matches!(verdict(old), Verdict::Refused(r) if r == error));
        }
        assert!(matches!(verdict("190000"), Verdict::Untested(s) if s.contains("19.0")));
        assert!(matches!(verdict("garbage"), Verdict::Refused(s) if s.contains("garbage")));
    }

    #[test]
    fn each_version_gets_its_own_slot_syntax_and_options() {
        for (num, export, plain) in [
            ("130023", "EXPORT_SNAPSHOT", "NOEXPORT_SNAPSHOT"),
            ("140023", "EXPORT_SNAPSHOT", "NOEXPORT_SNAPSHOT"),
            ("150018", "(SNAPSHOT 'export')", "(SNAPSHOT 'nothing')"),
            ("180004", "(SNAPSHOT 'export')", "(SNAPSHOT 'nothing')"),
        ] {
            assert_eq!(
                v(num).create_slot_command("\"s\"", true, true),
                format!("CREATE_REPLICATION_SLOT \"s\" TEMPORARY LOGICAL pgoutput {export}")
            );
            assert_eq!(
                v(num).create_slot_command("\"s\"", false, false),
                format!("CREATE_REPLICATION_SLOT \"s\" LOGICAL pgoutput {plain}")
            );
        }
        assert!(!v("130023").logical_messages() && v("140000").logical_messages());
        assert!(!v("170002").publishes_generated_columns());
        assert!(v("180000").publishes_generated_columns());
    }

    #[test]
    fn generated_columns_are_named_in_the_warning() {
        assert_eq!(generated_columns_warning(&[]), None);
        let (detail, _) = generated_columns_warning(&["total".into(), "tax".into()]).unwrap();
        assert!(
            detail.starts_with("total, tax generated: not replicated"),
            "{detail}"
        );
    }
}
