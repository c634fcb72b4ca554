//! The merge scheduler: `setup` creates the Redshift objects, a merge run
//! refreshes the streaming view and merges every table's new events into its
//! mirror, and the daemon runs merges on a cron schedule.
//!
//! A merge run is: (1) take the merge lease (see `lease`), (2) `REFRESH
//! MATERIALIZED VIEW` as a statement of its own (Redshift runs it as its own
//! transaction), (3) count the pending events per table and take each table's
//! shape from the stream (see `shapes`), (4) make sure every mirror table and
//! column exists, widened to its shape, (5) run the merge batches, each one
//! transaction fenced by the lease, the last one advancing the watermark.
//! The algorithm and why it is correct are in docs/redshift.md.

pub mod mapping;
pub mod plan;

pub mod activity;
pub mod checkpoint;
mod daemon;
mod lease;
mod merge;
mod prune;
mod rebuild;
mod setup;
mod shapes;

pub use daemon::run_daemon;
pub use merge::{merge_once, MergeSummary, TableSummary};
pub use prune::{merge_and_prune, Pruned};
pub use rebuild::{merge_and_rebuild, Rebuilt};
pub(crate) use setup::read_mirror_tables;
pub use setup::setup;
pub use shapes::SHAPES_TABLE;

use crate::redshift::RedshiftError;
use crate::source::tables::TablesError;
use crate::sql::SqlError;

/// Marker of merge/toast_unresolved.sql's failure message.
const UNRESOLVED_TOAST: &str = "kinesync-unresolved-toast: ";
/// The column of merge/begin.sql's lease fence, named in its failure.
const LEASE_FENCE: &str = "kinesync_lease_fence";

impl SchedulerError {
    /// A failed merge batch: a failed lease fence as a lost lease, an
    /// unresolved TOAST placeholder as such (table, key, column), every other
    /// failure as it came.
    pub fn merge(error: RedshiftError) -> SchedulerError {
        let text = error.to_string();
        if matches!(&error, RedshiftError::Failed { statement, .. } if statement.contains(LEASE_FENCE))
        {
            return SchedulerError::LeaseLost;
        }
        match text.split_once(UNRESOLVED_TOAST) {
            Some((_, rest)) => SchedulerError::UnresolvedToast(
                rest.split('"').next().unwrap_or(rest).trim().to_owned(),
            ),
            None => SchedulerError::Merge(error),
        }
    }
}

/// Why `setup` or a merge run failed.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("the [redshift] section is missing from the configuration: merge and setup need it")]
    NoRedshiftConfig,
    #[error("cannot connect to the source database to read its catalog: {0} (check source.url)")]
    SourceConnect(String),
    #[error(transparent)]
    Catalog(#[from] TablesError),
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error("refresh of the events view failed: {0}")]
    Refresh(RedshiftError),
    #[error("merge failed; mirror tables and watermark of the failed batch are unchanged, the next run retries: {0}")]
    Merge(RedshiftError),
    #[error(
        "merge failed: an unchanged TOAST value cannot be resolved ({0}): the row's previous version is neither \
         in this run's events nor in the mirror, so the value is unknown and nothing was written; re-sync the table \
         (docs/operations.md, \"Re-syncing one table\"). Mirror tables and watermark of the failed batch are unchanged"
    )]
    UnresolvedToast(String),
    #[error(transparent)]
    Redshift(#[from] RedshiftError),
    #[error("data loss: events written to the stream between {from} and {to} (UTC) expired before a refresh read them (the previous refresh was at {from}, the stream keeps records redshift.retention_hours = {retention_hours} h); nothing was merged. Re-sync tables {tables} (docs/operations.md, \"Re-syncing one table\"), then run kinesync merge --once --accept-data-loss")]
    DataLoss {
        from: String,
        to: String,
        retention_hours: u64,
        tables: String,
    },
    #[error("merge skipped: another scheduler ({holder}) holds the merge lease until {until} (this run: {this_run})")]
    LeaseHeld {
        holder: String,
        until: String,
        this_run: String,
    },
    #[error("merge stopped: this run lost the merge lease (it expired: the renewal did not reach Redshift within redshift.lease_secs, or another scheduler took it over); the batch was rolled back, mirror tables and watermark are unchanged, the next run retries")]
    LeaseLost,
    #[error("replication slot {slot} not found or without a confirmed position: --prune-tombstones needs the producer's slot (check source.slot, or run kinesync produce first)")]
    NoSlotPosition { slot: String },
    #[error("invalid merge schedule: {0}")]
    Schedule(String),
    #[error(transparent)]
    Shapes(#[from] shapes::ShapesError),
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::ServeError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unresolved_toast_failure_is_reported_as_such() {
        let error = RedshiftError::Failed {
            statement: "batch of 20 statements".into(),
            error: "ERROR: invalid input syntax for type integer: \"kinesync-unresolved-toast: table public.t key (7) column doc\" (sub-statement 9 of 20)".into(),
        };
        let SchedulerError::UnresolvedToast(what) = SchedulerError::merge(error) else {
            panic!("not UnresolvedToast");
        };
        assert_eq!(what, "table public.t key (7) column doc");
        let other = RedshiftError::Failed {
            statement: "x".into(),
            error: "ERROR: boom".into(),
        };
        assert!(matches!(
            SchedulerError::merge(other),
            SchedulerError::Merge(_)
        ));
        let fenced = RedshiftError::Failed {
            statement: "SELECT 1 / COUNT(*) AS kinesync_lease_fence FROM mirror.kinesync_lease"
                .into(),
            error: "ERROR: division by zero (sub-statement 1 of 20)".into(),
        };
        assert!(matches!(
            SchedulerError::merge(fenced),
            SchedulerError::LeaseLost
        ));
    }
}
