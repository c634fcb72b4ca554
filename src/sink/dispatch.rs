//! Batching, in-flight requests, per-key ordering and retries for any
//! [`RecordWriter`]. See the parent module for the ordering rule.
//!
//! Records wait in `pending`, ordered by sequence number. Building a batch
//! walks `pending` in order and takes a record unless it waits for its retry
//! time, or it is `ordered` and its key is already in flight, already in
//! this batch, or blocked by an older record of the same key that cannot go
//! yet. A record that is not ordered is taken regardless of its key (but
//! still counts as its key's older record for the ordered ones after it). Failed records go
//! back into `pending` under their original sequence number, so they stay
//! ahead of younger records of their key.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{OutRecord, PutError, RecordResult, RecordWriter, SinkError};
use crate::telemetry::metrics::{label, metrics, unix_now};

/// Requests in flight at once (kinesalite and Kinesis both like a few).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;
/// First retry delay of a failed record; doubles per attempt.
pub const RETRY_BASE_DELAY: Duration = Duration::from_millis(100);
/// Longest retry delay.
pub const RETRY_MAX_DELAY: Duration = Duration::from_secs(10);
/// Records examined per batch build (bounds the cost when many are blocked).
pub const SCAN_WINDOW: usize = 4096;

/// Limits of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatcherLimits {
    pub max_records_per_request: usize,
    pub max_bytes_per_request: usize,
    pub max_in_flight: usize,
}

struct Pending {
    record: OutRecord,
    attempts: u32,
    not_before: Option<Instant>,
}

type Completion = (Vec<Pending>, Result<Vec<RecordResult>, PutError>);

/// What finished requests produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Acks {
    /// Sequence numbers now durably accepted.
    pub accepted: Vec<u64>,
    /// Records that will be retried.
    pub retried: usize,
}

pub struct Dispatcher<W: RecordWriter> {
    writer: Arc<W>,
    limits: DispatcherLimits,
    pending: BTreeMap<u64, Pending>,
    pending_bytes: usize,
    /// Records in flight per key.
    keys_in_flight: HashMap<String, usize>,
    in_flight: JoinSet<Completion>,
    in_flight_records: usize,
    /// Earliest retry time seen while building the last batch.
    next_retry: Option<Instant>,
}

impl<W: RecordWriter> Dispatcher<W> {
    pub fn new(writer: W, limits: DispatcherLimits) -> Self {
        Dispatcher {
            writer: Arc::new(writer),
            limits: DispatcherLimits {
                max_records_per_request: limits.max_records_per_request.max(1),
                max_bytes_per_request: limits.max_bytes_per_request.max(1),
                max_in_flight: limits.max_in_flight.max(1),
            },
            pending: BTreeMap::new(),
            pending_bytes: 0,
            keys_in_flight: HashMap::new(),
            in_flight: JoinSet::new(),
            in_flight_records: 0,
            next_retry: None,
        }
    }

    /// Queue a record. Sequence numbers must increase across calls.
    pub fn push(&mut self, record: OutRecord) {
        self.pending_bytes += record.size();
        self.pending.insert(
            record.seq,
            Pending {
                record,
                attempts: 0,
                not_before: None,
            },
        );
    }

    /// Records queued or in flight, and their bytes (for backpressure).
    pub fn buffered(&self) -> (usize, usize) {
        (
            self.pending.len() + self.in_flight_records,
            self.pending_bytes,
        )
    }

