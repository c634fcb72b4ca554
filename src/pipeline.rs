//! `produce`: Postgres -> events -> sink, with acknowledgements flowing back
//! to the replication slot by one path.
//!
//! One task owns the replication session, decodes and encodes each change,
//! and hands records to the sink's [`Dispatcher`]; finished requests come
//! back to the same loop as acknowledged sequence numbers. The [`AckTracker`]
//! turns those into the one number Postgres cares about: the end LSN of the
//! newest transaction whose every event (and every earlier event) the sink
//! accepted. Only that is confirmed to the slot. The loop is a single
//! `select!` (priorities: shutdown, sink completions, retry timer, new data),
//! which suits a current-thread runtime.
//!
//! Memory is bounded: new data is read only while the records buffered or in
//! flight stay under [`MAX_BUFFERED_RECORDS`] / [`MAX_BUFFERED_BYTES`];
//! otherwise the replication worker's bounded channel and then TCP push back
//! on the walsender.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pgwire_replication::{PgWireError, ReplicationClient, ReplicationEvent};
use tokio::time::Instant;

use crate::config::{redact_url, Config, KinesisConfig, OversizePolicy, SnapshotMode};
use crate::event::{
    encode_event, encode_event_with, pg_micros_to_unix_ms, row_from_tuple, unchanged_toast,
    ChangeMeta, EncodedEvent, EventContext, Op, ShapeMismatch, SnapshotMarker,
};
use crate::lsn::Lsn;
use crate::shutdown::Shutdown;
use crate::sink::dispatch::DEFAULT_MAX_IN_FLIGHT;
use crate::sink::kinesis::KinesisWriter;
use crate::sink::stdout::StdoutWriter;
use crate::sink::{Dispatcher, DispatcherLimits, OutRecord, RecordWriter, SinkError};
use crate::source::coverage::{self, PublicationWatch};
use crate::source::pgoutput::{decode, DecodeError, LogicalMessage, OldTupleKind};
use crate::source::relation_cache::{Relation, RelationCache};
use crate::source::replication::{
    check_server_version, check_wal_level, connect_sql, create_slot_without_snapshot,
    database_name, drop_slot, ensure_publication, marker_says_ready, marker_says_started,
    publication_exists, replication_config, set_snapshot_marker, skipped_marker, slot_info,
    snapshot_marker, start_stream, temporary_slot_name, SlotUse,
};
use crate::source::snapshot::take_snapshot;
use crate::source::tables::{domain_base_types, resolve_tables, TablesError};
use crate::telemetry::{self, health, metrics};

/// Records buffered or in flight before reading pauses.
pub const MAX_BUFFERED_RECORDS: usize = 20_000;
/// Bytes buffered (not yet sent) before reading pauses: six full 5 MiB
/// requests, and with the rest of the process under 64 MiB whatever the
/// event size (docs/benchmarks.md, memory).
pub const MAX_BUFFERED_BYTES: usize = 32 * 1024 * 1024;
/// How long a graceful shutdown waits for in-flight records.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// First reconnect delay after a transient replication error; doubles.
pub const RECONNECT_BASE_DELAY: Duration = Duration::from_millis(500);
/// Longest reconnect delay.
pub const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(30);
/// How long a start waits for a slot still held by a previous session.
pub const SLOT_BUSY_WAIT: Duration = Duration::from_secs(90);
/// Prefix of our heartbeat messages.
pub const HEARTBEAT_PREFIX: &str = "kinesync_heartbeat";
/// The readiness condition "connected to the replication slot".
pub const SOURCE_CONDITION: &str = "source";
/// How often an idle streaming loop still tells [`health()`] it is alive.
const BEAT_INTERVAL: Duration = Duration::from_secs(1);

/// Where `produce` writes events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkChoice {
    Kinesis,
    /// Standard output from a temporary slot: a look at the events that
    /// changes nothing of the real pipeline (`--sink stdout`).
    Stdout,
    /// Standard output as the sink of record: the configured slot is read
    /// and confirmed and the snapshot marker written, as for Kinesis
    /// (`--sink stdout --advance-slot`).
    StdoutAdvancingSlot,
}

/// Why `produce` stopped. Each variant reads as a one-line message for the user.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
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
    #[error("PostgreSQL {version} is not supported: kinesync needs {supported} (it creates its slot with the CREATE_REPLICATION_SLOT ... (SNAPSHOT 'export') syntax of PostgreSQL 15); upgrade the server in source.url", supported = crate::source::replication::SUPPORTED_SERVERS)]
    UnsupportedServer { version: String },
    #[error("PostgreSQL wal_level is {current:?}, logical replication needs \"logical\" (ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL)")]
    WalLevelNotLogical { current: String },
    #[error("the PostgreSQL role lacks a privilege kinesync needs: {detail} (it needs REPLICATION, or rds_replication on RDS, and SELECT on the tables)")]
    PermissionDenied { detail: String },
    #[error("PostgreSQL role {role} lacks a privilege kinesync needs: {detail}; fix: {fix} (see docs/security.md)")]
    RoleLacksPrivilege {
        role: String,
        detail: String,
        fix: String,
    },
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
    #[error("publication {publication} no longer publishes table {table} (someone ran ALTER PUBLICATION {publication} DROP TABLE {table}?): its changes since then are lost. To recover: ALTER PUBLICATION {publication} ADD TABLE {table}, restart the producer, then re-sync the table (docs/operations.md, \"Re-syncing one table\")")]
    PublicationDroppedTable { publication: String, table: String },
    #[error("publication {publication} does not exist: {detail}")]
    PublicationMissing { publication: String, detail: String },
    #[error("publication {publication} does not publish table {table}, and produce --sink stdout changes nothing of the real pipeline: run ALTER PUBLICATION {publication} ADD TABLE {table} (or start the Kinesis producer once, which adds it), then try again")]
    PreviewPublicationLacksTable { publication: String, table: String },
    #[error(
        "two start-up problems: the source: {source_problem}; and the stream: {stream_problem}"
    )]
    StartUp {
        source_problem: String,
        stream_problem: String,
    },
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
}

