//! The resync driver: a task of its own, on an SQL session of its own,
//! that finds the requests, reads each table chunk by chunk and records
//! how far the stream holds it. It never stops the producer: a failure is
//! logged and the request tried again later, from its last recorded chunk.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Client;

use super::{DriverLink, Outcome, ToLoop, Wake};
use crate::config::KeylessTables;
use crate::event::Shape;
use crate::lsn::Lsn;
use crate::produce::snapshot::encode_row;
use crate::shutdown::Shutdown;
use crate::source::error::SourceError;
use crate::source::progress::SnapshotProgress;
use crate::source::relation_cache::Relation;
use crate::source::replication::connect_sql;
use crate::source::resync::{self, ChunkSpec, Request};
use crate::source::snapshot::estimated_rows;
use crate::source::tables::{admit, describe};
use crate::sql::TableName;

/// How often the state table is read when no request message woke us.
const POLL_INTERVAL: Duration = Duration::from_secs(30);
/// How long to wait after a failed attempt.
const RETRY_DELAY: Duration = Duration::from_secs(5);
/// A chunk stops early past this much row text, whatever its row count.
const MAX_CHUNK_BYTES: usize = 16 * 1024 * 1024;

/// What the driver needs to know of the producer.
pub(in crate::produce) struct DriverConfig {
    pub url: String,
    pub slot: String,
    pub state_table: TableName,
    pub chunk_rows: u64,
    pub keyless: KeylessTables,
    /// The tables this producer streams: only they can be re-synced.
    pub configured: HashSet<TableName>,
    /// Domain and other type OIDs -> the base type they are encoded as.
    pub aliases: Arc<HashMap<u32, u32>>,
}

/// Why one attempt at a request ended early.
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Request(#[from] resync::RequestError),
    #[error("{0}")]
    Refused(String),
    /// The streaming loop lost its session (or is gone): start over.
    #[error("the replication session was reopened")]
    Restart,
    /// The request was replaced or finished meanwhile.
    #[error("the request was replaced")]
    Replaced,
    #[error("shutting down")]
    Shutdown,
}

/// The driver: until shutdown, work through the requests of this slot.
pub(in crate::produce) async fn resync_driver(
    mut config: DriverConfig,
    link: DriverLink,
    shutdown: Shutdown,
) {
    let DriverLink { to_loop, mut woken } = link;
    let mut client: Option<Client> = None;
    loop {
        let pause = match work(&config, &mut client, &to_loop, &shutdown).await {
            Ok(()) => POLL_INTERVAL,
            Err(Stop::Shutdown) => return,
            Err(Stop::Refused(why)) => {
                tracing::warn!("{why}");
                POLL_INTERVAL
            }
            Err(e) => {
                tracing::warn!(error = %e, "resync: will try again");
                client = None;
                RETRY_DELAY
            }
        };
        let wake = tokio::select! {
            _ = shutdown.wait() => return,
            wake = woken.recv() => wake,
            _ = tokio::time::sleep(pause) => None,
        };
        if let Some(Wake::Resync { table, why }) = wake {
            // The loop asks only for tables it streams (one may be new).
            config.configured.insert(table.clone());
            match request_one(&config, &mut client, &table).await {
                Ok(()) => tracing::info!(%table, "{why}: re-syncing the table"),
                Err(e) => {
                    tracing::warn!(%table, error = %e, "{why}, but its resync could not be requested: run kinesync resync {table}")
                }
            }
        }
    }
}

/// Write a request for `table` (the request table made if missing).
async fn request_one(
    config: &DriverConfig,
    client: &mut Option<Client>,
    table: &TableName,
) -> Result<(), Stop> {
    let sql = session(config, client).await?;
    let tables = std::slice::from_ref(table);
    resync::request_creating_table(sql, &config.state_table, &config.slot, tables).await?;
    Ok(())
}

/// The driver's SQL session, opened when missing.
async fn session<'c>(
    config: &DriverConfig,
    client: &'c mut Option<Client>,
) -> Result<&'c Client, Stop> {
    if client.is_none() {
        let sql = connect_sql(&config.url).await?;
        resync::prepare_session(&sql).await?;
        *client = Some(sql);
    }
    client
        .as_ref()
        .ok_or_else(|| Stop::Refused("no resync session".into()))
}

/// Every pending request, oldest first.
async fn work(
    config: &DriverConfig,
    client: &mut Option<Client>,
    to_loop: &mpsc::Sender<ToLoop>,
    shutdown: &Shutdown,
) -> Result<(), Stop> {
    let sql = session(config, client).await?;
    let requests = resync::pending(sql, &config.state_table, &config.slot).await?;
    if requests.is_empty() {
        return Ok(());
    }
    if let (false, version) = resync::marks_supported(sql).await? {
        return Err(Stop::Refused(format!(
            "PostgreSQL {version}: {}",
            resync::NEEDS_MESSAGES
        )));
    }
    for first in requests {
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match resync_table(config, sql, request.clone(), to_loop, shutdown).await {
                Err(Stop::Restart) => {
                    tracing::info!(table = %request.table, "resync: the replication session was reopened; continuing from the last accepted chunk");
                    next = resync::pending(sql, &config.state_table, &config.slot)
                        .await?
                        .into_iter()
                        .find(|r| r.table == request.table);
                }
                Err(Stop::Refused(why)) => tracing::warn!("{why}"),
                Ok(()) | Err(Stop::Replaced) => {}
                Err(other) => return Err(other),
            }
        }
    }
    Ok(())
}

