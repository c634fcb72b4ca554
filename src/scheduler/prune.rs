//! `kinesync merge --once --prune-tombstones`: a merge run that also drops
//! the tombstones no event can still need, so they do not grow without
//! bound.
//!
//! A tombstone (key, position of the delete) stops an older event of that
//! key from bringing the row back. Such an event can only be one already
//! accepted by Kinesis and not yet merged, or a re-send after a producer
//! restart. The producer confirms an LSN to its slot only once Kinesis
//! accepted every event below it, and a restart re-sends from the confirmed
//! LSN on. So with `C` = the slot's confirmed LSN read *before* a refresh:
//! once the run after that refresh has merged, every event below `C` is in
//! the mirror or lost to a newer position, and none can come again. Its
//! tombstones below `C` are deleted (after the run, in batches of their own:
//! deleting them later than that is just as safe).
//!
//! This is the one merge that reads the source (the slot's position);
//! schedule it daily, for example, from cron or a Kubernetes CronJob.

use crate::catalog;
use crate::config::Config;
use crate::lsn::Lsn;
use crate::redshift::DataApi;
use crate::shutdown::Shutdown;
use crate::sql;

use super::plan::{self, Objects, MAX_STATEMENTS_PER_BATCH};
use super::{merge_once, MergeSummary, SchedulerError};

/// A merge run and the tombstones it pruned.
#[derive(Debug)]
pub struct Pruned {
    pub merge: MergeSummary,
    /// The slot's confirmed LSN read before the run: tombstones below it went.
    pub below: Lsn,
    pub tables: usize,
}

impl std::fmt::Display for Pruned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\npruned the tombstones of {} table(s) below the slot's confirmed LSN {}",
            self.merge, self.tables, self.below
        )
    }
}

/// Reads the slot's confirmed LSN, runs one merge, then prunes.
pub async fn merge_and_prune(
    config: &Config,
    shutdown: Shutdown,
) -> Result<Pruned, SchedulerError> {
    let redshift = config
        .redshift
        .as_ref()
        .ok_or(SchedulerError::NoRedshiftConfig)?;
    let below = confirmed_lsn(config).await?;
    let merge = merge_once(config, false, false, shutdown.clone()).await?;
    let objects = Objects::new(config, redshift);
    let tables = super::read_mirror_tables(config).await?;
    let statements = tables
        .iter()
        .map(|t| prune_statement(&objects, &t.name, below))
        .collect::<Result<Vec<_>, _>>()?;
    let api = DataApi::connect(redshift, shutdown).await;
    for chunk in statements.chunks(MAX_STATEMENTS_PER_BATCH) {
        api.batch(chunk).await?;
    }
    tracing::info!(tables = tables.len(), below = %below, "tombstones pruned");
    Ok(Pruned {
        merge,
        below,
        tables: tables.len(),
    })
}

fn prune_statement(objects: &Objects, mirror: &str, below: Lsn) -> Result<String, SchedulerError> {
    let mut values = objects.values();
    values.insert(
        "tombstones",
        sql::qualified(
            &objects.mirror_schema_name,
            &plan::tombstone_table_name(mirror),
        ),
    );
    values.insert("confirmed_lsn", below.0.to_string());
    Ok(sql::MERGE_PRUNE_TOMBSTONES.render_one(&values)?)
}

/// The slot's `confirmed_flush_lsn`: what Kinesis holds every event below.
async fn confirmed_lsn(config: &Config) -> Result<Lsn, SchedulerError> {
    let source = |detail: String| {
        SchedulerError::SourceConnect(format!(
            "{}: {detail}",
            crate::postgres::redact_url(&config.source.url)
        ))
    };
    let client = catalog::connect(&config.source.url)
        .await
        .map_err(|e| source(e.describe()))?;
    let row = client
        .query_opt(&sql::CHECK_SOURCE_SLOT.plain(), &[&config.source.slot])
        .await
        .map_err(|e| source(e.to_string()))?;
    let text: Option<String> = row.and_then(|r| r.get("confirmed_lsn"));
    text.as_deref()
        .and_then(|t| t.parse::<Lsn>().ok())
        .ok_or_else(|| SchedulerError::NoSlotPosition {
            slot: config.source.slot.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prune_deletes_only_below_the_confirmed_position() {
        let config = crate::config::Config::from_toml_with_env(
            "[source]\nurl = \"postgres://u@127.0.0.1:1/db\"\ntables = [\"public.t\"]\n[redshift]\nworkgroup = \"w\"\ndatabase = \"dev\"\nstream_role_arn = \"arn:aws:iam::1:role/r\"",
            &std::collections::BTreeMap::new(),
        )
        .unwrap();
        let objects = Objects::new(&config, config.redshift.as_ref().unwrap());
        let sql = prune_statement(&objects, "orders", Lsn(0x1_0000_0010)).unwrap();
        assert!(
            sql.ends_with("WHERE _kinesync_commit_lsn < 4294967312"),
            "{sql}"
        );
        assert!(sql.contains("kinesync_tombstones__orders"), "{sql}");
    }
}