/// A catalog query refused for lack of a privilege is reported as such
/// (see [`ProduceError::sql`]); every other problem as the resolver says it.
impl From<TablesError> for ProduceError {
    fn from(error: TablesError) -> ProduceError {
        match error {
            TablesError::Query { context, source } => ProduceError::sql(context, &source),
            other => ProduceError::Tables(other),
        }
    }
}

impl ProduceError {
    pub(crate) fn sql(context: &str, e: &tokio_postgres::Error) -> ProduceError {
        let detail = crate::source::replication::pg_message(e);
        match e.code().map(|c| c.code()) {
            Some("42501") => ProduceError::PermissionDenied {
                detail: format!("{context}: {detail}"),
            },
            _ => ProduceError::Sql {
                context: context.to_owned(),
                detail,
            },
        }
    }

    /// Names the role and the fix in a [`ProduceError::PermissionDenied`].
    fn with_role(self, config: &Config) -> ProduceError {
        let ProduceError::PermissionDenied { detail } = self else {
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

    pub(crate) fn from_pg_connect(url: &str, e: &tokio_postgres::Error) -> ProduceError {
        let target = redact_url(url);
        let detail = crate::source::replication::pg_message(e);
        match e.code().map(|c| c.code()) {
            Some("28P01" | "28000") => ProduceError::AuthFailed { target, detail },
            _ if detail.contains("TLS") || detail.contains("tls") => ProduceError::Connect {
                target,
                detail: format!("{detail} (SQL sessions of this build connect without TLS: use sslmode=disable or prefer)"),
            },
            _ => ProduceError::Connect { target, detail },
        }
    }

    pub(crate) fn from_replication(slot: &str, e: PgWireError) -> ProduceError {
        let detail = e.to_string();
        let sqlstate = detail
            .rsplit("SQLSTATE ")
            .next()
            .map(|s| s.trim_end_matches(')'))
            .unwrap_or("");
        match &e {
            PgWireError::Auth(_) => ProduceError::AuthFailed {
                target: "the replication session".into(),
                detail,
            },
            PgWireError::Server(msg) => match sqlstate {
                "28P01" | "28000" => ProduceError::AuthFailed {
                    target: "the replication session".into(),
                    detail: msg.clone(),
                },
                "42501" => ProduceError::PermissionDenied {
                    detail: msg.clone(),
                },
                "42704" if msg.contains("publication") => ProduceError::PublicationMissing {
                    publication: String::new(),
                    detail: msg.clone(),
                },
                "42704" => ProduceError::SlotMissing {
                    slot: slot.to_owned(),
                    detail: msg.clone(),
                },
                "55006" => ProduceError::SlotInUse {
                    slot: slot.to_owned(),
                    pid: msg.clone(),
                },
                "55000" if msg.contains("wal_level") => ProduceError::WalLevelNotLogical {
                    current: msg.clone(),
                },
                _ => ProduceError::Replication { detail },
            },
            PgWireError::Io(_) => ProduceError::Connect {
                target: "the replication session".into(),
                detail,
            },
            _ => ProduceError::Replication { detail },
        }
    }
}

/// A replication error worth reconnecting for.
fn is_transient(e: &PgWireError) -> bool {
    // Internal covers "worker already joined" after a recv raced the
    // worker's end: a fresh session is the cure.
    e.is_transient() || matches!(e, PgWireError::Internal(_)) || server_error_is_transient(e)
}

/// Server errors that end a session but not the pipeline: the walsender
/// was terminated (admin shutdown, a failover, a server restart), the
/// server is starting up or out of connections, or a connection exception.
fn server_error_is_transient(e: &PgWireError) -> bool {
    match e {
        PgWireError::Server(message) => has_transient_sqlstate(message),
        _ => false,
    }
}

/// Whether a server message names a SQLSTATE worth reconnecting for.
fn has_transient_sqlstate(message: &str) -> bool {
    const TRANSIENT_SQLSTATES: [&str; 6] = ["57P01", "57P02", "57P03", "53300", "08006", "08003"];
    TRANSIENT_SQLSTATES
        .iter()
        .any(|code| message.contains(&format!("SQLSTATE {code}")))
}

/// Run the producer until shutdown (or, with `snapshot = initial_only`,
/// until the snapshot is delivered).
pub async fn run_produce(
    config: &Config,
    sink: SinkChoice,
    shutdown: Shutdown,
) -> Result<(), ProduceError> {
    health().set(
        SOURCE_CONDITION,
        Err("connecting to the replication slot".into()),
    );
    telemetry::serve_if_configured(config, &shutdown).await?;
    match sink {
        SinkChoice::Kinesis => {
            let writer = KinesisWriter::from_config(&config.kinesis).await;
            let opened = open_with_stream(config, &writer).await?;
            let probe = writer.clone();
            health().set_probe(
                "kinesis",
                Arc::new(move || {
                    let probe = probe.clone();
                    Box::pin(async move { probe.check().await.map_err(|e| e.to_string()) })
                }),
            );
            let limit = Some(config.kinesis.max_record_bytes);
            produce(config, opened, writer, limit, false, shutdown)
                .await
                .map_err(|e| e.with_role(config))
        }
        SinkChoice::Stdout => run_with_writer(config, StdoutWriter, None, true, shutdown).await,
        SinkChoice::StdoutAdvancingSlot => {
            run_with_writer(config, StdoutWriter, None, false, shutdown).await
        }
    }
}

/// The producer over any [`RecordWriter`]. `record_limit`: the sink's
/// per-record size limit, if any. `temporary_slot`: read a temporary slot
/// of this run's own (no effect on the configured slot, its marker or the
/// publication) instead of the configured one.
pub async fn run_with_writer<W: RecordWriter>(
    config: &Config,
    writer: W,
    record_limit: Option<usize>,
    temporary_slot: bool,
    shutdown: Shutdown,
) -> Result<(), ProduceError> {
    let opened = open_source(config).await.map_err(|e| e.with_role(config))?;
    produce(
        config,
        opened,
        writer,
        record_limit,
        temporary_slot,
        shutdown,
    )
    .await
    .map_err(|e| e.with_role(config))
}

pub(crate) use crate::sql::display_ident;

/// The source, checked before anything is created: the server version,
/// `wal_level`, and every configured table (exists, has a key, readable).
pub struct OpenedSource {
    admin: tokio_postgres::Client,
    tables: Vec<Relation>,
}

/// Connects to the source and checks it (see [`OpenedSource`]).
pub async fn open_source(config: &Config) -> Result<OpenedSource, ProduceError> {
    let source = &config.source;
    let admin = connect_sql(&source.url).await?;
    let version = check_server_version(&admin).await?;
    tracing::info!(version, "PostgreSQL server version supported");
    check_wal_level(&admin).await?;
    let tables = resolve_tables(&admin, &source.tables).await?;
    Ok(OpenedSource { admin, tables })
}

/// The source side and the Kinesis stream, checked at the same time: when
/// both are wrong, both are reported (the source first: it is the likelier
/// mistake).
async fn open_with_stream(
    config: &Config,
    writer: &KinesisWriter,
) -> Result<OpenedSource, ProduceError> {
    let (source, stream) = tokio::join!(open_source(config), writer.check());
    match (source.map_err(|e| e.with_role(config)), stream) {
        (Ok(opened), Ok(())) => {
            tracing::info!(stream = writer.stream_name(), "Kinesis stream reachable");
            Ok(opened)
        }
        (Err(source), Ok(())) => Err(source),
        (Ok(_), Err(stream)) => Err(stream.into()),
        (Err(source), Err(stream)) => Err(ProduceError::StartUp {
            source_problem: source.to_string(),
            stream_problem: stream.to_string(),
        }),
    }
}

/// Records (snapshot mode `never`) that the slot streams `configured`
/// without an initial snapshot.
async fn mark_snapshot_skipped(
    admin: &tokio_postgres::Client,
    source: &crate::config::SourceConfig,
    configured: &[coverage::TableName],
) -> Result<(), ProduceError> {
    let marker = coverage::with_tables(&skipped_marker(&source.slot), configured);
    set_snapshot_marker(admin, &source.publication, Some(&marker)).await
}

/// Where streaming starts: the session (still gated after a snapshot or a
/// slot created now) and the LSN to confirm from. `None`: nothing to
/// stream (the snapshot was all, or shutdown came first).
type StreamStart = Option<(Option<ReplicationClient>, Lsn)>;

/// What the start-up steps share.
struct Start<'a> {
    config: &'a Config,
    admin: &'a tokio_postgres::Client,
    tables: &'a [Relation],
    configured: Vec<coverage::TableName>,
    ctx: &'a EventContext,
    shutdown: &'a Shutdown,
}

async fn produce<W: RecordWriter>(
    config: &Config,
    opened: OpenedSource,
    writer: W,
    record_limit: Option<usize>,
    temporary_slot: bool,
    shutdown: Shutdown,
) -> Result<(), ProduceError> {
    let source = &config.source;
    let OpenedSource { admin, mut tables } = opened;
    let configured = coverage::table_names(&tables);
    let aliases = Arc::new(domain_base_types(&admin).await?);
    for column in tables.iter_mut().flat_map(|t| t.columns.iter_mut()) {
        if let Some(base) = aliases.get(&column.type_oid) {
            column.type_oid = *base;
        }
    }
    let ctx = EventContext {
        slot: source.slot.clone(),
        database: database_name(&source.url)?,
    };
    let mut repl_config = replication_config(source)?;
    let mut delivery = Delivery::new(writer, &config.kinesis, record_limit);
    let start = Start {
        config,
        admin: &admin,
        tables: &tables,
        configured: configured.clone(),
        ctx: &ctx,
        shutdown: &shutdown,
    };
    let started = if temporary_slot {
        repl_config.slot = temporary_slot_name(&source.slot);
        start
            .on_temporary_slot(repl_config.clone(), &mut delivery)
            .await?
    } else {
        start
            .on_configured_slot(repl_config.clone(), &mut delivery)
            .await?
    };
    let Some((gated, ack)) = started else {
        return Ok(());
    };
    drop(admin);

    let heartbeat = tokio::spawn(heartbeat_loop(
        source.url.clone(),
        Duration::from_secs(source.heartbeat_interval_secs.max(1)),
        shutdown.clone(),
    ));
    let mut streamer = Streamer {
        watch: PublicationWatch::new(&source.url, &source.publication, configured),
        check_every: Duration::from_secs(source.heartbeat_interval_secs.max(1)),
        ctx,
        wanted: tables
            .iter()
            .map(|t| (t.schema.clone(), t.name.clone()))
            .collect(),
        cache: RelationCache::with_type_aliases(aliases).with_partition_keys(&tables),
        wanted_ids: HashSet::new(),
        txn: None,
        skipping: false,
        last_enqueued_commit: Lsn::ZERO,
    };
    let result = streamer
        .run(repl_config, gated, ack, &mut delivery, &shutdown)
        .await;
    heartbeat.abort();
    result
}

impl Start<'_> {
    /// `--sink stdout`: a temporary slot (with its own snapshot unless
    /// `snapshot = never`); the configured slot and the snapshot marker are
    /// not touched, and the publication is only created if missing.
    async fn on_temporary_slot<W: RecordWriter>(
        &self,
        repl_config: pgwire_replication::ReplicationConfig,
        delivery: &mut Delivery<W>,
    ) -> Result<StreamStart, ProduceError> {
        let source = &self.config.source;
        if publication_exists(self.admin, &source.publication).await? {
            if let Some(table) =
                coverage::first_missing(self.admin, &source.publication, &self.configured).await?
            {
                return Err(ProduceError::PreviewPublicationLacksTable {
                    publication: display_ident(&source.publication),
                    table: crate::sql::display_qualified(&table.0, &table.1),
                });
            }
        } else {
            ensure_publication(self.admin, &source.publication, self.tables).await?;
        }
        tracing::info!(slot = %repl_config.slot, "--sink stdout reads a temporary slot: source.slot, its snapshot marker and the publication are left as they are");
        if source.snapshot == SnapshotMode::Never {
            let (client, point) = create_slot_without_snapshot(repl_config, true).await?;
            return Ok(Some((Some(client), point)));
        }
        let snapshot = take_snapshot(
            source,
            repl_config,
            self.admin,
            self.tables,
            self.ctx,
            delivery,
            self.shutdown,
            SlotUse::Temporary,
        )
        .await?;
        Ok(snapshot
            .filter(|_| source.snapshot != SnapshotMode::InitialOnly)
            .map(|s| (Some(s.client), s.consistent_point)))
    }

