//! `kinesync status`: how far behind the pipeline is, from what PostgreSQL
//! and Redshift record (no process needs to be asked):
//!
//! - the slot: confirmed LSN, lag in bytes behind the server's WAL, the
//!   walsender's flush lag (time) while a producer is connected;
//! - the producer's put rate, read from its `/metrics` when
//!   `[telemetry] listen` is configured;
//! - the merge: last run's time and outcome, watermark age, and the margin
//!   left before unmerged events expire from the stream.
//!
//! A part that cannot be read is reported as such; the exit code is non-zero
//! only if nothing could be read at all.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use super::check::{redshift_values, render};
use super::human_duration;
use super::resync::{describe_state, states, ResyncState};
use crate::config::Config;
use crate::postgres::redact_url;
use crate::redshift::DataApi;
use crate::scheduler::checkpoint::Checkpoint;
use crate::scheduler::plan::Objects;
use crate::shutdown::Shutdown;
use crate::sql;
use crate::telemetry::{metrics, Process};

/// The slot as PostgreSQL sees it.
#[derive(Debug, Clone, Serialize)]
pub struct SlotStatus {
    pub slot: String,
    pub exists: bool,
    /// A producer is connected to it.
    pub active: bool,
    pub wal_status: Option<String>,
    pub confirmed_lsn: Option<String>,
    /// WAL written since the confirmed LSN.
    pub lag_bytes: Option<i64>,
    /// The walsender's flush lag while a producer is connected.
    pub lag_seconds: Option<f64>,
    /// WAL the slot keeps on the server's disk.
    pub retained_bytes: Option<i64>,
}

/// The merge as Redshift records it.
#[derive(Debug, Clone, Serialize)]
pub struct MergeStatus {
    /// Newest `refresh_time` merged.
    pub watermark: Option<String>,
    pub watermark_age_seconds: Option<i64>,
    /// When the last successful merge committed.
    pub last_success_at: Option<String>,
    /// When the last run ended, and how.
    pub last_run_at: Option<String>,
    pub last_run_result: Option<String>,
    pub last_run_detail: Option<String>,
    /// Time left before events waiting since the last success expire from
    /// the stream (`redshift.retention_hours` minus the time since it).
    pub retention_margin_seconds: Option<i64>,
}

/// Everything `status` could find out; `errors` says what it could not.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub slot: Option<SlotStatus>,
    /// Events per second the producer put, from its metrics.
    pub events_per_second: Option<f64>,
    pub merge: Option<MergeStatus>,
    /// The resyncs of this slot (`kinesync resync`), running or done.
    pub resyncs: Vec<ResyncState>,
    pub errors: Vec<String>,
}

impl StatusReport {
    /// True when no part could be read at all.
    pub fn nothing_read(&self) -> bool {
        self.slot.is_none() && self.merge.is_none() && self.events_per_second.is_none()
    }
}

/// How often the producer samples its slot's lag for `kinesync_slot_lag_bytes`.
pub const SLOT_LAG_SAMPLE: Duration = Duration::from_secs(10);
/// How often the merge daemon ages `kinesync_mirror_watermark_age_seconds`.
/// The daemon reads the watermark from Redshift only at start and right
/// after each successful run, inside the run's tick (`scheduler::checkpoint`),
/// so an idle daemon does not wake the warehouse (docs/operations.md, "Idle runs").
pub const WATERMARK_SAMPLE: Duration = Duration::from_secs(1);

/// Keeps the sampled gauges of a long-running process current until
/// `shutdown`: the slot lag (producer) or the watermark age (merge daemon),
/// read the way `kinesync status` reads them. A failed sample keeps the
/// last value and logs at debug: the process's own health says what is down.
pub async fn sample_gauges(config: Config, process: Process, shutdown: Shutdown) {
    let every = match process {
        Process::Produce => SLOT_LAG_SAMPLE,
        Process::Merge => WATERMARK_SAMPLE,
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tick.tick() => {}
        }
        let m = metrics();
        match process {
            Process::Produce => match slot_status(&config).await {
                Ok(SlotStatus {
                    lag_bytes: Some(lag),
                    ..
                }) => {
                    m.slot_lag_bytes.set(lag);
                }
                Ok(_) => {}
                Err(error) => tracing::debug!(%error, "slot lag sample"),
            },
            // Read by the daemon itself (scheduler::checkpoint); aged here.
            Process::Merge => m.age_watermark(),
        }
    }
}

