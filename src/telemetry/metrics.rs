//! The Prometheus metrics kinesync exports, in one registry.
//!
//! Every metric is created once, here, with its help text; the code that
//! moves a number calls [`metrics()`] and updates a typed handle (atomics:
//! cheap enough for the per-request path, never per row). The numbers are
//! kept whether or not `/metrics` is served, so the instrumented code has no
//! "is telemetry on" branches. docs/operations.md lists each metric and what
//! to alert on; keep the two in step.
//!
//! Each process exports only its own families (the producer's, or the merge
//! daemon's: see [`set_process`]) plus `build_info`, so an alert on one
//! process's metric never fires on the other for a number it never moves.

use std::sync::atomic::AtomicU64;
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// Prefix of every metric name.
pub const METRIC_PREFIX: &str = "kinesync";

/// A label set of one `(name, value)` pair, e.g. `code="ThrottlingException"`.
pub type Label = [(&'static str, String); 1];
/// A label set of two pairs, e.g. `table="public.orders", op="inserted"`.
pub type Labels2 = [(&'static str, String); 2];

/// The handles. Names below omit the `kinesync_` prefix and the `_total`
/// suffix counters get on the wire.
pub struct Metrics {
    /// `build_info`: every process.
    common: Registry,
    producer: Registry,
    merge: Registry,
    /// `version`, `process` = 1.
    pub build_info: Family<Labels2, Gauge>,
    // -- producer --
    /// Change events read from the source (snapshot rows and streamed changes).
    pub events_read: Counter,
    /// Events the sink durably accepted.
    pub events_put: Counter,
    /// Bytes (data + partition key) of the events the sink accepted.
    pub bytes_put: Counter,
    /// Duration of one PutRecords request (or stdout write).
    pub put_duration: Histogram,
    /// Requests by result: ok, partial (some records not accepted), failed.
    pub put_requests: Family<Label, Counter>,
    /// Records not accepted, by error code; every one is retried.
    pub records_failed: Family<Label, Counter>,
    /// Source commit time to the moment its last event was acknowledged.
    pub commit_to_ack_lag: Gauge<f64, AtomicU64>,
    /// The LSN confirmed to the replication slot.
    pub confirmed_lsn: Gauge,
    /// Unix time of the last request the sink fully or partly accepted.
    pub put_last_success: Gauge<f64, AtomicU64>,
    /// WAL the server wrote past the slot's confirmed LSN (sampled).
    pub slot_lag_bytes: Gauge,
    /// Rows copied by the initial snapshot, per table.
    pub snapshot_rows: Family<Label, Counter>,
    /// pg_class.reltuples of each table when its snapshot copy started.
    pub snapshot_rows_estimated: Family<Label, Gauge>,
    /// Values sent through a documented conversion, per table and kind
    /// (string_cut, number_as_string, json_as_text).
    pub values_converted: Family<Labels2, Counter>,
    // -- merge --
    /// Merge runs by result: ok, failed, skipped (lease held elsewhere).
    pub merge_runs: Family<Label, Counter>,
    /// Duration of a merge run (ok or failed).
    pub merge_duration: Histogram,
    /// Mirror rows changed, per table and op (inserted, updated, deleted).
    pub merge_rows: Family<Labels2, Counter>,
    /// Events merged per table.
    pub merge_events: Family<Label, Counter>,
    /// Unix time of the last successful merge run.
    pub merge_last_success: Gauge<f64, AtomicU64>,
    /// Age of the newest event the mirror holds (the watermark): read from
    /// Redshift at start and after each successful run, aged in between.
    pub watermark_age: Gauge<f64, AtomicU64>,
    /// The last watermark age read and when, for the aging.
    watermark_read: std::sync::Mutex<Option<(i64, std::time::Instant)>>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut common = Registry::with_prefix(METRIC_PREFIX);
        let mut producer = Registry::with_prefix(METRIC_PREFIX);
        let mut merge = Registry::with_prefix(METRIC_PREFIX);
        let m = Metrics {
            build_info: Family::default(),
            slot_lag_bytes: Gauge::default(),
            watermark_age: Gauge::default(),
            watermark_read: std::sync::Mutex::new(None),
            events_read: Counter::default(),
            events_put: Counter::default(),
            bytes_put: Counter::default(),
            // 5 ms .. ~20 s
            put_duration: Histogram::new(exponential_buckets(0.005, 2.0, 13)),
            put_requests: Family::default(),
            records_failed: Family::default(),
            commit_to_ack_lag: Gauge::default(),
            confirmed_lsn: Gauge::default(),
            put_last_success: Gauge::default(),
            snapshot_rows: Family::default(),
            snapshot_rows_estimated: Family::default(),
            values_converted: Family::default(),
            merge_runs: Family::default(),
            // 0.5 s .. ~68 min
            merge_duration: Histogram::new(exponential_buckets(0.5, 2.0, 14)),
            merge_rows: Family::default(),
            merge_events: Family::default(),
            merge_last_success: Gauge::default(),
            common: Registry::default(),
            producer: Registry::default(),
            merge: Registry::default(),
        };
        common.register(
            "build_info",
            "The kinesync version and which process this is (always 1)",
            m.build_info.clone(),
        );
        producer.register(
            "slot_lag_bytes",
            "WAL the source server wrote past the slot's confirmed LSN (sampled every 10 s)",
            m.slot_lag_bytes.clone(),
        );
        merge.register_with_unit(
            "mirror_watermark_age",
            "Age of the newest event merged into the mirror (the watermark): read from Redshift after each successful run, aged locally in between",
            Unit::Seconds,
            m.watermark_age.clone(),
        );
        m.register_producer(&mut producer);
        m.register_merge(&mut merge);
        Metrics {
            common,
            producer,
            merge,
            ..m
        }
    }

    /// A watermark age just read from Redshift: the gauge takes it, and
    /// [`Metrics::age_watermark`] counts on from it.
    pub fn watermark_read(&self, age_seconds: i64) {
        self.watermark_age.set(age_seconds as f64);
        if let Ok(mut read) = self.watermark_read.lock() {
            *read = Some((age_seconds, std::time::Instant::now()));
        }
    }

    /// The gauge = the last age read plus the whole seconds since (nothing
    /// before the first read).
    pub fn age_watermark(&self) {
        let read = self.watermark_read.lock().ok().and_then(|r| *r);
        if let Some((age, at)) = read {
            self.watermark_age
                .set(age as f64 + at.elapsed().as_secs_f64().floor());
        }
    }

    /// Registers the producer's families (`kinesync produce`).
    fn register_producer(&self, r: &mut Registry) {
        r.register(
            "events_read",
            "Change events read from PostgreSQL (snapshot rows and streamed changes)",
            self.events_read.clone(),
        );
        r.register(
            "events_put",
            "Events the sink durably accepted",
            self.events_put.clone(),
        );
        r.register_with_unit(
            "put",
            "Bytes (data + partition key) of the events the sink accepted",
            Unit::Bytes,
            self.bytes_put.clone(),
        );
        r.register_with_unit(
            "put_records_duration",
            "Duration of one PutRecords request",
            Unit::Seconds,
            self.put_duration.clone(),
        );
        r.register(
            "values_converted",
            "Values sent through a documented conversion (docs/events.md), by table and conversion",
            self.values_converted.clone(),
        );
        r.register(
            "put_requests",
            "PutRecords requests by result (ok, partial, failed)",
            self.put_requests.clone(),
        );
        r.register(
            "records_failed",
            "Records the sink did not accept, by error code; each is retried",
            self.records_failed.clone(),
        );
        r.register_with_unit(
        "commit_to_ack_lag",
        "Source commit time to the acknowledgement of the transaction's last event, newest confirmed transaction",
        Unit::Seconds,
        self.commit_to_ack_lag.clone(),
    );
        r.register(
            "slot_confirmed_lsn",
            "LSN confirmed to the replication slot (bytes)",
            self.confirmed_lsn.clone(),
        );
        r.register_with_unit(
            "put_last_success_timestamp",
            "Unix time of the last PutRecords request the sink accepted records of",
            Unit::Seconds,
            self.put_last_success.clone(),
        );
        r.register(
            "snapshot_rows",
            "Rows copied by the initial snapshot, per table",
            self.snapshot_rows.clone(),
        );
        r.register(
            "snapshot_rows_estimated",
            "pg_class.reltuples of each table when its snapshot copy started",
            self.snapshot_rows_estimated.clone(),
        );
    }

    /// Registers the merge daemon's families (`kinesync merge`).
    fn register_merge(&self, r: &mut Registry) {
        r.register(
            "merge_runs",
            "Merge runs by result (ok, failed, skipped: lease held elsewhere, idle: nothing arrived, Redshift not contacted)",
            self.merge_runs.clone(),
        );
        r.register_with_unit(
            "merge_duration",
            "Duration of one merge run",
            Unit::Seconds,
            self.merge_duration.clone(),
        );
        r.register(
            "merge_rows",
            "Mirror rows changed by merges, per table and op (inserted, updated, deleted)",
            self.merge_rows.clone(),
        );
        r.register(
            "merge_events",
            "Events merged, per table",
            self.merge_events.clone(),
        );
        r.register_with_unit(
            "merge_last_success_timestamp",
            "Unix time of the last successful merge run",
            Unit::Seconds,
            self.merge_last_success.clone(),
        );
    }

    /// This process's families in the OpenMetrics text format (what
    /// `/metrics` serves): `build_info`, then the producer's or the merge
    /// daemon's families (both before [`set_process`] is called).
    pub fn encode(&self) -> String {
        let process = PROCESS.get().copied();
        let mut parts = vec![&self.common];
        if process != Some(Process::Merge) {
            parts.push(&self.producer);
        }
        if process != Some(Process::Produce) {
            parts.push(&self.merge);
        }
        let mut out = String::new();
        // Writing into a String cannot fail; each part ends with `# EOF`,
        // which only the last may keep.
        for (i, part) in parts.iter().enumerate() {
            let mut text = String::new();
            let _ = encode(&mut text, part);
            if i + 1 < parts.len() {
                text = text.strip_suffix("# EOF\n").unwrap_or(&text).to_owned();
            }
            out.push_str(&text);
        }
        out
    }
}

/// Which long-running process this is: decides which families it exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    Produce,
    Merge,
}

impl Process {
    fn name(self) -> &'static str {
        match self {
            Process::Produce => "produce",
            Process::Merge => "merge",
        }
    }
}

static PROCESS: OnceLock<Process> = OnceLock::new();

/// Declares this process (once, at start): its families and `build_info`.
pub fn set_process(process: Process) {
    if PROCESS.set(process).is_ok() {
        metrics()
            .build_info
            .get_or_create(&[
                ("version", env!("CARGO_PKG_VERSION").to_owned()),
                ("process", process.name().to_owned()),
            ])
            .set(1);
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// A one-pair label set.
pub fn label(name: &'static str, value: impl Into<String>) -> Label {
    [(name, value.into())]
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exported_under_the_prefix() {
        let m = metrics();
        m.records_failed
            .get_or_create(&label("code", "ThrottlingException"))
            .inc();
        m.merge_rows
            .get_or_create(&[
                ("table", "public.t".to_owned()),
                ("op", "inserted".to_owned()),
            ])
            .inc_by(3);
        let text = m.encode();
        for name in [
            "kinesync_events_read_total",
            "kinesync_events_put_total",
            "kinesync_put_bytes_total",
            "kinesync_put_records_duration_seconds_count",
            "kinesync_records_failed_total{code=\"ThrottlingException\"}",
            "kinesync_commit_to_ack_lag_seconds",
            "kinesync_slot_confirmed_lsn",
            "kinesync_merge_rows_total{table=\"public.t\",op=\"inserted\"}",
            "kinesync_merge_duration_seconds_count",
            "kinesync_merge_last_success_timestamp_seconds",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("kinesync_"), "{line}");
        }
    }

    /// Every `kinesync_*` series the shipped alerts and dashboard query is
    /// one this binary exports (a family, or a family plus the suffix its
    /// samples get), so a renamed metric cannot leave a silent alert.
    #[test]
    fn the_shipped_alerts_and_dashboard_use_only_exported_metrics() {
        // Families with labels show only once they have a series.
        let m = metrics();
        let _ = m
            .build_info
            .get_or_create(&[("version", "test".into()), ("process", "test".into())]);
        for family in [
            &m.put_requests,
            &m.records_failed,
            &m.snapshot_rows,
            &m.merge_runs,
            &m.merge_events,
        ] {
            let _ = family.get_or_create(&label("x", "y"));
        }
        let _ = m
            .snapshot_rows_estimated
            .get_or_create(&label("table", "t"));
        let _ = m
            .merge_rows
            .get_or_create(&[("table", "t".into()), ("op", "inserted".into())]);
        let families: Vec<String> = m
            .encode()
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect();
        let known = |name: &str| {
            families.iter().any(|f| {
                name == f
                    || ["_total", "_bucket", "_count", "_sum"]
                        .iter()
                        .any(|suffix| name == format!("{f}{suffix}"))
            })
        };
        for (file, text) in [
            (
                "alerts.yaml",
                include_str!("../../deploy/monitoring/alerts.yaml"),
            ),
            (
                "grafana-dashboard.json",
                include_str!("../../deploy/monitoring/grafana-dashboard.json"),
            ),
        ] {
            let mut used = 0;
            for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
                if word.starts_with("kinesync_") && !word.contains(':') {
                    used += 1;
                    assert!(
                        known(word),
                        "{file} uses {word}, which kinesync does not export ({families:?})"
                    );
                }
            }
            assert!(used > 5, "{file} queries almost no kinesync metric");
        }
    }
}
