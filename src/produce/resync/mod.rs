//! Online re-sync, the producer's half: a driver task reads chunks of a
//! table while the streaming loop goes on, and the loop places each chunk
//! in the stream (`source::resync` describes the protocol).
//!
//! The two halves talk over a channel and the WAL. The driver writes a mark
//! into the WAL and tells the loop what it is waiting for; the loop, when
//! it reads that mark in the replication stream, acts at exactly that
//! position: it starts recording the table's changed keys (`watch`), emits
//! a chunk without the keys changed by transactions the chunk's snapshot
//! did not see (`high`), or emits the sweep event that ends the re-sync
//! (`done`). Each emitted step is committed at its mark's LSN like a
//! transaction, and answered once the sink accepted it, so the driver
//! records progress only for what the stream holds. When the replication
//! session is lost the loop forgets its part; the driver sees its answer
//! dropped and starts the table again from its last recorded chunk.

mod driver;
mod window;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

pub(super) use driver::{resync_driver, DriverConfig};
pub(super) use window::ResyncWindow;

use crate::event::{Row, Shape};
use crate::lsn::Lsn;
use crate::source::relation_cache::Relation;
use crate::source::resync::ChunkSnapshot;
use crate::sql::TableName;

/// How many requests the driver may have outstanding with the loop.
const CHANNEL_DEPTH: usize = 4;

/// What the driver asks of the streaming loop, each at a mark (its tag).
#[derive(Debug)]
pub(super) enum ToLoop {
    /// From the mark on, record the keys of every change of `table`; answer
    /// with the mark's position.
    Watch {
        tag: String,
        table: TableName,
        seen: oneshot::Sender<Lsn>,
    },
    /// At the mark, emit these rows but those whose keys a transaction
    /// hidden from `snapshot` changed; first the table's shape record, when
    /// given (the first chunk of an attempt: the stream may have none of a
    /// table added since the producer started).
    Chunk {
        tag: String,
        rel: Arc<Relation>,
        shape: Option<Box<Shape>>,
        rows: Vec<Row>,
        snapshot: ChunkSnapshot,
        accepted: oneshot::Sender<Outcome>,
    },
    /// At the mark, emit the sweep event positioned at `start`; stop
    /// watching.
    Sweep {
        tag: String,
        rel: Arc<Relation>,
        start: Lsn,
        accepted: oneshot::Sender<Outcome>,
    },
}

/// What wakes the driver before its next poll.
#[derive(Debug)]
pub(super) enum Wake {
    /// A request message was read from the stream.
    Requested,
    /// The loop found `table` needs a resync (`why`, for the log).
    Resync { table: TableName, why: &'static str },
}

/// How a chunk or sweep came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The sink accepted it (`rows` chunk rows were sent).
    Accepted { rows: usize },
    /// The table was truncated while the chunk was read: read it again.
    Void,
}

/// The driver's end of its link with the loop.
pub(super) struct DriverLink {
    to_loop: mpsc::Sender<ToLoop>,
    woken: mpsc::UnboundedReceiver<Wake>,
}

/// The driver's end and the loop's end of one link.
pub(super) fn link() -> (DriverLink, ResyncWindow) {
    let (to_loop, requests) = mpsc::channel(CHANNEL_DEPTH);
    let (wake, woken) = mpsc::unbounded_channel();
    (
        DriverLink { to_loop, woken },
        ResyncWindow::new(requests, wake),
    )
}