    /// Nothing pending and nothing in flight.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.in_flight.is_empty()
    }

    pub fn has_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// When a delayed retry becomes due (arm a timer and call `dispatch`).
    pub fn next_retry(&self) -> Option<Instant> {
        self.next_retry
    }

    /// Whether a full request's worth of records is waiting.
    pub fn has_full_batch(&self) -> bool {
        self.pending.len() >= self.limits.max_records_per_request
            || self.pending_bytes >= self.limits.max_bytes_per_request
    }

    /// Start as many requests as the in-flight limit allows. With
    /// `partial = false` only when a full batch is waiting (the caller will
    /// flush partial batches at transaction ends, idle moments or a linger
    /// deadline).
    pub fn dispatch(&mut self, partial: bool) {
        let now = Instant::now();
        self.next_retry = None;
        while self.in_flight.len() < self.limits.max_in_flight && !self.pending.is_empty() {
            if !partial && !self.has_full_batch() {
                break;
            }
            let batch = self.build_batch(now);
            if batch.is_empty() {
                break;
            }
            self.send(batch);
        }
    }

    fn build_batch(&mut self, now: Instant) -> Vec<Pending> {
        let mut chosen = Vec::new();
        let mut bytes = 0usize;
        let mut batch_keys: HashSet<&str> = HashSet::new();
        let mut blocked: HashSet<&str> = HashSet::new();
        for (scanned, (seq, p)) in self.pending.iter().enumerate() {
            if chosen.len() >= self.limits.max_records_per_request || scanned >= SCAN_WINDOW {
                break;
            }
            let key = p.record.partition_key.as_str();
            if let Some(at) = p.not_before.filter(|at| *at > now) {
                self.next_retry = Some(self.next_retry.map_or(at, |n| n.min(at)));
                blocked.insert(key);
                continue;
            }
            if p.record.ordered
                && (blocked.contains(key)
                    || batch_keys.contains(key)
                    || self.keys_in_flight.contains_key(key))
            {
                blocked.insert(key);
                continue;
            }
            let size = p.record.size();
            if bytes + size > self.limits.max_bytes_per_request && !chosen.is_empty() {
                break;
            }
            bytes += size;
            batch_keys.insert(key);
            chosen.push(*seq);
        }
        let mut batch = Vec::with_capacity(chosen.len());
        for seq in chosen {
            if let Some(p) = self.pending.remove(&seq) {
                self.pending_bytes -= p.record.size();
                *self
                    .keys_in_flight
                    .entry(p.record.partition_key.clone())
                    .or_default() += 1;
                batch.push(p);
            }
        }
        batch
    }

    fn send(&mut self, batch: Vec<Pending>) {
        let writer = Arc::clone(&self.writer);
        self.in_flight_records += batch.len();
        self.in_flight.spawn(async move {
            // The records move into the request and back (no copy of their
            // data: a clone here was a visible cost in the producer's profile).
            let (records, attempts): (Vec<OutRecord>, Vec<u32>) =
                batch.into_iter().map(|p| (p.record, p.attempts)).unzip();
            let started = Instant::now();
            let result = writer.put_records(&records).await;
            metrics()
                .put_duration
                .observe(started.elapsed().as_secs_f64());
            let batch = records
                .into_iter()
                .zip(attempts)
                .map(|(record, attempts)| Pending {
                    record,
                    attempts,
                    not_before: None,
                })
                .collect();
            (batch, result)
        });
    }

    /// Wait for the next request to finish (pending forever if none is in
    /// flight, so it can sit in a `select!`). Cancel-safe.
    pub async fn next_completion(&mut self) -> Result<Acks, SinkError> {
        let Some(joined) = self.in_flight.join_next().await else {
            return std::future::pending().await;
        };
        let (batch, result) = joined.map_err(|e| SinkError::Task(e.to_string()))?;
        self.in_flight_records -= batch.len();
        for p in &batch {
            let key = &p.record.partition_key;
            match self.keys_in_flight.get_mut(key) {
                Some(n) if *n > 1 => *n -= 1,
                _ => {
                    self.keys_in_flight.remove(key);
                }
            }
        }
        let mut acks = Acks::default();
        match result {
            Ok(results) => {
                if results.len() != batch.len() {
                    return Err(SinkError::Task(format!(
                        "sink answered {} results for {} records",
                        results.len(),
                        batch.len()
                    )));
                }
                let mut codes: BTreeMap<String, usize> = BTreeMap::new();
                let mut accepted_bytes = 0;
                for (p, r) in batch.into_iter().zip(results) {
                    match r {
                        RecordResult::Accepted => {
                            accepted_bytes += p.record.size();
                            acks.accepted.push(p.record.seq);
                        }
                        RecordResult::Retry { code } => {
                            *codes.entry(code).or_default() += 1;
                            acks.retried += 1;
                            self.requeue(p);
                        }
                    }
                }
                record_request(acks.accepted.len(), accepted_bytes, &codes);
                if !codes.is_empty() {
                    tracing::warn!(
                        ?codes,
                        "sink did not accept {} records; retrying them",
                        acks.retried
                    );
                }
            }
            Err(PutError::Retryable(reason)) => {
                tracing::warn!(
                    records = batch.len(),
                    "sink request failed, retrying: {reason}"
                );
                acks.retried = batch.len();
                record_failed_request(batch.len());
                for p in batch {
                    self.requeue(p);
                }
            }
            Err(PutError::Fatal(e)) => {
                record_failed_request(batch.len());
                return Err(name_refused_record(e, &batch));
            }
        }
        Ok(acks)
    }

    fn requeue(&mut self, mut p: Pending) {
        p.attempts += 1;
        let at = Instant::now() + backoff(p.attempts);
        p.not_before = Some(at);
        self.next_retry = Some(self.next_retry.map_or(at, |n| n.min(at)));
        self.pending_bytes += p.record.size();
        self.pending.insert(p.record.seq, p);
    }
}

