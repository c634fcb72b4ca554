//! Sinks: where encoded events go, and the contract for "durably accepted".
//!
//! The pipeline does not know what Kinesis is. It hands records to a
//! [`Dispatcher`], which batches them (by count and bytes), keeps a bounded
//! number of requests in flight, retries what a [`RecordWriter`] reports as
//! not accepted (exponential backoff, jitter, cap), and returns the sequence
//! numbers of records that *were* accepted. Only those let the pipeline
//! confirm WAL to Postgres.
//!
//! Ordering rule: an `ordered` record is delivered after every older record
//! of its partition key. PutRecords does not order records within one
//! request, and a failed record retried later would land after a younger
//! one, so an ordered record never shares a batch with an older record of
//! its key, and a key with an older record in flight (or waiting for its
//! retry) holds it back until that one is accepted. A record that is not
//! `ordered` (`kinesis.ordering = "position"`: its consumers order by
//! position) goes regardless of its key, so a hot key fills whole requests.
//!
//! [`RecordWriter`] is the narrow seam around the actual call (PutRecords,
//! or a stdout write); tests implement it to inject partial failures.

pub mod dispatch;
pub mod kinesis;
pub mod stdout;

use std::future::Future;

pub use dispatch::{Dispatcher, DispatcherLimits};

/// One record as a sink sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    /// Pipeline-assigned, strictly increasing; what acknowledgements name.
    pub seq: u64,
    pub partition_key: String,
    pub data: Vec<u8>,
    /// Must reach the stream after every older record of its key (see the
    /// ordering rule above); `false` lets it go regardless of them.
    pub ordered: bool,
}

impl OutRecord {
    /// Bytes counted against request limits (data + partition key).
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// The outcome of one record of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordResult {
    /// Durably stored by the sink.
    Accepted,
    /// Not stored; try again later (throttling, internal failure).
    Retry { code: String },
}

/// A request that failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// Worth retrying the whole request (network, throttling, 5xx).
    #[error("{0}")]
    Retryable(String),
    /// Retrying cannot help; the producer stops.
    #[error(transparent)]
    Fatal(#[from] SinkError),
}

/// Why a sink cannot go on. Each reads as a one-line message for the user.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    #[error("Kinesis stream {stream:?} does not exist (create it, or fix kinesis.stream / the region): {detail}")]
    StreamNotFound { stream: String, detail: String },
    #[error("not allowed to write to Kinesis stream {stream:?} (grant kinesis:PutRecords and kinesis:DescribeStreamSummary): {detail}")]
    AccessDenied { stream: String, detail: String },
    #[error("Kinesis rejected a request to stream {stream:?} ({code}): {detail}")]
    Rejected {
        stream: String,
        code: String,
        detail: String,
    },
    #[error("Kinesis stream {stream:?} refused the event of {table} {key} for good ({code}: {detail}); nothing after it was confirmed to the replication slot, so nothing is lost: kinesync should never build such a record, so report this line as a kinesync defect; an upgraded producer resends the event from the slot")]
    RecordRefused {
        stream: String,
        code: String,
        detail: String,
        table: String,
        key: String,
    },
    #[error("cannot write events to {target}: {detail}")]
    Io { target: String, detail: String },
    #[error("sink task failed: {0}")]
    Task(String),
    /// Credentials, region, access or endpoint: retrying cannot help.
    /// Boxed: it is large, and every `Result` carrying a `SinkError` pays for it.
    #[error(transparent)]
    Aws(Box<crate::aws::AwsError>),
}

/// The seam around one "put these records" call. Implementations report
/// per-record results in input order; they do not retry themselves.
pub trait RecordWriter: Send + Sync + 'static {
    fn put_records(
        &self,
        records: &[OutRecord],
    ) -> impl Future<Output = Result<Vec<RecordResult>, PutError>> + Send;
}
