//! The merge checkpoint as Redshift reports it: the watermark (the newest
//! `refresh_time` merged), when the last merge committed, and Redshift's own
//! clock, so that ages are measured on one clock (Redshift's), never
//! against this host's.
//!
//! Read by `kinesync status` and `check`, and by the merge daemon for the
//! `kinesync_mirror_watermark_age_seconds` gauge: once at start and once
//! after each successful run, inside the run's tick (so the gauge and the
//! run counters change together); between reads the gauge is aged locally.

use crate::redshift::DataApi;
use crate::sql;

use super::plan::Objects;
use super::SchedulerError;

/// One row of the checkpoint table, as text.
#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    pub watermark: Option<String>,
    pub merged_at: Option<String>,
    /// Redshift's `GETDATE()` when the row was read.
    pub now: Option<String>,
}

impl Checkpoint {
    /// This pipeline's checkpoint row (all `None` when it has none).
    pub async fn read(objects: &Objects, api: &DataApi) -> Result<Checkpoint, SchedulerError> {
        let statement = sql::CHECK_REDSHIFT_CHECKPOINT.render_one(&objects.values())?;
        let rows = api.query(&statement).await?;
        let row = rows.into_iter().next().unwrap_or_default();
        Ok(Checkpoint {
            watermark: row.text("watermark"),
            merged_at: row.text("merged_at"),
            now: row.text("now"),
        })
    }

    /// Setup's placeholder watermark (1900) is still there: no merge yet.
    pub fn never_merged(&self) -> bool {
        self.watermark
            .as_deref()
            .is_some_and(|w| w.starts_with("1900-"))
    }

    /// Seconds from the newest merged event's arrival to Redshift's now.
    pub fn watermark_age(&self) -> Option<i64> {
        self.age(&self.watermark)
    }

    /// Seconds since the last merge committed.
    pub fn merge_age(&self) -> Option<i64> {
        self.age(&self.merged_at)
    }

    fn age(&self, then: &Option<String>) -> Option<i64> {
        match (then, &self.now) {
            (Some(then), Some(now)) if !self.never_merged() => seconds_between(then, now),
            _ => None,
        }
    }
}

/// Whole seconds from `then` to `now`, both Redshift timestamps as text.
pub fn seconds_between(then: &str, now: &str) -> Option<i64> {
    let parse = crate::redshift::parse_timestamp;
    Some((parse(now)? - parse(then)?).num_seconds())
}

/// The daemon's watermark read: sets the gauge (aged locally afterwards);
/// a failure is logged at debug level and leaves the gauge as it was.
pub async fn sample_watermark_age(objects: &Objects, api: &DataApi) {
    match Checkpoint::read(objects, api).await {
        Ok(checkpoint) => {
            if let Some(age) = checkpoint.watermark_age() {
                crate::telemetry::metrics().watermark_read(age);
            }
        }
        Err(error) => tracing::debug!(%error, "watermark age sample"),
    }
}