/// One request: watch, every chunk from the last recorded one, the sweep.
async fn resync_table(
    config: &DriverConfig,
    sql: &Client,
    mut request: Request,
    to_loop: &mpsc::Sender<ToLoop>,
    shutdown: &Shutdown,
) -> Result<(), Stop> {
    let (rel, shape) = relation(config, sql, &request.table).await?;
    let (rel, mut shape) = (Arc::new(rel), Some(Box::new(shape)));
    let tag = format!("{:032x}", rand::random::<u128>());
    let (seen, watched) = oneshot::channel();
    let watch = ToLoop::Watch {
        tag: format!("watch:{tag}"),
        table: request.table.clone(),
        seen,
    };
    let at = ask(
        sql,
        to_loop,
        watch,
        &format!("watch:{tag}"),
        watched,
        shutdown,
    )
    .await?;
    let start = *request.started.get_or_insert(at);
    tracing::info!(table = %request.table, from_row = request.rows_copied, "resync: copying in chunks while streaming");
    let mut progress =
        SnapshotProgress::start(&request.table.plain(), estimated_rows(sql, &rel).await);
    for n in 0u64.. {
        let spec = ChunkSpec {
            rel: &rel,
            after: request.after_key.as_deref(),
            max_rows: config.chunk_rows,
            max_bytes: MAX_CHUNK_BYTES,
        };
        let chunk = resync::read_chunk(sql, spec).await?;
        let (last, last_key, count) = (chunk.last, chunk.last_key, chunk.rows.len());
        let rows = chunk
            .rows
            .into_iter()
            .map(|r| encode_row(&rel, r))
            .collect();
        let mark = format!("high:{tag}:{n}");
        let (accepted, answer) = oneshot::channel();
        let ask_chunk = ToLoop::Chunk {
            tag: mark.clone(),
            rel: Arc::clone(&rel),
            shape: shape.take(),
            rows,
            snapshot: chunk.snapshot,
            accepted,
        };
        if ask(sql, to_loop, ask_chunk, &mark, answer, shutdown).await? == Outcome::Void {
            tracing::info!(table = %request.table, "resync: the table was truncated during a chunk; reading it again");
            continue;
        }
        request.after_key = last_key;
        request.rows_copied += count as u64;
        (0..count).for_each(|_| progress.row());
        if !resync::record_progress(sql, &config.state_table, &config.slot, &request).await? {
            return Err(Stop::Replaced);
        }
        if last {
            break;
        }
    }
    progress.finish();
    sweep(config, sql, &request, rel, start, &tag, to_loop, shutdown).await
}

/// The sweep event that ends the resync, then the request marked finished.
#[allow(clippy::too_many_arguments)]
async fn sweep(
    config: &DriverConfig,
    sql: &Client,
    request: &Request,
    rel: Arc<Relation>,
    start: Lsn,
    tag: &str,
    to_loop: &mpsc::Sender<ToLoop>,
    shutdown: &Shutdown,
) -> Result<(), Stop> {
    let mark = format!("done:{tag}");
    let (accepted, answer) = oneshot::channel();
    let ask_sweep = ToLoop::Sweep {
        tag: mark.clone(),
        rel,
        start,
        accepted,
    };
    ask(sql, to_loop, ask_sweep, &mark, answer, shutdown).await?;
    resync::record_finished(sql, &config.state_table, &config.slot, request).await?;
    tracing::info!(table = %request.table, rows = request.rows_copied, "resync finished");
    Ok(())
}

/// Hand `request` to the loop, write its mark, wait for the answer.
async fn ask<T>(
    sql: &Client,
    to_loop: &mpsc::Sender<ToLoop>,
    request: ToLoop,
    mark: &str,
    answer: oneshot::Receiver<T>,
    shutdown: &Shutdown,
) -> Result<T, Stop> {
    to_loop.send(request).await.map_err(|_| Stop::Shutdown)?;
    resync::write_mark(sql, mark).await?;
    tokio::select! {
        _ = shutdown.wait() => Err(Stop::Shutdown),
        answer = answer => answer.map_err(|_| Stop::Restart),
    }
}

/// The table as it is now (a column may have changed since the start) and
/// its shape record, refused when this producer does not stream it or it
/// has no key.
async fn relation(
    config: &DriverConfig,
    sql: &Client,
    table: &TableName,
) -> Result<(Relation, Shape), Stop> {
    if !config.configured.contains(table) {
        return Err(Stop::Refused(format!(
            "resync of {table} skipped: it is not in source.tables of this producer (add it, or drop the request: DELETE FROM {} WHERE table_name = '{table}')",
            config.state_table
        )));
    }
    let (described, _) = describe(sql, table)
        .await
        .map_err(|e| Stop::Refused(e.to_string()))?;
    let admitted = admit(described, config.keyless).map_err(|e| Stop::Refused(e.to_string()))?;
    let mut rel = admitted.relation();
    if rel.partition_indices.is_empty() {
        return Err(Stop::Refused(format!(
            "resync of {table} skipped: it has no primary key or replica identity index to copy it in key order"
        )));
    }
    crate::produce::use_base_types(&mut rel, &config.aliases);
    Ok((rel, Shape::of_table(&admitted)))
}