    /// The configured slot: created (with the snapshot the mode asks for)
    /// or resumed from its confirmed LSN, the snapshot marker kept.
    async fn on_configured_slot<W: RecordWriter>(
        &self,
        repl_config: pgwire_replication::ReplicationConfig,
        delivery: &mut Delivery<W>,
    ) -> Result<StreamStart, ProduceError> {
        let (source, admin, configured) = (&self.config.source, self.admin, &self.configured);
        // Tables the snapshot marker says are streamed must still be published:
        // never silently add a dropped one back (its changes since are lost).
        let recorded = snapshot_marker(admin, &source.publication)
            .await?
            .filter(|m| marker_says_ready(Some(m), &source.slot))
            .map(|m| coverage::recorded_tables(&m))
            .unwrap_or_default();
        let streamed: Vec<_> = configured
            .iter()
            .filter(|t| recorded.contains(t))
            .cloned()
            .collect();
        if let Some(table) = coverage::first_missing(admin, &source.publication, &streamed).await? {
            return Err(coverage::dropped(&source.publication, &table));
        }
        let added = ensure_publication(admin, &source.publication, self.tables).await?;
        let slot = slot_info(admin, &source.slot).await?;
        if let Some(info) = &slot {
            if info.plugin.as_deref() != Some("pgoutput")
                || info.database.as_deref() != Some(self.ctx.database.as_str())
            {
                return Err(ProduceError::SlotUnusable {
                    slot: source.slot.clone(),
                    detail: format!(
                        "it uses plugin {:?} on database {:?}; kinesync needs pgoutput on {:?} (choose another source.slot)",
                        info.plugin, info.database, self.ctx.database
                    ),
                });
            }
        }
        let marker = snapshot_marker(admin, &source.publication).await?;
        let ready = marker_says_ready(marker.as_deref(), &source.slot);
        let mode = source.snapshot;
        let ack = slot.as_ref().map(|s| s.confirmed_flush).unwrap_or_default();
        match (&slot, ready, mode) {
            (Some(_), true, SnapshotMode::InitialOnly) => {
                tracing::info!(
                    "snapshot already delivered for this slot; nothing to do (snapshot = initial_only)"
                );
                Ok(None)
            }
            (Some(_), true, _) => {
                if let Some(text) = marker.as_deref() {
                    if configured.iter().any(|t| !recorded.contains(t)) {
                        let mut all = recorded.clone();
                        all.extend(configured.iter().filter(|t| !recorded.contains(t)).cloned());
                        set_snapshot_marker(
                            admin,
                            &source.publication,
                            Some(&coverage::with_tables(text, &all)),
                        )
                        .await?;
                    }
                }
                if !added.is_empty() {
                    tracing::warn!(
                        tables = ?added,
                        "tables were added to the publication after the initial snapshot: only their changes from now on are streamed, existing rows are not copied"
                    );
                }
                Ok(Some((None, ack)))
            }
            (Some(_), false, SnapshotMode::Never) => {
                mark_snapshot_skipped(admin, source, configured).await?;
                Ok(Some((None, ack)))
            }
            (None, true, _) => Err(ProduceError::SlotMissing {
                slot: source.slot.clone(),
                detail: format!(
                    "it was dropped after the snapshot completed, so changes since then are lost. To re-sync from scratch, run COMMENT ON PUBLICATION {} IS NULL and restart (a new snapshot is taken)",
                    source.publication
                ),
            }),
            (None, false, SnapshotMode::Never) => {
                let (_, point) = create_slot_without_snapshot(repl_config, false).await?;
                mark_snapshot_skipped(admin, source, configured).await?;
                tracing::info!(slot = %source.slot, consistent_point = %point, "created slot without snapshot");
                Ok(Some((None, point)))
            }
            (existing, false, _) => {
                let redo =
                    existing.is_some() || marker_says_started(marker.as_deref(), &source.slot);
                if let Some(info) = existing {
                    if let Some(pid) = info.active_pid {
                        return Err(ProduceError::SlotInUse {
                            slot: source.slot.clone(),
                            pid: pid.to_string(),
                        });
                    }
                    tracing::warn!(slot = %source.slot, "the previous snapshot did not finish: dropping the slot and starting over");
                    drop_slot(admin, &source.slot).await?;
                }
                let slot_use = if redo { SlotUse::Redo } else { SlotUse::Fresh };
                let snapshot = take_snapshot(
                    source,
                    repl_config,
                    admin,
                    self.tables,
                    self.ctx,
                    delivery,
                    self.shutdown,
                    slot_use,
                )
                .await?;
                Ok(snapshot
                    .filter(|_| mode != SnapshotMode::InitialOnly)
                    .map(|s| (Some(s.client), s.consistent_point)))
            }
        }
    }
}

