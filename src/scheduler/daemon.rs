//! `kinesync merge`: merge runs on the cron schedule of `[schedule] merge`,
//! never overlapping inside this process (a run still going when the next
//! tick comes makes that tick skip, with a log line).

use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::config::Config;
use crate::shutdown::Shutdown;

use super::{merge_once, SchedulerError};

/// Runs until `shutdown` fires; an in-flight merge is cancelled through the
/// Data API when it does, and waited for.
pub async fn run_daemon(config: Config, shutdown: Shutdown) -> Result<(), SchedulerError> {
    // Without it every tick would fail the same way, forever: stop now.
    if config.redshift.is_none() {
        return Err(SchedulerError::NoRedshiftConfig);
    }
    let schedule_error =
        |e: tokio_cron_scheduler::JobSchedulerError| SchedulerError::Schedule(e.to_string());
    let scheduler = JobScheduler::new().await.map_err(schedule_error)?;
    let running = Arc::new(Mutex::new(()));
    let in_flight = running.clone();
    let config = Arc::new(config);
    let job_shutdown = shutdown.clone();
    let schedule = config.schedule.merge.clone();
    let job = Job::new_async(schedule.as_str(), move |_, _| {
        let running = running.clone();
        let config = config.clone();
        let shutdown = job_shutdown.clone();
        Box::pin(async move {
            if shutdown.is_triggered() {
                return;
            }
            let Ok(_guard) = running.try_lock() else {
                tracing::warn!("previous merge run still going; skipping this tick");
                return;
            };
            match merge_once(&config, false, false, shutdown).await {
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
    shutdown.wait().await;
    // A run in flight sees the same signal, cancels its statement through
    // the Data API and ends; wait for it so its outcome is logged.
    let _finished = in_flight.lock().await;
    let mut scheduler = scheduler;
    scheduler.shutdown().await.map_err(schedule_error)?;
    tracing::info!("merge scheduler stopped");
    Ok(())
}