/// A request refused for one record's sake (a ValidationException naming
/// `records.N.member...`, N counted from 1) names that record's table and key
/// instead of a position in a request the user never saw.
fn name_refused_record(e: SinkError, batch: &[Pending]) -> SinkError {
    let SinkError::Rejected {
        stream,
        code,
        detail,
    } = &e
    else {
        return e;
    };
    let Some(record) = refused_index(detail).and_then(|i| batch.get(i)) else {
        return e;
    };
    let event: Option<serde_json::Value> = serde_json::from_slice(&record.record.data).ok();
    let source = event.as_ref().map(|e| &e["source"]);
    let field = |name: &str| source.and_then(|s| s[name].as_str()).unwrap_or("?");
    let table = format!("{}.{}", field("schema"), field("table"));
    let partition_key = &record.record.partition_key;
    let key = match partition_key.strip_prefix(&format!("{table}:")) {
        Some(key) => format!("key {key}"),
        None => format!("partition key {partition_key:?}"),
    };
    SinkError::RecordRefused {
        stream: stream.clone(),
        code: code.clone(),
        detail: detail.clone(),
        table,
        key,
    }
}

/// The 0-based position named by `records.N.` in an AWS validation message.
fn refused_index(detail: &str) -> Option<usize> {
    let rest = &detail[detail.find("records.")? + "records.".len()..];
    let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse::<usize>().ok()?.checked_sub(1)
}

/// Metrics of a request that got an answer per record.
fn record_request(accepted: usize, accepted_bytes: usize, failed: &BTreeMap<String, usize>) {
    let m = metrics();
    let result = match (accepted, failed.is_empty()) {
        (_, true) => "ok",
        (0, false) => "failed",
        _ => "partial",
    };
    m.put_requests.get_or_create(&label("result", result)).inc();
    m.events_put.inc_by(accepted as u64);
    m.bytes_put.inc_by(accepted_bytes as u64);
    for (code, count) in failed {
        m.records_failed
            .get_or_create(&label("code", code.as_str()))
            .inc_by(*count as u64);
    }
    if accepted > 0 {
        m.put_last_success.set(unix_now());
    }
}

/// Metrics of a request that failed as a whole: every record counts as
/// failed with code `RequestFailed`.
fn record_failed_request(records: usize) {
    let m = metrics();
    m.put_requests
        .get_or_create(&label("result", "failed"))
        .inc();
    m.records_failed
        .get_or_create(&label("code", REQUEST_FAILED_CODE))
        .inc_by(records as u64);
}

/// The `code` label of records in a request that failed as a whole.
pub const REQUEST_FAILED_CODE: &str = "RequestFailed";