/// Sequence numbers -> the confirmable LSN.
///
/// Records get consecutive sequence numbers as they are queued; a commit
/// registers (first sequence number after the transaction, end LSN). Acks may
/// arrive in any order; `next_unacked` is the lowest number not yet
/// accepted, and a commit is confirmable once all its numbers are below it.
#[derive(Debug, Default)]
pub struct AckTracker {
    next_seq: u64,
    next_unacked: u64,
    acked_ahead: BTreeSet<u64>,
    /// (first sequence number after the transaction, end LSN, commit time ms).
    commits: VecDeque<(u64, Lsn, Option<i64>)>,
    confirmed: Lsn,
    /// Source commit time of the newest confirmable transaction, if known.
    confirmed_commit_time_ms: Option<i64>,
}

impl AckTracker {
    pub fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    pub fn ack(&mut self, seq: u64) {
        if seq == self.next_unacked {
            self.next_unacked += 1;
            while self.acked_ahead.remove(&self.next_unacked) {
                self.next_unacked += 1;
            }
        } else if seq > self.next_unacked {
            self.acked_ahead.insert(seq);
        }
    }

    /// The transaction ending at `end_lsn` owns every number handed out so far.
    pub fn commit(&mut self, end_lsn: Lsn) {
        self.commit_at(end_lsn, None);
    }