/// How long `status` samples the producer's put counter for its rate.
pub const RATE_SAMPLE: Duration = Duration::from_secs(1);
/// Longest wait for one scrape of the producer's metrics.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);

/// `telemetry.listen` (or `--metrics-addr`), with an unspecified address
/// (0.0.0.0, ::) reached on loopback.
fn producer_metrics_addr(config: &Config) -> Option<SocketAddr> {
    let mut addr = config.telemetry.listen_addr()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Some(addr)
}

/// Events per second the producer put: two reads of
/// `kinesync_events_put_total`, [`RATE_SAMPLE`] apart.
async fn put_rate(addr: SocketAddr) -> Result<f64, String> {
    let first = events_put(addr).await?;
    let started = std::time::Instant::now();
    tokio::time::sleep(RATE_SAMPLE).await;
    let second = events_put(addr).await?;
    Ok((second - first).max(0.0) / started.elapsed().as_secs_f64())
}

/// The producer's `kinesync_events_put_total`, by a plain HTTP/1.0 GET.
async fn events_put(addr: SocketAddr) -> Result<f64, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let scrape = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: kinesync\r\n\r\n")
            .await?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    let body = tokio::time::timeout(SCRAPE_TIMEOUT, scrape)
        .await
        .map_err(|_| "no answer within 3 s".to_owned())?
        .map_err(|e| e.to_string())?;
    body.lines()
        .find_map(|line| line.strip_prefix("kinesync_events_put_total "))
        .and_then(|value| value.trim().parse().ok())
        .ok_or_else(|| {
            "no kinesync_events_put_total in /metrics (is it a kinesync producer?)".to_owned()
        })
}

pub async fn status(config: &Config, shutdown: Shutdown) -> StatusReport {
    let mut errors = Vec::new();
    let slot = match slot_status(config).await {
        Ok(slot) => Some(slot),
        Err(error) => {
            errors.push(format!("source: {error}"));
            None
        }
    };
    let resyncs = match resync_status(config).await {
        Ok(resyncs) => resyncs,
        Err(error) if slot.is_some() => {
            errors.push(format!("resync requests: {error}"));
            Vec::new()
        }
        Err(_) => Vec::new(),
    };
    let merge = match &config.redshift {
        Some(_) => match merge_status(config, shutdown).await {
            Ok(merge) => Some(merge),
            Err(error) => {
                errors.push(format!("redshift: {error}"));
                None
            }
        },
        None => None,
    };
    let events_per_second = match producer_metrics_addr(config) {
        Some(addr) => match put_rate(addr).await {
            Ok(rate) => Some(rate),
            Err(error) => {
                errors.push(format!("producer metrics at {addr}: {error}"));
                None
            }
        },
        None => None,
    };
    StatusReport {
        slot,
        events_per_second,
        merge,
        resyncs,
        errors,
    }
}

async fn resync_status(config: &Config) -> Result<Vec<ResyncState>, String> {
    let client = crate::catalog::connect(&config.source.url)
        .await
        .map_err(|e| format!("{}: {}", redact_url(&config.source.url), e.describe()))?;
    states(&client, config).await.map_err(|e| e.to_string())
}

async fn slot_status(config: &Config) -> Result<SlotStatus, String> {
    let client = crate::catalog::connect(&config.source.url)
        .await
        .map_err(|e| format!("{}: {}", redact_url(&config.source.url), e.describe()))?;
    let statement = sql::CHECK_SOURCE_SLOT
        .render_one(&sql::Values::new())
        .map_err(|e| e.to_string())?;
    let row = client
        .query_opt(&statement, &[&config.source.slot])
        .await
        .map_err(|e| crate::postgres::pg_message(&e))?;
    let Some(row) = row else {
        return Ok(SlotStatus {
            slot: config.source.slot.clone(),
            exists: false,
            active: false,
            wal_status: None,
            confirmed_lsn: None,
            lag_bytes: None,
            lag_seconds: None,
            retained_bytes: None,
        });
    };
    Ok(SlotStatus {
        slot: config.source.slot.clone(),
        exists: true,
        active: row.get("active"),
        wal_status: row.get("wal_status"),
        confirmed_lsn: row.get("confirmed_lsn"),
        lag_bytes: row.get("lag_bytes"),
        lag_seconds: row.get("flush_lag_seconds"),
        retained_bytes: row.get("retained_bytes"),
    })
}

