//! The sink side shared by the snapshot and the stream.
//!
//! [`Delivery`] applies the record size policy (stop, or append to the
//! dead-letter file), numbers every record, hands it to the sink's
//! [`Dispatcher`] and turns the sink's completions into acknowledgements for
//! the [`AckTracker`]. It never reads the source: the snapshot and the
//! streaming loop push events into it and ask it for the newest confirmable
//! LSN. Buffering is bounded by [`MAX_BUFFERED_RECORDS`] and
//! [`MAX_BUFFERED_BYTES`]: callers read new data only while [`Delivery::has_room`].

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use super::ack::AckTracker;
use super::error::ProduceError;
use super::{MAX_BUFFERED_BYTES, MAX_BUFFERED_RECORDS};
use crate::config::{KinesisConfig, Ordering, OversizePolicy};
use crate::event::EncodedEvent;
use crate::lsn::Lsn;
use crate::shutdown::Shutdown;
use crate::sink::dispatch::DEFAULT_MAX_IN_FLIGHT;
use crate::sink::{Dispatcher, DispatcherLimits, OutRecord, RecordWriter};
use crate::telemetry::{health, metrics};

/// The sink side shared by the snapshot and the stream: size policy,
/// sequence numbers, dispatcher and acknowledgement tracking.
pub struct Delivery<W: RecordWriter> {
    dispatcher: Dispatcher<W>,
    tracker: AckTracker,
    record_limit: Option<usize>,
    oversize: OversizePolicy,
    dead_letter_path: Option<PathBuf>,
    /// `kinesis.ordering = "key"`: every record follows its key's older ones.
    key_order: bool,
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
            key_order: kinesis.ordering == Ordering::Key,
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
            ordered: self.key_order || ev.needs_key_order,
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
    pub(super) async fn step(&mut self) -> Result<(), ProduceError> {
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

    pub(super) fn has_in_flight(&self) -> bool {
        self.dispatcher.has_in_flight()
    }

    /// Every event pushed so far was accepted by the sink.
    pub(super) fn is_idle(&self) -> bool {
        self.dispatcher.is_idle()
    }

    pub(super) fn next_retry(&self) -> Option<Instant> {
        self.dispatcher.next_retry()
    }
}

/// An LSN as a gauge value (LSNs stay far below `i64::MAX` in practice).
pub(super) fn lsn_gauge(lsn: Lsn) -> i64 {
    i64::try_from(lsn.0).unwrap_or(i64::MAX)
}