    /// [`commit`](Self::commit), remembering the source commit time (Unix ms).
    pub fn commit_at(&mut self, end_lsn: Lsn, commit_time_ms: Option<i64>) {
        self.commits
            .push_back((self.next_seq, end_lsn, commit_time_ms));
    }

    /// The newest confirmable end LSN, if it moved since the last call.
    pub fn take_confirmable(&mut self) -> Option<Lsn> {
        let mut moved = None;
        while let Some(&(bound, lsn, commit_time_ms)) = self.commits.front() {
            if bound > self.next_unacked {
                break;
            }
            self.commits.pop_front();
            if lsn > self.confirmed {
                self.confirmed = lsn;
                self.confirmed_commit_time_ms = commit_time_ms.or(self.confirmed_commit_time_ms);
                moved = Some(lsn);
            }
        }
        moved
    }

    pub fn confirmed(&self) -> Lsn {
        self.confirmed
    }

    /// Source commit time (Unix ms) of the newest confirmable transaction.
    pub fn confirmed_commit_time_ms(&self) -> Option<i64> {
        self.confirmed_commit_time_ms
    }
}

/// The sink side shared by the snapshot and the stream: size policy,
/// sequence numbers, dispatcher and acknowledgement tracking.
pub struct Delivery<W: RecordWriter> {
    dispatcher: Dispatcher<W>,
    tracker: AckTracker,
    record_limit: Option<usize>,
    oversize: OversizePolicy,
    dead_letter_path: Option<PathBuf>,
}

impl<W: RecordWriter> Delivery<W> {
    pub fn new(writer: W, kinesis: &KinesisConfig, record_limit: Option<usize>) -> Self {
        let limits = DispatcherLimits {
            max_records_per_request: kinesis.max_records_per_request,
            max_bytes_per_request: kinesis.max_bytes_per_request,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        };
        Delivery {
            dispatcher: Dispatcher::new(writer, limits),
            tracker: AckTracker::default(),
            record_limit,
            oversize: kinesis.oversize,
            dead_letter_path: kinesis.dead_letter_path.clone(),
        }
    }

    /// Queue one event (applying the oversize policy) and start full batches.
    pub fn push_event(&mut self, ev: EncodedEvent) -> Result<(), ProduceError> {
        metrics().events_read.inc();
        if let Some(limit) = self.record_limit {
            let bytes = ev.size();
            if bytes > limit {
                return self.oversize(ev, bytes, limit);
            }
        }
        let seq = self.tracker.next_seq();
        self.dispatcher.push(OutRecord {
            seq,
            partition_key: ev.partition_key,
            data: ev.data,
        });
        self.dispatcher.dispatch(false);
        Ok(())
    }

    fn oversize(
        &mut self,
        ev: EncodedEvent,
        bytes: usize,
        limit: usize,
    ) -> Result<(), ProduceError> {
        match (self.oversize, &self.dead_letter_path) {
            (OversizePolicy::DeadLetter, Some(path)) => {
                let mut line = String::with_capacity(ev.data.len() + 256);
                line.push_str("{\"reason\":\"oversize\",\"bytes\":");
                line.push_str(&bytes.to_string());
                line.push_str(",\"limit\":");
                line.push_str(&limit.to_string());
                line.push_str(",\"table\":");
                crate::event::push_json_str(&mut line, &ev.table);
                line.push_str(",\"key\":");
                crate::event::push_json_str(&mut line, &ev.key);
                line.push_str(",\"partition_key\":");
                crate::event::push_json_str(&mut line, &ev.partition_key);
                line.push_str(",\"event\":");
                line.push_str(&String::from_utf8_lossy(&ev.data));
                line.push_str("}\n");
                let io = |e: std::io::Error| ProduceError::DeadLetter {
                    path: path.clone(),
                    detail: e.to_string(),
                };
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(io)?;
                file.write_all(line.as_bytes()).map_err(io)?;
                file.sync_data().map_err(io)?;
                tracing::warn!(table = %ev.table, bytes, limit, path = %path.display(), "oversize event written to the dead-letter file");
                Ok(())
            }
            _ => Err(ProduceError::OversizeRecord {
                table: ev.table,
                key: ev.key,
                bytes,
                limit,
            }),
        }
    }

    /// The transaction ending at `end_lsn`, committed at the source at
    /// `commit_time_ms` (Unix ms), owns every event pushed so far.
    pub fn commit(&mut self, end_lsn: Lsn, commit_time_ms: Option<i64>) {
        self.tracker.commit_at(end_lsn, commit_time_ms);
        self.dispatcher.dispatch(true);
    }

    pub fn has_room(&self) -> bool {
        let (records, bytes) = self.dispatcher.buffered();
        records < MAX_BUFFERED_RECORDS && bytes < MAX_BUFFERED_BYTES
    }

    /// Wait for one request to finish; record its acks; start more.
    pub async fn completion(&mut self) -> Result<(), ProduceError> {
        let acks = self.dispatcher.next_completion().await?;
        health().beat();
        for seq in acks.accepted {
            self.tracker.ack(seq);
        }
        self.dispatcher.dispatch(true);
        Ok(())
    }

    /// Make progress without new input: a completion or a due retry.
    async fn step(&mut self) -> Result<(), ProduceError> {
        self.dispatcher.dispatch(true);
        if self.dispatcher.has_in_flight() {
            self.completion().await
        } else if let Some(at) = self.dispatcher.next_retry() {
            tokio::time::sleep_until(at).await;
            self.dispatcher.dispatch(true);
            Ok(())
        } else {
            Ok(())
        }
    }

    /// Backpressure for producers that are not in a `select!` (the snapshot).
    pub async fn wait_for_room(&mut self) -> Result<(), ProduceError> {
        while !self.has_room() {
            self.step().await?;
        }
        Ok(())
    }

