//! The merge lease: at most one scheduler merges at a time, on any host.
//!
//! Protocol (one row `name = 'merge'` of `kinesync_lease`, times by
//! Redshift's clock):
//!
//! 1. A run takes the lease in its first batch (merge/lease_acquire.sql:
//!    drop an expired row or its own, insert its own unless a row is left),
//!    then reads the holder (merge/lease_holder.sql) in the same batch.
//! 2. While the run is in progress a background task renews it every
//!    `lease_secs / 3` (merge/lease_renew.sql). A renewal that finds no
//!    unexpired row of this holder means the lease is lost: the run stops
//!    before its next merge batch.
//! 3. Every merge batch starts with the fence of merge/begin.sql, which fails
//!    the whole batch (one transaction) unless this holder's row is
//!    unexpired: a run that lost its lease changes nothing, even if it has
//!    not noticed yet.
//! 4. The run drops its row when it ends; a holder that stopped renewing
//!    (killed, partitioned, on any host) loses it at most `lease_secs` after
//!    its last renewal, and the next run takes it over. A holder of this
//!    host whose process is gone is taken over at once.
//!
//! The renewal writes only the lease table, which merge batches only read:
//! under Redshift's serializable isolation the two never conflict.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::redshift::{DataApi, RedshiftError, Row};

use super::plan::{self, LeaseStatements, Objects};
use super::SchedulerError;

/// This run's claim on the merge lease.
pub struct Lease {
    holder: String,
    seconds: u64,
    statements: LeaseStatements,
}

/// What the lease batch read besides the holder: the rows of the extra
/// queries given to [`Lease::take`], in order, and the holder row's times.
pub struct Taken {
    pub holder_row: Row,
    pub extra: Vec<Vec<Row>>,
}

impl Lease {
    /// A lease for this process (`host:pid:random`) lasting `seconds` from
    /// each renewal.
    pub fn new(objects: &Objects, seconds: u64) -> Result<Lease, SchedulerError> {
        Lease::with_holder(objects, lease_holder_id(), seconds)
    }

    fn with_holder(
        objects: &Objects,
        holder: String,
        seconds: u64,
    ) -> Result<Lease, SchedulerError> {
        let statements = plan::lease_statements(objects, &holder, seconds)?;
        Ok(Lease {
            holder,
            seconds,
            statements,
        })
    }

    /// The name this run holds the lease under.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The statement dropping this run's lease.
    pub fn release_statement(&self) -> &str {
        &self.statements.release
    }

    /// Takes the lease, running `extra` queries in the same batch (one
    /// GetStatementResult each). Fails with [`SchedulerError::LeaseHeld`]
    /// when another scheduler holds an unexpired lease.
    pub async fn take(
        &self,
        api: &DataApi,
        objects: &Objects,
        extra: &[String],
    ) -> Result<Taken, SchedulerError> {
        let mut taken = self.take_batch(api, extra).await?;
        let current = taken.holder_row.text("holder");
        if let Some(stale) = current.filter(|c| *c != self.holder && holder_is_gone(c)) {
            tracing::warn!(
                holder = %stale,
                "the merge lease is held by a scheduler of this host that no longer runs (killed?): taking it over"
            );
            api.execute(&plan::lease_break_statement(objects, &stale)?)
                .await?;
            taken = self.take_batch(api, extra).await?;
        }
        let row = &taken.holder_row;
        match row.text("holder") {
            Some(current) if current == self.holder => Ok(taken),
            current => {
                // Two schedulers may both have inserted a lease row at once
                // (the first by name wins): the one backing off removes its
                // own row, or it would block later runs until it expires.
                if let Err(error) = api.execute(&self.statements.release).await {
                    tracing::warn!(%error, "could not remove this run's losing lease row; it expires by itself");
                }
                Err(SchedulerError::LeaseHeld {
                    holder: current.unwrap_or_else(|| "(unknown)".to_owned()),
                    until: row.text("expires_at").unwrap_or_default(),
                    this_run: self.holder.clone(),
                })
            }
        }
    }

    async fn take_batch(&self, api: &DataApi, extra: &[String]) -> Result<Taken, SchedulerError> {
        let mut statements = self.statements.acquire.clone();
        let first = statements.len();
        statements.push(self.statements.holder.clone());
        statements.extend(extra.iter().cloned());
        let wanted: Vec<usize> = (first..statements.len()).collect();
        let mut results = match api.batch_with_results(&statements, &wanted).await {
            Err(RedshiftError::Failed { error, .. }) if is_serialization_conflict(&error) => {
                // Should Redshift abort the later of two simultaneous takers
                // instead of letting it wait at the LOCK: the other one won.
                return Err(SchedulerError::LeaseHeld {
                    holder: format!("another scheduler taking it at the same moment ({error})"),
                    until: "its run ends".to_owned(),
                    this_run: self.holder.clone(),
                });
            }
            outcome => outcome?,
        };
        let holder_rows = if results.is_empty() {
            Vec::new()
        } else {
            results.remove(0)
        };
        Ok(Taken {
            holder_row: holder_rows.first().cloned().unwrap_or_default(),
            extra: results,
        })
    }

    /// Starts renewing the lease every third of its duration, until
    /// [`Renewal::stop`].
    pub fn renew_in_background(&self, api: &DataApi) -> Renewal {
        let (stop, mut stopped) = watch::channel(false);
        let lost = Arc::new(AtomicBool::new(false));
        let every = Duration::from_millis(self.seconds * 1000 / 3);
        let (api, renew, lost_flag) = (api.clone(), self.statements.renew.clone(), lost.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                match api.execute(&renew).await {
                    Ok(0) => {
                        tracing::error!("the merge lease was lost (expired, or taken over by another scheduler): this run stops before its next merge batch");
                        lost_flag.store(true, Ordering::SeqCst);
                        return;
                    }
                    Ok(_) => tracing::debug!("merge lease renewed"),
                    Err(error) => {
                        tracing::warn!(%error, "could not renew the merge lease; trying again")
                    }
                }
            }
        });
        Renewal { stop, lost, task }
    }
}

/// The background renewal of a [`Lease`].
pub struct Renewal {
    stop: watch::Sender<bool>,
    lost: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Renewal {
    /// Whether a renewal found the lease gone.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Stops renewing; waits for a renewal in flight, so that nothing
    /// writes the lease after this returns.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the merge lease renewal task failed");
        }
    }
}

/// Redshift's "ERROR: 1023 ... Serializable isolation violation on table"
/// (c_serial_isolation.html): a concurrent transaction won.
fn is_serialization_conflict(error: &str) -> bool {
    error
        .to_ascii_lowercase()
        .contains("serializable isolation violation")
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// `host:pid:random`, naming this run in the lease table.
fn lease_holder_id() -> String {
    format!(
        "{}:{}:{:08x}",
        host_name(),
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Whether `holder` (`host:pid:random`) names a process of this host that
/// no longer exists. Only where `/proc` tells (Linux); elsewhere, and for
/// other hosts, the lease is left to expire.
fn holder_is_gone(holder: &str) -> bool {
    let mut parts = holder.rsplitn(3, ':');
    let (Some(_), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let proc = std::path::Path::new("/proc");
    host == host_name()
        && pid.parse::<u32>().is_ok()
        && proc.join("self").exists()
        && !proc.join(pid).exists()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_lease_holder_elsewhere_or_alive_is_not_gone() {
        use super::holder_is_gone;
        assert!(!holder_is_gone("some-other-host:1:abcd"));
        let me = super::lease_holder_id();
        assert!(!holder_is_gone(&me), "this process is alive");
        assert!(!holder_is_gone("no-pid-here"));
    }
}
