//! `kinesync merge`: merge runs on the cron schedule of `[schedule] merge`,
//! never overlapping inside this process (a run still going when the next
//! tick comes makes that tick skip, with a log line).
//!
//! With `schedule.skip_idle` (the default), a tick first asks Kinesis
//! whether any record arrived since the previous run began
//! ([`super::activity`]); when none did, the tick ends there, without a
//! single Data API request, logged and counted as `result="idle"`. The first
//! tick after start, and any tick more than `schedule.max_idle_secs` after
//! the last run, always runs.
//!
//! Each run's outcome goes to the metrics (runs by result, duration, rows
//! per table, last success) and to readiness: `/readyz` fails while the
//! last run failed or the Data API does not answer.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::config::Config;
use crate::redshift::DataApi;
use crate::shutdown::Shutdown;
use crate::telemetry::metrics::{label, unix_now};
use crate::telemetry::{self, health, metrics};

use super::activity::{Activity, StreamActivity};
use super::checkpoint;
use super::plan::Objects;
use super::{merge_once, MergeSummary, SchedulerError};

/// The readiness condition "the last merge run did not fail".
pub const LAST_MERGE_CONDITION: &str = "last_merge";
/// How often the idle daemon tells [`health()`] it is alive.
const BEAT_INTERVAL: Duration = Duration::from_secs(1);

/// Runs until `shutdown` fires; an in-flight merge is cancelled through the
/// Data API when it does, and waited for.
pub async fn run_daemon(config: Config, shutdown: Shutdown) -> Result<(), SchedulerError> {
    // Without it every tick would fail the same way, forever: stop now.
    let Some(redshift) = &config.redshift else {
        return Err(SchedulerError::NoRedshiftConfig);
    };
    health().set(LAST_MERGE_CONDITION, Ok(()));
    let api = DataApi::connect(redshift, shutdown.clone()).await;
    let objects = Arc::new(Objects::new(&config, redshift));
    checkpoint::sample_watermark_age(&objects, &api).await;
    let run_api = api.clone();
    health().set_probe(
        "data_api",
        Arc::new(move || {
            let api = api.clone();
            Box::pin(async move { api.ping().await.map_err(|e| e.to_string()) })
        }),
    );
    telemetry::serve_if_configured(&config, &shutdown).await?;
    let schedule_error =
        |e: tokio_cron_scheduler::JobSchedulerError| SchedulerError::Schedule(e.to_string());
    let scheduler = JobScheduler::new().await.map_err(schedule_error)?;
    let gate = IdleGate::new(&config).await;
    let running = Arc::new(Mutex::new(gate));
    let in_flight = running.clone();
    let config = Arc::new(config);
    let job_shutdown = shutdown.clone();
    let schedule = config.schedule.merge.clone();
    let job = Job::new_async(schedule.as_str(), move |_, _| {
        let running = running.clone();
        let config = config.clone();
        let shutdown = job_shutdown.clone();
        let (objects, api) = (objects.clone(), run_api.clone());
        Box::pin(async move {
            if shutdown.is_triggered() {
                return;
            }
            let Ok(mut gate) = running.try_lock() else {
                tracing::warn!("previous merge run still going; skipping this tick");
                return;
            };
            if gate.is_idle().await {
                return;
            }
            let (started, began) = (Instant::now(), SystemTime::now());
            let outcome = merge_once(&config, false, false, shutdown).await;
            if outcome.is_ok() {
                gate.last_run = Some(began);
                // Before the run is counted: whoever sees the count sees the age.
                checkpoint::sample_watermark_age(&objects, &api).await;
            }
            record_run(&outcome, started.elapsed());
            match outcome {
                Ok(summary) => tracing::info!("{summary}"),
                Err(error @ super::SchedulerError::LeaseHeld { .. }) => tracing::info!("{error}"),
                Err(error) => tracing::error!("{error}"),
            }
        })
    })
    .map_err(schedule_error)?;
    scheduler.add(job).await.map_err(schedule_error)?;
    scheduler.start().await.map_err(schedule_error)?;
    tracing::info!("merge scheduler started");
    let mut beat = tokio::time::interval(BEAT_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = beat.tick() => health().beat(),
        }
    }
    // A run in flight sees the same signal, cancels its statement through
    // the Data API and ends; wait for it so its outcome is logged.
    let _finished = in_flight.lock().await;
    let mut scheduler = scheduler;
    scheduler.shutdown().await.map_err(schedule_error)?;
    tracing::info!("merge scheduler stopped");
    Ok(())
}

/// Whether a tick may skip Redshift: the stream's activity since the
/// beginning of the last successful run.
struct IdleGate {
    /// `None` with `schedule.skip_idle = false`.
    activity: Option<StreamActivity>,
    max_idle: Duration,
    last_run: Option<SystemTime>,
}

impl IdleGate {
    async fn new(config: &Config) -> IdleGate {
        let activity = match config.schedule.skip_idle {
            true => Some(StreamActivity::from_config(&config.kinesis).await),
            false => None,
        };
        IdleGate {
            activity,
            max_idle: Duration::from_secs(config.schedule.max_idle_secs),
            last_run: None,
        }
    }

    /// True (logged and counted) when nothing arrived since the last run;
    /// false when the tick must run, or when that cannot be ruled out.
    async fn is_idle(&self) -> bool {
        let (Some(activity), Some(last)) = (&self.activity, self.last_run) else {
            return false;
        };
        if last.elapsed().map_or(true, |age| age >= self.max_idle) {
            return false;
        }
        match activity.since(last).await {
            Ok(Activity::Quiet { shards }) => {
                let since = chrono::DateTime::<chrono::Utc>::from(last);
                tracing::info!(
                    shards,
                    since = %since.format("%Y-%m-%d %H:%M:%S UTC"),
                    "merge skipped: no record arrived in the stream since the last run (Redshift not contacted)"
                );
                metrics()
                    .merge_runs
                    .get_or_create(&label("result", "idle"))
                    .inc();
                true
            }
            Ok(Activity::Arrived { .. }) => false,
            Err(error) => {
                tracing::warn!(
                    "could not ask Kinesis whether the stream is idle, so this tick runs the merge: {}; {}",
                    error.problem(),
                    error.fix()
                );
                false
            }
        }
    }
}

/// A run's outcome in the metrics and the readiness condition. A run skipped
/// because another scheduler holds the lease is neither a success nor a failure.
fn record_run(outcome: &Result<MergeSummary, SchedulerError>, took: Duration) {
    let m = metrics();
    let result = match outcome {
        Ok(summary) => {
            m.merge_duration.observe(took.as_secs_f64());
            m.merge_last_success.set(unix_now());
            for t in &summary.tables {
                m.merge_events
                    .get_or_create(&label("table", t.table.as_str()))
                    .inc_by(t.events);
                for (op, rows) in [
                    ("inserted", t.inserted),
                    ("updated", t.updated),
                    ("deleted", t.deleted),
                ] {
                    m.merge_rows
                        .get_or_create(&[("table", t.table.clone()), ("op", op.to_owned())])
                        .inc_by(u64::try_from(rows).unwrap_or(0));
                }
            }
            health().set(LAST_MERGE_CONDITION, Ok(()));
            "ok"
        }
        Err(SchedulerError::LeaseHeld { .. }) => "skipped",
        Err(error) => {
            m.merge_duration.observe(took.as_secs_f64());
            health().set(LAST_MERGE_CONDITION, Err(error.to_string()));
            "failed"
        }
    };
    m.merge_runs.get_or_create(&label("result", result)).inc();
}