    /// Deliver everything queued. `false` if shutdown (or `deadline`) came first.
    pub async fn drain(
        &mut self,
        shutdown: &Shutdown,
        deadline: Option<Instant>,
    ) -> Result<bool, ProduceError> {
        loop {
            self.dispatcher.dispatch(true);
            if self.dispatcher.is_idle() {
                return Ok(true);
            }
            let far = Instant::now() + Duration::from_secs(86_400 * 365);
            tokio::select! {
                biased;
                _ = shutdown.wait(), if deadline.is_none() => return Ok(false),
                _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => return Ok(false),
                r = self.step() => r?,
            }
        }
    }

    /// The newest confirmable end LSN, if it moved; also what the
    /// confirmed-LSN and commit-to-ack-lag metrics show.
    pub fn take_confirmable(&mut self) -> Option<Lsn> {
        let moved = self.tracker.take_confirmable()?;
        let m = metrics();
        m.confirmed_lsn.set(lsn_gauge(moved));
        if let Some(committed) = self.tracker.confirmed_commit_time_ms() {
            let lag_ms = crate::event::now_ms().saturating_sub(committed).max(0);
            m.commit_to_ack_lag.set(lag_ms as f64 / 1000.0);
        }
        Some(moved)
    }

    pub fn confirmed(&self) -> Lsn {
        self.tracker.confirmed()
    }

    fn has_in_flight(&self) -> bool {
        self.dispatcher.has_in_flight()
    }

    /// Every event pushed so far was accepted by the sink.
    fn is_idle(&self) -> bool {
        self.dispatcher.is_idle()
    }

    fn next_retry(&self) -> Option<Instant> {
        self.dispatcher.next_retry()
    }
}

/// The transaction being received.
#[derive(Debug, Clone, Copy)]
struct Txn {
    commit_lsn: Lsn,
    xid: u32,
    commit_time_ms: i64,
}

/// Streaming state for one run (survives reconnects).
struct Streamer {
    /// The publication still covers every configured table.
    watch: PublicationWatch,
    check_every: Duration,
    ctx: EventContext,
    /// Configured tables (a pre-existing publication may publish more).
    wanted: HashSet<(String, String)>,
    cache: RelationCache,
    wanted_ids: HashSet<u32>,
    txn: Option<Txn>,
    /// Inside a transaction already queued before a reconnect.
    skipping: bool,
    /// Commit LSN of the newest transaction whose events are queued.
    last_enqueued_commit: Lsn,
}

