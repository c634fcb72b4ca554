//! Why `produce` stopped: one error type for the whole producer, each
//! variant a one-line message for the user naming what is wrong and the fix.
//!
//! PostgreSQL's own errors come from `source` ([`SourceError`]); a privilege
//! problem is completed with the role and the exact GRANT to run
//! ([`ProduceError::with_role`]) once the configuration is at hand.

use crate::config::Config;
use crate::event::ShapeMismatch;
use crate::sink::SinkError;
use crate::source::error::SourceError;
use crate::source::pgoutput::DecodeError;
use crate::sql::display_ident;
use crate::telemetry;
use std::path::PathBuf;

/// Why `produce` stopped. Each variant reads as a one-line message for the user.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("PostgreSQL role {role} lacks a privilege kinesync needs: {detail}; fix: {fix} (see docs/security.md)")]
    RoleLacksPrivilege {
        role: String,
        detail: String,
        fix: String,
    },
    #[error("publication {publication} does not publish table {table}, and produce --sink stdout changes nothing of the real pipeline: run ALTER PUBLICATION {publication} ADD TABLE {table} (or start the Kinesis producer once, which adds it), then try again")]
    PreviewPublicationLacksTable { publication: String, table: String },
    #[error(
        "two start-up problems: the source: {source_problem}; and the stream: {stream_problem}"
    )]
    StartUp {
        source_problem: String,
        stream_problem: String,
    },
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("replication stream changed shape unexpectedly: {0}")]
    Shape(#[from] ShapeMismatch),
    #[error("replication stream referred to relation {id} before describing it")]
    UnknownRelation { id: u32 },
    #[error("event for {table} key {key} is {bytes} bytes, over kinesis.max_record_bytes = {limit}: raise the stream's record limit, or set kinesis.oversize = \"dead_letter\" with kinesis.dead_letter_path")]
    OversizeRecord {
        table: String,
        key: String,
        bytes: usize,
        limit: usize,
    },
    #[error("cannot write the dead-letter file {path}: {detail}")]
    DeadLetter { path: PathBuf, detail: String },
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Telemetry(#[from] telemetry::ServeError),
    #[error(transparent)]
    Source(#[from] SourceError),
}

impl ProduceError {
    /// Names the role and the fix in a [`ProduceError::PermissionDenied`].
    pub(super) fn with_role(self, config: &Config) -> ProduceError {
        let ProduceError::Source(SourceError::PermissionDenied { detail }) = self else {
            return self;
        };
        let role = config
            .source
            .url
            .parse::<tokio_postgres::Config>()
            .ok()
            .and_then(|c| c.get_user().map(display_ident))
            .unwrap_or_else(|| "of source.url".to_owned());
        let publication = display_ident(&config.source.publication);
        let fix = if detail.contains("replication") || detail.contains("walsender") {
            format!(
                "ALTER ROLE {role} REPLICATION (on RDS/Aurora: GRANT rds_replication TO {role})"
            )
        } else if detail.contains("owner of publication") {
            format!("ALTER PUBLICATION {publication} OWNER TO {role}, run by a superuser")
        } else {
            format!("grant {role} REPLICATION, USAGE on the schemas, SELECT on the tables and ownership of publication {publication}")
        };
        ProduceError::RoleLacksPrivilege { role, detail, fix }
    }
}

impl From<crate::sql::TableEntryError> for ProduceError {
    fn from(e: crate::sql::TableEntryError) -> ProduceError {
        ProduceError::Source(SourceError::Tables(e.into()))
    }
}

impl From<crate::source::tables::TablesError> for ProduceError {
    fn from(e: crate::source::tables::TablesError) -> ProduceError {
        ProduceError::Source(e.into())
    }
}
