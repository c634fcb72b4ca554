//! `produce`: PostgreSQL -> events -> sink, with acknowledgements flowing back
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
//!
//! The files, in the order a change travels: `start` (which slot, from
//! where, with or without a snapshot), `stream` (the loop), `delivery` (size
//! policy and the sink), `ack` (acknowledgements -> the confirmable LSN),
//! `heartbeat` (a commit when the tables are quiet), `error` (why it stopped).

mod ack;
mod delivery;
mod error;
mod heartbeat;
mod probe;
mod resync;
mod shapes;
mod snapshot;
mod start;
mod stream;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

pub use ack::AckTracker;
pub use delivery::Delivery;
pub use error::ProduceError;

use crate::config::Config;
use crate::event::{EventContext, Shape};
use crate::lsn::Lsn;
use crate::shutdown::Shutdown;
use crate::sink::kinesis::KinesisWriter;
use crate::sink::stdout::StdoutWriter;
use crate::sink::RecordWriter;
use crate::source::coverage::{self, PublicationWatch};
use crate::source::relation_cache::{Relation, RelationCache};
use crate::source::replication::{
    check_server_version, check_wal_level, connect_sql, database_name, replication_config,
    temporary_slot_name,
};
use crate::source::tables::{domain_base_types, resolve_tables};
use crate::sql::TableName;
use crate::telemetry::{self, health};
use heartbeat::heartbeat_loop;
use start::Start;
use stream::Streamer;

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
    let tables = resolve_tables(&admin, &source.tables, source.keyless_tables).await?;
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
    tables.iter_mut().for_each(|t| use_base_types(t, &aliases));
    // The key and types of each table as the resolver reads them: the
    // snapshot's shape records, and the key kinds of the streamed ones.
    let resolved =
        crate::source::tables::resolve(&admin, &source.tables, source.keyless_tables).await?;
    let shapes: Vec<Shape> = resolved.iter().map(Shape::of_table).collect();
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
        shapes: &shapes,
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
    let window = resync_window(config, temporary_slot, &configured, &aliases, &shutdown);
    let probe = (!temporary_slot).then(|| probe::ShapeProbe::new(&source.url, configured.clone()));
    let mut streamer = Streamer {
        watch: publication_watch(config, configured, temporary_slot),
        check_every: Duration::from_secs(source.heartbeat_interval_secs.max(1)),
        ctx,
        wanted: tables
            .iter()
            .map(|t| TableName::new(&t.schema, &t.name))
            .collect(),
        cache: RelationCache::with_type_aliases(aliases).with_partition_keys(&tables),
        plans: crate::encode::PlanCache::default(),
        wanted_ids: HashSet::new(),
        txn: None,
        skipping: false,
        last_enqueued_commit: Lsn::ZERO,
        shapes: shapes::StreamShapes::new(&source.url, &resolved),
        resync: window,
        probe,
    };
    let result = streamer
        .run(repl_config, gated, ack, &mut delivery, &shutdown)
        .await;
    heartbeat.abort();
    result
}

/// The resync driver of this producer, started, and the loop's end of its
/// link; none on a temporary slot (a look at the events re-syncs nothing).
fn resync_window(
    config: &Config,
    temporary_slot: bool,
    configured: &[TableName],
    aliases: &Arc<HashMap<u32, u32>>,
    shutdown: &Shutdown,
) -> resync::ResyncWindow {
    if temporary_slot {
        return resync::ResyncWindow::idle();
    }
    let source = &config.source;
    let (link, window) = resync::link();
    let driver = resync::DriverConfig {
        url: source.url.clone(),
        slot: source.slot.clone(),
        state_table: source.resync_table(),
        chunk_rows: source.resync_chunk_rows,
        keyless: source.keyless_tables,
        configured: configured.iter().cloned().collect(),
        aliases: Arc::clone(aliases),
    };
    tokio::spawn(resync::resync_driver(driver, link, shutdown.clone()));
    window
}

/// The check of the publication while streaming; following `schema.*`
/// entries only on the configured slot (a temporary slot changes nothing of
/// the pipeline's publication).
fn publication_watch(
    config: &Config,
    configured: Vec<TableName>,
    temporary_slot: bool,
) -> PublicationWatch {
    let source = &config.source;
    let patterns: &[String] = if temporary_slot { &[] } else { &source.tables };
    PublicationWatch::new(&source.url, &source.publication, configured)
        .following(patterns, source.keyless_tables)
}

/// Encode domain (and other aliased) columns as their base type.
pub(crate) fn use_base_types(table: &mut Relation, aliases: &HashMap<u32, u32>) {
    for column in &mut table.columns {
        if let Some(base) = aliases.get(&column.type_oid) {
            column.type_oid = *base;
        }
    }
}