impl Streamer {
    async fn run<W: RecordWriter>(
        &mut self,
        config: pgwire_replication::ReplicationConfig,
        gated: Option<ReplicationClient>,
        ack: Lsn,
        delivery: &mut Delivery<W>,
        shutdown: &Shutdown,
    ) -> Result<(), ProduceError> {
        let slot = config.slot.clone();
        let mut client = match gated {
            Some(mut c) => {
                c.start()
                    .await
                    .map_err(|e| ProduceError::from_replication(&slot, e))?;
                c.wait_started()
                    .await
                    .map_err(|e| ProduceError::from_replication(&slot, e))?;
                c
            }
            None => start_with_busy_wait(config.clone(), ack).await?,
        };
        tracing::info!(slot, from = %ack, "streaming changes");
        health().set(SOURCE_CONDITION, Ok(()));
        metrics().confirmed_lsn.set(lsn_gauge(ack));
        let mut confirmed = ack;
        let mut failures: u32 = 0;
        let mut beat = tokio::time::interval(BEAT_INTERVAL);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watch_timer = tokio::time::interval(self.check_every);
        watch_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            health().beat();
            let retry_at = delivery.next_retry();
            let event = tokio::select! {
                biased;
                // 1. Shutdown: stop reading, drain, confirm.
                _ = shutdown.wait() => break,
                // The publication must still cover every configured table.
                _ = watch_timer.tick() => {
                    self.watch.check().await?;
                    continue;
                }
                // 2. Sink completions: acks become confirmable LSNs.
                r = delivery.completion(), if delivery.has_in_flight() => {
                    r?;
                    if let Some(lsn) = delivery.take_confirmable() {
                        client.update_applied_lsn(lsn.into());
                        confirmed = lsn;
                    }
                    continue;
                }
                // 3. A failed record's retry time came.
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    delivery.step().await?;
                    continue;
                }
                // 4. New data, while there is room for it.
                ev = client.recv(), if delivery.has_room() => ev,
                // 5. Nothing happened for a while: still alive.
                _ = beat.tick() => continue,
            };
            match event {
                Ok(Some(ev)) => {
                    failures = 0;
                    let idle_at = self.idle_position(&ev, delivery, confirmed);
                    self.handle(ev, delivery)?;
                    // A transaction without events for the sink (a heartbeat,
                    // or changes of unpublished tables) is confirmable at once.
                    if let Some(lsn) = delivery.take_confirmable() {
                        client.update_applied_lsn(lsn.into());
                        confirmed = lsn;
                    }
                    if let Some(lsn) = idle_at {
                        client.update_applied_lsn(lsn.into());
                        metrics().confirmed_lsn.set(lsn_gauge(lsn));
                        confirmed = lsn;
                    }
                }
                Ok(None) => {
                    return Err(ProduceError::Replication {
                        detail: "the server ended the replication stream".into(),
                    })
                }
                Err(e) if is_transient(&e) => {
                    failures += 1;
                    let delay = reconnect_delay(failures);
                    tracing::warn!(error = %e, retry_in = ?delay, "replication connection lost; reconnecting");
                    health().set(
                        SOURCE_CONDITION,
                        Err(format!("replication connection lost, reconnecting: {e}")),
                    );
                    self.reset_for_reconnect();
                    client = loop {
                        health().beat();
                        tokio::select! {
                            _ = shutdown.wait() => {
                                return finish(None, delivery, confirmed, shutdown).await;
                            }
                            _ = tokio::time::sleep(delay) => {}
                        }
                        match start_stream(config.clone(), confirmed).await {
                            Ok(c) => break c,
                            // Down, starting up, or still holding the old
                            // session's slot: wait and try again.
                            Err(
                                ProduceError::Connect { detail, .. }
                                | ProduceError::SlotInUse { pid: detail, .. },
                            ) => {
                                failures += 1;
                                tracing::warn!(%detail, "reconnect failed; retrying");
                            }
                            Err(ProduceError::Replication { detail })
                                if has_transient_sqlstate(&detail) =>
                            {
                                failures += 1;
                                tracing::warn!(%detail, "reconnect failed; retrying");
                            }
                            Err(other) => return Err(other),
                        }
                    };
                    tracing::info!(from = %confirmed, "replication reconnected");
                    health().set(SOURCE_CONDITION, Ok(()));
                }
                Err(e) => return Err(ProduceError::from_replication(&slot, e)),
            }
        }
        finish(Some(client), delivery, confirmed, shutdown).await
    }

    /// The server's position from a keepalive, when it may be confirmed:
    /// outside a transaction, with every event delivered, nothing before
    /// it is still owed to the sink (WAL since our last commit decodes to
    /// nothing for us). A fast server shutdown waits until its walsenders'
    /// clients confirm exactly this position, and its last WAL record is
    /// often no commit of ours (an abort, a checkpoint): confirming it at
    /// once lets the server stop. Mid-transaction the position may already
    /// be past the commit whose events are still arriving: never then.
    fn idle_position<W: RecordWriter>(
        &self,
        ev: &ReplicationEvent,
        delivery: &Delivery<W>,
        confirmed: Lsn,
    ) -> Option<Lsn> {
        let ReplicationEvent::KeepAlive { wal_end, .. } = ev else {
            return None;
        };
        let at = Lsn::from(*wal_end);
        (at > confirmed && self.txn.is_none() && delivery.is_idle()).then_some(at)
    }

    fn reset_for_reconnect(&mut self) {
        self.cache.clear();
        self.wanted_ids.clear();
        self.txn = None;
        self.skipping = false;
    }

    fn handle<W: RecordWriter>(
        &mut self,
        ev: ReplicationEvent,
        delivery: &mut Delivery<W>,
    ) -> Result<(), ProduceError> {
        match ev {
            ReplicationEvent::Begin {
                final_lsn,
                xid,
                commit_time_micros,
            } => {
                let commit_lsn = Lsn::from(final_lsn);
                self.skipping = commit_lsn <= self.last_enqueued_commit;
                self.txn = Some(Txn {
                    commit_lsn,
                    xid,
                    commit_time_ms: pg_micros_to_unix_ms(commit_time_micros),
                });
            }
            ReplicationEvent::Commit { lsn, end_lsn, .. } => {
                if !std::mem::take(&mut self.skipping) {
                    delivery.commit(end_lsn.into(), self.txn.map(|t| t.commit_time_ms));
                    self.last_enqueued_commit = lsn.into();
                }
                self.txn = None;
            }
            ReplicationEvent::XLogData {
                wal_start, data, ..
            } => {
                let message = decode(data)?;
                self.change(message, wal_start.into(), delivery)?;
            }
            ReplicationEvent::Message { prefix, .. } => {
                if prefix != HEARTBEAT_PREFIX {
                    tracing::debug!(prefix, "ignoring logical decoding message");
                }
            }
            ReplicationEvent::KeepAlive { .. } | ReplicationEvent::StoppedAt { .. } => {}
        }
        Ok(())
    }

    fn relation(&self, id: u32) -> Result<Arc<Relation>, ProduceError> {
        self.cache
            .get(id)
            .ok_or(ProduceError::UnknownRelation { id })
    }

    fn change<W: RecordWriter>(
        &mut self,
        message: LogicalMessage,
        lsn: Lsn,
        delivery: &mut Delivery<W>,
    ) -> Result<(), ProduceError> {
        let relation_id = match &message {
            LogicalMessage::Relation(body) => {
                if self
                    .wanted
                    .contains(&(body.schema.clone(), body.name.clone()))
                {
                    self.wanted_ids.insert(body.id);
                } else {
                    self.wanted_ids.remove(&body.id);
                }
                None
            }
            LogicalMessage::Insert { relation_id, .. }
            | LogicalMessage::Update { relation_id, .. }
            | LogicalMessage::Delete { relation_id, .. } => Some(*relation_id),
            _ => None,
        };
        if let LogicalMessage::Relation(body) = message {
            self.cache.insert(body);
            return Ok(());
        }
        if self.skipping {
            return Ok(());
        }
        if relation_id.is_some_and(|id| !self.wanted_ids.contains(&id)) {
            return Ok(());
        }
        let Some(txn) = self.txn else {
            return match message {
                LogicalMessage::Type { .. }
                | LogicalMessage::Origin { .. }
                | LogicalMessage::Other(_) => Ok(()),
                _ => Err(ProduceError::Replication {
                    detail: "a change arrived outside a transaction".into(),
                }),
            };
        };
        let meta = |op| ChangeMeta {
            op,
            snapshot: SnapshotMarker::False,
            commit_time_ms: txn.commit_time_ms,
            txid: Some(txn.xid),
            commit_lsn: txn.commit_lsn,
            lsn,
        };
        match message {
            LogicalMessage::Insert { relation_id, new } => {
                let rel = self.relation(relation_id)?;
                let after = row_from_tuple(&rel, &new, false)?;
                delivery.push_event(encode_event(
                    &self.ctx,
                    &rel,
                    &meta(Op::Create),
                    None,
                    Some(&after),
                ))?;
            }
            LogicalMessage::Update {
                relation_id,
                old,
                new,
            } => {
                let rel = self.relation(relation_id)?;
                let before = match old {
                    Some((kind, values)) => {
                        Some(row_from_tuple(&rel, &values, kind == OldTupleKind::Key)?)
                    }
                    None => None,
                };
                let after = row_from_tuple(&rel, &new, false)?;
                delivery.push_event(encode_event_with(
                    &self.ctx,
                    &rel,
                    &meta(Op::Update),
                    before.as_ref(),
                    Some(&after),
                    &unchanged_toast(&new),
                ))?;
            }
            LogicalMessage::Delete {
                relation_id,
                old: (kind, values),
            } => {
                let rel = self.relation(relation_id)?;
                let before = row_from_tuple(&rel, &values, kind == OldTupleKind::Key)?;
                delivery.push_event(encode_event(
                    &self.ctx,
                    &rel,
                    &meta(Op::Delete),
                    Some(&before),
                    None,
                ))?;
            }
            LogicalMessage::Truncate { relation_ids, .. } => {
                for id in relation_ids {
                    if !self.wanted_ids.contains(&id) {
                        continue;
                    }
                    let rel = self.relation(id)?;
                    delivery.push_event(encode_event(
                        &self.ctx,
                        &rel,
                        &meta(Op::Truncate),
                        None,
                        None,
                    ))?;
                }
            }
            LogicalMessage::Relation(_)
            | LogicalMessage::Type { .. }
            | LogicalMessage::Origin { .. }
            | LogicalMessage::Other(_) => {}
        }
        Ok(())
    }
}