async fn merge_status(config: &Config, shutdown: Shutdown) -> Result<MergeStatus, String> {
    let Some(redshift) = &config.redshift else {
        return Err("no [redshift] section".to_owned());
    };
    let objects = Objects::new(config, redshift);
    let mut values = redshift_values(redshift, &objects);
    values.insert("merge_status", objects.merge_status.clone());
    let api = DataApi::connect(redshift, shutdown).await;
    let checkpoint = Checkpoint::read(&objects, &api).await.map_err(|e| {
        format!("{e} (run `kinesync setup` if the checkpoint table does not exist)")
    })?;
    let never_merged = checkpoint.never_merged();
    let mut status = MergeStatus {
        watermark_age_seconds: checkpoint.watermark_age(),
        retention_margin_seconds: checkpoint
            .merge_age()
            .map(|a| redshift.retention_hours as i64 * 3600 - a),
        watermark: checkpoint.watermark.filter(|_| !never_merged),
        last_success_at: checkpoint.merged_at.filter(|_| !never_merged),
        last_run_at: None,
        last_run_result: None,
        last_run_detail: None,
    };
    // The run log is newer than the checkpoint: older setups lack its table.
    if let Some(statement) = render(sql::CHECK_REDSHIFT_MERGE_STATUS, &values) {
        if let Ok(rows) = api.query(&statement).await {
            if let Some(row) = rows.into_iter().next() {
                status.last_run_at = row.text("finished_at");
                status.last_run_result = row.text("result");
                status.last_run_detail = row.text("detail");
            }
        }
    }
    Ok(status)
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_unknown = |v: Option<String>| v.unwrap_or_else(|| "unknown".to_owned());
        match &self.slot {
            Some(slot) if !slot.exists => writeln!(
                f,
                "slot {}: does not exist (the producer has not started yet, or it was dropped)",
                slot.slot
            )?,
            Some(slot) => {
                writeln!(
                    f,
                    "slot {}: {}, wal_status {}",
                    slot.slot,
                    if slot.active {
                        "producer connected"
                    } else {
                        "NO producer connected"
                    },
                    or_unknown(slot.wal_status.clone())
                )?;
                writeln!(
                    f,
                    "  confirmed LSN {}, lag {} bytes{}, WAL retained {} MiB",
                    or_unknown(slot.confirmed_lsn.clone()),
                    or_unknown(slot.lag_bytes.map(|b| b.to_string())),
                    slot.lag_seconds
                        .map(|s| format!(" ({s:.1} s flush lag)"))
                        .unwrap_or_default(),
                    or_unknown(slot.retained_bytes.map(|b| (b / (1024 * 1024)).to_string()))
                )?;
            }
            None => writeln!(f, "slot: unknown")?,
        }
        for resync in &self.resyncs {
            writeln!(f, "  {}", describe_state(resync))?;
        }
        match self.events_per_second {
            Some(rate) => writeln!(f, "producer: {rate:.1} events/s put")?,
            None => writeln!(
                f,
                "producer: put rate unknown (set [telemetry] listen or --metrics-addr to read it)"
            )?,
        }
        match &self.merge {
            Some(merge) => {
                match (&merge.last_success_at, merge.watermark_age_seconds) {
                    (Some(at), Some(age)) => writeln!(
                        f,
                        "merge: last success {at}; watermark {} ({} old)",
                        or_unknown(merge.watermark.clone()),
                        human_duration(age)
                    )?,
                    _ => writeln!(f, "merge: no merge yet")?,
                }
                if let (Some(at), Some(result)) = (&merge.last_run_at, &merge.last_run_result) {
                    writeln!(
                        f,
                        "  last run {at}: {result}: {}",
                        merge.last_run_detail.clone().unwrap_or_default()
                    )?;
                }
                if let Some(margin) = merge.retention_margin_seconds {
                    if margin <= 0 {
                        writeln!(f, "  retention margin: EXCEEDED by {}: events may have expired unmerged (docs/operations.md)", human_duration(-margin))?;
                    } else {
                        writeln!(f, "  retention margin: {}", human_duration(margin))?;
                    }
                }
            }
            None => writeln!(f, "merge: unknown")?,
        }
        for error in &self.errors {
            writeln!(f, "could not read {error}")?;
        }
        Ok(())
    }
}
