//! `kinesync merge --once --rebuild-events-view`: a merge run, then the
//! events view dropped and created again, empty, so that it holds what the
//! stream still holds (its retention) instead of every record ever
//! refreshed. A streaming materialized view cannot be deleted from: this is
//! how its history is bounded.
//!
//! Why nothing is lost or changed: the view is a copy of the stream, and the
//! stream still holds every record of its retention window. The new view's
//! first refresh reads the stream from its oldest record (TRIM_HORIZON), so
//! it holds every record the old one held that has not expired, plus those
//! that arrived since. Its rows get the new refresh's `refresh_time`, later
//! than the watermark, so the next run merges them all again, and every
//! change already merged is dropped by the position check (the mirror row,
//! the tombstone, the truncate cut-off is at or past it). Records expire by
//! age, so the stream holds every record of the last retention window and,
//! for each key, its newest event among them: a key whose tombstone was
//! pruned and whose insert is read again is deleted again by its delete,
//! read again too. Records that expired were merged
//! long ago (the run before the rebuild merged everything refreshed).
//!
//! Under the merge lease, so no merge runs between the drop and the create.
//! A crash between the two leaves no view: the next run fails naming it,
//! and `kinesync setup` (or this command) creates it. The next run reads
//! the whole retention window again: schedule the rebuild rarely (weekly),
//! at a quiet hour.

use crate::config::Config;
use crate::redshift::DataApi;
use crate::shutdown::Shutdown;
use crate::sql;

use super::lease::Lease;
use super::plan::{self, Objects};
use super::{merge_once, MergeSummary, SchedulerError};

/// A merge run and the view rebuilt after it.
#[derive(Debug)]
pub struct Rebuilt {
    pub merge: MergeSummary,
    pub view: String,
}

impl std::fmt::Display for Rebuilt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\nrebuilt the events view {}: the next run reads the stream's retention window again (what it merged already is skipped)",
            self.merge, self.view
        )
    }
}

/// Runs one merge, then, under the merge lease, drops and creates the
/// events view.
pub async fn merge_and_rebuild(
    config: &Config,
    shutdown: Shutdown,
) -> Result<Rebuilt, SchedulerError> {
    let redshift = config
        .redshift
        .as_ref()
        .ok_or(SchedulerError::NoRedshiftConfig)?;
    let merge = merge_once(config, false, false, shutdown.clone()).await?;
    let objects = Objects::new(config, redshift);
    let api = DataApi::connect(redshift, shutdown).await;
    let lease = Lease::new(&objects, redshift.lease_secs)?;
    lease.take(&api, &objects, &[]).await?;
    let rebuilt = rebuild(&api, &objects).await;
    if let Err(error) = api.execute(lease.release_statement()).await {
        tracing::warn!(%error, "could not release the merge lease (it expires by itself)");
    }
    rebuilt?;
    tracing::info!(view = %objects.events_view, "events view rebuilt");
    Ok(Rebuilt {
        merge,
        view: objects.events_view,
    })
}

/// Drop (teardown's statement), then create (setup's), each a statement
/// of its own as they run there.
async fn rebuild(api: &DataApi, objects: &Objects) -> Result<(), SchedulerError> {
    let drop = sql::TEARDOWN_REDSHIFT_PIPELINE.render_one(&objects.values())?;
    api.execute(&drop).await?;
    for statement in plan::events_view_statements(objects)? {
        api.execute(&statement).await?;
    }
    Ok(())
}