/// Graceful end: deliver what is queued (bounded by [`DRAIN_TIMEOUT`]),
/// confirm it, make sure the server heard, close the session.
async fn finish<W: RecordWriter>(
    client: Option<ReplicationClient>,
    delivery: &mut Delivery<W>,
    mut confirmed: Lsn,
    shutdown: &Shutdown,
) -> Result<(), ProduceError> {
    tracing::info!("stopping: delivering in-flight events");
    let drained = delivery
        .drain(shutdown, Some(Instant::now() + DRAIN_TIMEOUT))
        .await?;
    if !drained {
        tracing::warn!("gave up waiting for the sink; undelivered events were not confirmed and will be re-sent on the next start");
    }
    if let Some(lsn) = delivery.take_confirmable() {
        confirmed = lsn;
    }
    if let Some(mut client) = client {
        if !confirmed.is_zero() {
            client.update_applied_lsn(confirmed.into());
            let metrics = client.metrics();
            let deadline = Instant::now()
                + crate::source::replication::STATUS_INTERVAL * 2
                + Duration::from_secs(1);
            while Lsn::from(metrics.last_applied_lsn()) < confirmed
                && Instant::now() < deadline
                && client.is_running()
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), client.shutdown()).await;
    }
    tracing::info!(confirmed = %confirmed, "producer stopped");
    Ok(())
}

/// Start streaming, waiting (bounded) for a slot a previous session still holds.
async fn start_with_busy_wait(
    config: pgwire_replication::ReplicationConfig,
    ack: Lsn,
) -> Result<ReplicationClient, ProduceError> {
    let give_up = Instant::now() + SLOT_BUSY_WAIT;
    let mut attempt = 0;
    loop {
        match start_stream(config.clone(), ack).await {
            Err(ProduceError::SlotInUse { .. }) if Instant::now() < give_up => {
                attempt += 1;
                tracing::warn!("replication slot still held by a previous session; waiting");
                tokio::time::sleep(reconnect_delay(attempt)).await;
            }
            other => return other,
        }
    }
}

/// An LSN as a gauge value (LSNs stay far below `i64::MAX` in practice).
fn lsn_gauge(lsn: Lsn) -> i64 {
    i64::try_from(lsn.0).unwrap_or(i64::MAX)
}

fn reconnect_delay(failures: u32) -> Duration {
    RECONNECT_BASE_DELAY
        .saturating_mul(1 << failures.saturating_sub(1).min(8))
        .min(RECONNECT_MAX_DELAY)
}

/// Every `interval`, write a transactional logical message so the slot sees
/// a commit (and can be confirmed) even when the published tables are quiet.
async fn heartbeat_loop(url: String, interval: Duration, shutdown: Shutdown) {
    let mut client = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = ticker.tick() => {}
        }
        if client.is_none() {
            match connect_sql(&url).await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    tracing::warn!("heartbeat: {e}");
                    continue;
                }
            }
        }
        if let Some(c) = &client {
            if let Err(e) = c
                .execute(
                    "SELECT pg_logical_emit_message(true, $1, '')",
                    &[&HEARTBEAT_PREFIX],
                )
                .await
            {
                tracing::warn!(
                    "heartbeat failed: {}",
                    crate::source::replication::pg_message(&e)
                );
                client = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirms_only_fully_acked_transactions_in_order() {
        let mut t = AckTracker::default();
        // txn A: seqs 0,1; txn B: seq 2; txn C (heartbeat): none.
        let (a0, a1) = (t.next_seq(), t.next_seq());
        t.commit(Lsn(100));
        let b0 = t.next_seq();
        t.commit(Lsn(200));
        t.commit(Lsn(300));
        assert_eq!(t.take_confirmable(), None);
        t.ack(b0); // B done, but A is not: nothing confirmable.
        assert_eq!(t.take_confirmable(), None);
        t.ack(a1);
        assert_eq!(t.take_confirmable(), None);
        t.ack(a0); // now A, B and C.
        assert_eq!(t.take_confirmable(), Some(Lsn(300)));
        assert_eq!(t.take_confirmable(), None);
        assert_eq!(t.confirmed(), Lsn(300));
        // An idle heartbeat commit is confirmable at once.
        t.commit(Lsn(400));
        assert_eq!(t.take_confirmable(), Some(Lsn(400)));
    }

    #[test]
    fn reconnect_delay_caps() {
        assert_eq!(reconnect_delay(1), RECONNECT_BASE_DELAY);
        assert_eq!(reconnect_delay(100), RECONNECT_MAX_DELAY);
    }

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
        let e = ProduceError::from_replication(
            "kinesync",
            PgWireError::Server(
                "replication slot \"kinesync\" does not exist (SQLSTATE 42704)".into(),
            ),
        );
        assert!(matches!(e, ProduceError::SlotMissing { .. }), "{e}");
        let e = ProduceError::from_replication(
            "kinesync",
            PgWireError::Server(
                "password authentication failed for user \"x\" (SQLSTATE 28P01)".into(),
            ),
        );
        assert!(matches!(e, ProduceError::AuthFailed { .. }), "{e}");
        let e = ProduceError::from_replication(
            "kinesync",
            PgWireError::Server(
                "replication slot \"kinesync\" is active for PID 42 (SQLSTATE 55006)".into(),
            ),
        );
        assert!(matches!(e, ProduceError::SlotInUse { .. }), "{e}");
    }
}