/// Exponential backoff with "equal jitter": between half and all of
/// `base * 2^(attempt-1)`, capped.
pub fn backoff(attempt: u32) -> Duration {
    let exp = RETRY_BASE_DELAY.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let full = exp.min(RETRY_MAX_DELAY);
    let half = full / 2;
    half + Duration::from_micros(rand::thread_rng().gen_range(0..=half.as_micros() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A writer that records every request and fails records by a script.
    #[derive(Default)]
    struct Scripted {
        /// (seq, attempt) pairs to fail: attempt counts from 1.
        fail: Mutex<Vec<(u64, u32)>>,
        fail_request_once: Mutex<bool>,
        /// Refuse every request with this ValidationException message.
        reject: Mutex<Option<String>>,
        requests: Mutex<Vec<Vec<u64>>>,
        /// Accepted records, in acceptance order (seq, key).
        accepted: Mutex<Vec<(u64, String)>>,
        attempts: Mutex<std::collections::HashMap<u64, u32>>,
    }

    impl RecordWriter for Arc<Scripted> {
        fn put_records(
            &self,
            records: &[OutRecord],
        ) -> impl std::future::Future<Output = Result<Vec<RecordResult>, PutError>> + Send {
            let this = Arc::clone(self);
            let records = records.to_vec();
            async move {
                this.requests
                    .lock()
                    .unwrap()
                    .push(records.iter().map(|r| r.seq).collect());
                if std::mem::take(&mut *this.fail_request_once.lock().unwrap()) {
                    return Err(PutError::Retryable("throttled".into()));
                }
                if let Some(detail) = this.reject.lock().unwrap().clone() {
                    return Err(PutError::Fatal(SinkError::Rejected {
                        stream: "cdc".into(),
                        code: "ValidationException".into(),
                        detail,
                    }));
                }
                let mut out = Vec::new();
                for r in &records {
                    let attempt = {
                        let mut a = this.attempts.lock().unwrap();
                        let n = a.entry(r.seq).or_default();
                        *n += 1;
                        *n
                    };
                    if this.fail.lock().unwrap().contains(&(r.seq, attempt)) {
                        out.push(RecordResult::Retry {
                            code: "ProvisionedThroughputExceededException".into(),
                        });
                    } else {
                        this.accepted
                            .lock()
                            .unwrap()
                            .push((r.seq, r.partition_key.clone()));
                        out.push(RecordResult::Accepted);
                    }
                }
                Ok(out)
            }
        }
    }

    fn failed_records(code: &str) -> prometheus_client::metrics::counter::Counter {
        metrics()
            .records_failed
            .get_or_create(&label("code", code))
            .clone()
    }

    fn rec(seq: u64, key: &str, bytes: usize) -> OutRecord {
        OutRecord {
            seq,
            partition_key: key.into(),
            data: vec![b'x'; bytes],
            ordered: true,
        }
    }

    fn limits(records: usize, bytes: usize, in_flight: usize) -> DispatcherLimits {
        DispatcherLimits {
            max_records_per_request: records,
            max_bytes_per_request: bytes,
            max_in_flight: in_flight,
        }
    }

    async fn drain(d: &mut Dispatcher<Arc<Scripted>>) -> Vec<u64> {
        let mut accepted = Vec::new();
        while !d.is_idle() {
            d.dispatch(true);
            if d.has_in_flight() {
                accepted.extend(d.next_completion().await.unwrap().accepted);
            } else if let Some(at) = d.next_retry() {
                tokio::time::sleep_until(at).await;
            }
        }
        accepted
    }

    #[tokio::test(start_paused = true)]
    async fn batches_respect_count_and_byte_limits() {
        let w = Arc::new(Scripted::default());
        let mut d = Dispatcher::new(Arc::clone(&w), limits(3, 100, 1));
        for seq in 0..7 {
            d.push(rec(seq, &format!("k{seq}"), 38)); // 40 bytes with key
        }
        let mut accepted = drain(&mut d).await;
        accepted.sort();
        assert_eq!(accepted, (0..7).collect::<Vec<_>>());
        let requests = w.requests.lock().unwrap().clone();
        // 100 bytes fit two 40-byte records; count limit 3 never reached.
        assert_eq!(requests, vec![vec![0, 1], vec![2, 3], vec![4, 5], vec![6]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_kinesis_refuses_is_named_by_table_and_key() {
        let w = Arc::new(Scripted::default());
        *w.reject.lock().unwrap() = Some(
            "1 validation error detected: Value at 'records.2.member.data' failed to satisfy constraint".into(),
        );
        let mut d = Dispatcher::new(Arc::clone(&w), limits(10, 1_000_000, 1));
        for (seq, id) in [(0, 1), (1, 2)] {
            d.push(OutRecord {
                seq,
                partition_key: format!("public.orders:[{id}]"),
                data: br#"{"source":{"schema":"public","table":"orders"}}"#.to_vec(),
                ordered: true,
            });
        }
        d.dispatch(true);
        let err = d.next_completion().await.unwrap_err().to_string();
        assert!(
            err.contains(
                "refused the event of public.orders key [2] for good (ValidationException:"
            ),
            "{err}"
        );
        assert!(err.contains("nothing is lost"), "{err}");
        assert_eq!(refused_index("at 'records.1.member.partitionKey'"), Some(0));
        assert_eq!(refused_index("no position"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn count_limit() {
        let w = Arc::new(Scripted::default());
        let mut d = Dispatcher::new(Arc::clone(&w), limits(2, 1_000_000, 1));
        for seq in 0..5 {
            d.push(rec(seq, &format!("k{seq}"), 1));
        }
        drain(&mut d).await;
        assert_eq!(
            w.requests
                .lock()
                .unwrap()
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>(),
            vec![2, 2, 1]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn records_free_of_key_order_fill_a_request_and_an_ordered_one_waits_for_its_elders() {
        let w = Arc::new(Scripted::default());
        let mut d = Dispatcher::new(Arc::clone(&w), limits(10, 1_000_000, 2));
        // A hot key: four free records, then one that must follow them all
        // (an update with an unchanged TOAST value), then a free one again.
        for (seq, ordered) in [false, false, false, false, true, false].iter().enumerate() {
            d.push(OutRecord {
                ordered: *ordered,
                ..rec(seq as u64, "hot", 1)
            });
        }
        drain(&mut d).await;
        let requests = w.requests.lock().unwrap().clone();
        // The free ones share the first request (the last one overtakes the
        // ordered record); the ordered one goes once its elders are accepted.
        assert_eq!(requests, vec![vec![0, 1, 2, 3, 5], vec![4]]);
    }

    #[tokio::test(start_paused = true)]
    async fn one_record_per_key_per_request() {
        let w = Arc::new(Scripted::default());
        let mut d = Dispatcher::new(Arc::clone(&w), limits(10, 1_000_000, 1));
        for (seq, key) in ["a", "a", "b", "a", "c"].iter().enumerate() {
            d.push(rec(seq as u64, key, 1));
        }
        drain(&mut d).await;
        let requests = w.requests.lock().unwrap().clone();
        assert_eq!(requests, vec![vec![0, 2, 4], vec![1], vec![3]]);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_record_is_not_overtaken_by_its_key() {
        let w = Arc::new(Scripted::default());
        // seq 0 (key a) fails twice; seq 1 (key b) is fine; seq 2 (key a) must wait.
        w.fail.lock().unwrap().extend([(0, 1), (0, 2)]);
        let throttled = failed_records("ProvisionedThroughputExceededException");
        let before = throttled.get();
        let mut d = Dispatcher::new(Arc::clone(&w), limits(10, 1_000_000, 4));
        d.push(rec(0, "a", 1));
        d.push(rec(1, "b", 1));
        d.push(rec(2, "a", 1));
        d.push(rec(3, "c", 1));
        let accepted = drain(&mut d).await;
        let order: Vec<u64> = w
            .accepted
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, k)| k == "a")
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(order, vec![0, 2]);
        assert_eq!(accepted.len(), 4);
        // Counters only grow, and other tests run beside this one: at least.
        assert!(
            throttled.get() >= before + 2,
            "failed records counted by code"
        );
        // The first request carried 0, 1, 3 (2 shares key a with 0).
        assert_eq!(w.requests.lock().unwrap()[0], vec![0, 1, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn whole_request_failure_is_retried_with_backoff() {
        let w = Arc::new(Scripted::default());
        *w.fail_request_once.lock().unwrap() = true;
        let request_failed = failed_records(REQUEST_FAILED_CODE);
        let before = request_failed.get();
        let mut d = Dispatcher::new(Arc::clone(&w), limits(10, 1_000_000, 2));
        d.push(rec(0, "a", 1));
        d.push(rec(1, "a", 1));
        let start = Instant::now();
        let accepted = drain(&mut d).await;
        assert_eq!(accepted, vec![0, 1]);
        assert!(
            request_failed.get() > before,
            "a failed request's records are counted"
        );
        assert!(Instant::now() - start >= RETRY_BASE_DELAY / 2);
        assert_eq!(
            w.requests.lock().unwrap().clone(),
            vec![vec![0], vec![0], vec![1]]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_keys_block_new_requests() {
        let w = Arc::new(Scripted::default());
        let mut d = Dispatcher::new(Arc::clone(&w), limits(10, 1_000_000, 4));
        d.push(rec(0, "a", 1));
        d.dispatch(true);
        d.push(rec(1, "a", 1));
        d.push(rec(2, "b", 1));
        d.dispatch(true); // 1 must not go while 0 is in flight
        assert_eq!(d.buffered().0, 3);
        drain(&mut d).await;
        let requests = w.requests.lock().unwrap().clone();
        assert_eq!(requests[0], vec![0]);
        assert_eq!(requests[1], vec![2]);
        assert_eq!(requests[2], vec![1]);
    }

    #[tokio::test(start_paused = true)]
    async fn partial_batches_wait_unless_asked() {
        let w = Arc::new(Scripted::default());
        let mut d = Dispatcher::new(Arc::clone(&w), limits(3, 1_000_000, 1));
        d.push(rec(0, "a", 1));
        d.dispatch(false);
        assert!(!d.has_in_flight());
        d.push(rec(1, "b", 1));
        d.push(rec(2, "c", 1));
        d.dispatch(false);
        assert!(d.has_in_flight());
    }

    #[test]
    fn backoff_grows_and_caps() {
        for attempt in 1..30 {
            let d = backoff(attempt);
            assert!(d <= RETRY_MAX_DELAY, "{attempt}: {d:?}");
            let full = RETRY_BASE_DELAY
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(RETRY_MAX_DELAY);
            assert!(d >= full / 2);
        }
    }

    #[test]
    fn backoff_has_jitter() {
        // Retries of many records failing together must not stay in step.
        for attempt in [1, 3, 10] {
            let delays: HashSet<Duration> = (0..50).map(|_| backoff(attempt)).collect();
            assert!(delays.len() > 10, "attempt {attempt}: {delays:?}");
        }
    }
}
