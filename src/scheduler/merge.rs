//! One merge run: refresh, count what is pending, merge in batches.

use std::fmt;
use std::time::{Duration, Instant};

use crate::config::Config;
use std::collections::BTreeMap;

use crate::redshift::{DataApi, Row};
use crate::shutdown::Shutdown;
use crate::sql::TableName;

use super::plan::{self, MirrorTable, Objects, Pending};
use super::setup::read_mirror_tables;
use super::shapes;
use super::SchedulerError;

/// What one table got from a merge run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableSummary {
    pub table: String,
    pub events: u64,
    pub inserted: i64,
    pub updated: i64,
    pub deleted: i64,
}

/// Rows inserted, updated and deleted in the table at `table` by `batch`,
/// from the row counts of its counted statements (see [`plan::Counted`]):
/// `None` when the table is not in the batch.
fn table_counts(batch: &plan::MergeBatch, table: usize, rows: &[i64]) -> Option<TableSummary> {
    let rows_of = |wanted: plan::Counted| {
        batch
            .counted
            .iter()
            .position(|c| *c == wanted)
            .and_then(|i| rows.get(i).copied())
    };
    let upserted = rows_of(plan::Counted::Upserted { table })?;
    let updated = rows_of(plan::Counted::Replaced { table }).unwrap_or(0);
    let deleted = rows_of(plan::Counted::Deleted { table }).unwrap_or(0);
    Some(TableSummary {
        inserted: upserted - updated,
        updated,
        deleted,
        ..TableSummary::default()
    })
}

/// What a merge run did, for the one-line summary.
#[derive(Debug, Clone, Default)]
pub struct MergeSummary {
    pub tables: Vec<TableSummary>,
    pub batches: usize,
    pub duration: Duration,
}

impl fmt::Display for MergeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tables.is_empty() {
            return write!(
                f,
                "merge ok: nothing new ({:.1} s)",
                self.duration.as_secs_f64()
            );
        }
        let per_table: Vec<String> = self
            .tables
            .iter()
            .map(|t| {
                format!(
                    "{}: {} events, {} inserted, {} updated, {} deleted",
                    t.table, t.events, t.inserted, t.updated, t.deleted
                )
            })
            .collect();
        write!(
            f,
            "merge ok in {:.1} s ({} batch{}): {}",
            self.duration.as_secs_f64(),
            self.batches,
            if self.batches == 1 { "" } else { "es" },
            per_table.join("; ")
        )
    }
}

/// Refreshes the events view and merges every table once. With `print`,
/// prints the SQL instead (every table assumed to have inserts, updates and
/// truncates pending) and runs nothing. Stops with
/// [`SchedulerError::DataLoss`] when the previous refresh is older than the
/// stream's retention, unless `accept_data_loss`.
pub async fn merge_once(
    config: &Config,
    print: bool,
    accept_data_loss: bool,
    shutdown: Shutdown,
) -> Result<MergeSummary, SchedulerError> {
    let started = Instant::now();
    let redshift = config
        .redshift
        .as_ref()
        .ok_or(SchedulerError::NoRedshiftConfig)?;
    let objects = Objects::new(config, redshift);
    // Shapes come from Redshift (the stream), never from the source.
    let api = DataApi::connect(redshift, shutdown).await;
    if print {
        return print_run(
            &objects,
            shapes::mirror_tables(config, &objects, &api, read_mirror_tables(config)).await?,
        );
    }
    let holder = lease_holder_id();
    let lease_seconds = redshift.statement_timeout_secs * 2 + 300;
    let (acquire, holder_query, release) =
        plan::lease_statements(&objects, &holder, lease_seconds)?;
    let mut row = take_lease(&api, &acquire, &holder_query).await?;
    let current = row.text("holder");
    if let Some(stale) = current.filter(|c| *c != holder && holder_is_gone(c)) {
        tracing::warn!(
            holder = %stale,
            "the merge lease is held by a scheduler of this host that no longer runs (killed?): taking it over"
        );
        api.execute(&plan::lease_break_statement(&objects, &stale)?)
            .await?;
        row = take_lease(&api, &acquire, &holder_query).await?;
    }
    if row.text("holder").as_deref() != Some(holder.as_str()) {
        // Two schedulers may both have inserted a lease row at once (the
        // first by name wins): the one backing off removes its own row, or
        // it would block every later run until it expires.
        if let Err(error) = api.execute(&release).await {
            tracing::warn!(%error, "could not remove this run's losing lease row; it expires by itself");
        }
    }
    match row.text("holder") {
        Some(current) if current == holder => {}
        Some(current) => {
            return Err(SchedulerError::LeaseHeld {
                holder: current,
                until: row.text("expires_at").unwrap_or_default(),
            });
        }
        None => {
            return Err(SchedulerError::LeaseHeld {
                holder: "(unknown)".to_owned(),
                until: String::new(),
            })
        }
    }
    let (last_merged_at, now) = (row.text("last_merged_at"), row.text("now"));
    warn_if_near_retention(redshift, last_merged_at.as_deref(), now.as_deref());
    let retention = Retention {
        hours: redshift.retention_hours,
        accept_loss: accept_data_loss,
    };
    let outcome = run_locked(&api, &objects, config, retention, started).await;
    record_status(&api, &objects, &outcome).await;
    if let Err(error) = api.execute(&release).await {
        tracing::warn!(%error, "could not release the merge lease; it expires by itself");
    }
    outcome
}

/// `merge --once --print`: the SQL of a run with every table assumed to
/// have inserts, updates and truncates pending.
fn print_run(objects: &Objects, tables: Vec<MirrorTable>) -> Result<MergeSummary, SchedulerError> {
    let everything = Pending {
        events: 1,
        truncates: 1,
        updates: 1,
    };
    let all: Vec<(MirrorTable, Pending)> = tables.into_iter().map(|t| (t, everything)).collect();
    println!("{};\n", plan::refresh_statement(objects)?);
    for (i, batch) in plan::merge_batches(objects, &all)?.iter().enumerate() {
        println!("-- batch {} (one transaction)", i + 1);
        for statement in &batch.statements {
            println!("{statement};\n");
        }
    }
    Ok(MergeSummary::default())
}

/// Writes the run's outcome for `kinesync status`; a failure to write it
/// only warns (the outcome itself is already decided).
async fn record_status(
    api: &DataApi,
    objects: &Objects,
    outcome: &Result<MergeSummary, SchedulerError>,
) {
    let (result, detail) = match outcome {
        Ok(summary) => ("ok", summary.to_string()),
        Err(error) => ("failed", error.to_string()),
    };
    let statements = match plan::record_status_statements(objects, result, &detail) {
        Ok(statements) => statements,
        Err(error) => {
            tracing::warn!(%error, "could not build the merge status statements");
            return;
        }
    };
    if let Err(error) = api.batch(&statements).await {
        tracing::warn!(%error, "could not record the merge outcome for `kinesync status` (run `kinesync setup` to create its table)");
    }
}

/// Runs the lease statements; returns the holder row (holder, expiry,
/// last merge, now).
async fn take_lease(
    api: &DataApi,
    acquire: &[String],
    holder_query: &str,
) -> Result<Row, SchedulerError> {
    api.batch(acquire).await?;
    let rows = api.query(holder_query).await?;
    Ok(rows.first().cloned().unwrap_or_default())
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

/// Records not refreshed within the stream's retention are gone for good:
/// say so loudly when the last merge is getting old.
fn warn_if_near_retention(
    redshift: &crate::config::RedshiftConfig,
    last_merge: Option<&str>,
    now: Option<&str>,
) {
    let parse = crate::redshift::parse_timestamp;
    let (Some(last), Some(now)) = (last_merge.and_then(parse), now.and_then(parse)) else {
        return;
    };
    let age_secs = (now - last).num_seconds();
    let limit =
        (redshift.retention_hours as f64 * 3600.0 * redshift.retention_warn_fraction) as i64;
    if age_secs > limit {
        tracing::error!(
            last_merge = %last,
            age_hours = age_secs / 3600,
            retention_hours = redshift.retention_hours,
            "the last successful merge is older than {:.0}% of the stream's retention: records older than the retention are lost for good; check that the merge runs",
            redshift.retention_warn_fraction * 100.0
        );
    }
}

/// What the retention check needs.
#[derive(Debug, Clone, Copy)]
struct Retention {
    hours: u64,
    accept_loss: bool,
}

/// `Some((from, to))` when records that arrived after the previous refresh
/// at `previous` and before `now - retention_hours` have expired unread.
/// Times are Redshift's text timestamps (UTC).
fn expired_window(previous: &str, now: &str, retention_hours: u64) -> Option<(String, String)> {
    let parse = crate::redshift::parse_timestamp;
    let (previous, now) = (parse(previous)?, parse(now)?);
    let retention = chrono::Duration::hours(i64::try_from(retention_hours).ok()?);
    let horizon = now - retention;
    (horizon > previous).then(|| {
        let show = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
        (show(previous), show(horizon))
    })
}

/// Before a refresh: stop if records may have expired since the previous
/// one. Returns the refresh's start time (to record once it succeeded).
async fn check_retention(
    api: &DataApi,
    objects: &Objects,
    tables: &[String],
    retention: Retention,
) -> Result<Option<String>, SchedulerError> {
    let rows = api.query(&plan::last_refresh_statement(objects)?).await?;
    let row = rows.first().cloned().unwrap_or_default();
    let (previous, now) = (row.text("previous"), row.text("now"));
    if let (Some(previous), Some(now)) = (&previous, &now) {
        if let Some((from, to)) = expired_window(previous, now, retention.hours) {
            if !retention.accept_loss {
                return Err(SchedulerError::DataLoss {
                    from,
                    to,
                    retention_hours: retention.hours,
                    tables: tables.join(", "),
                });
            }
            tracing::warn!(%from, %to, "merging despite records that may have expired unread (--accept-data-loss)");
        }
    }
    Ok(now)
}

/// Each table with its pending event counts (merge/pending.sql); events
/// of tables not configured are left unmerged, with a warning.
async fn pending_work(
    api: &DataApi,
    objects: &Objects,
    tables: Vec<MirrorTable>,
) -> Result<Vec<(MirrorTable, Pending)>, SchedulerError> {
    let rows = api.query(&plan::pending_statement(objects)?).await?;
    let rows: Vec<(String, String, String, u64)> = rows
        .iter()
        .filter_map(|row| {
            Some((
                row.text("source_schema")?,
                row.text("source_table")?,
                row.text("op")?,
                u64::try_from(row.get("events")?.as_i64()?).ok()?,
            ))
        })
        .collect();
    let pending = plan::pending_by_table(&rows);
    let work: Vec<(MirrorTable, Pending)> = tables
        .into_iter()
        .map(|t| {
            let p = pending.get(&t.source.name).copied().unwrap_or_default();
            (t, p)
        })
        .collect();
    let unknown: Vec<String> = pending
        .keys()
        .filter(|name| !work.iter().any(|(m, _)| &m.source.name == *name))
        .map(TableName::plain)
        .collect();
    if !unknown.is_empty() {
        tracing::warn!(tables = ?unknown, "events for tables not in source.tables are left unmerged");
    }
    Ok(work)
}

async fn run_locked(
    api: &DataApi,
    objects: &Objects,
    config: &Config,
    retention: Retention,
    started: Instant,
) -> Result<MergeSummary, SchedulerError> {
    let refresh_started = check_retention(api, objects, &config.source.tables, retention).await?;
    api.execute(&plan::refresh_statement(objects)?)
        .await
        .map_err(SchedulerError::Refresh)?;
    if let Some(at) = refresh_started {
        api.batch(&plan::refresh_done_statements(objects, &at)?)
            .await?;
    }
    // After the refresh: the shape records of the events this run merges.
    let tables = shapes::mirror_tables(config, objects, api, read_mirror_tables(config)).await?;
    // New source tables and columns reach the mirror before their events.
    let mut existing: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for row in api.query(&plan::mirror_columns_statement(objects)?).await? {
        let text = |column: &str| row.text(column);
        if let (Some(table), Some(column), Some(data_type)) =
            (text("table_name"), text("column_name"), text("data_type"))
        {
            // As Redshift stores it, like MirrorTable::name (ASCII folded).
            existing.entry(table).or_default().push((column, data_type));
        }
    }
    let changes = plan::schema_change_statements(objects, &tables, &existing)?;
    for chunk in changes.chunks(plan::MAX_STATEMENTS_PER_BATCH) {
        tracing::info!(
            statements = chunk.len(),
            "bringing mirror tables up to the source schema"
        );
        api.batch(chunk).await?;
    }
    shapes::widen_columns(api, objects, &tables).await?;

    let work = pending_work(api, objects, tables).await?;
    let mut batches = plan::merge_batches(objects, &work)?;
    shapes::store_in_last_batch(objects, &mut batches)?;
    let mut summary = MergeSummary {
        batches: batches.len(),
        ..MergeSummary::default()
    };
    for batch in &batches {
        let outcome = api
            .batch(&batch.statements)
            .await
            .map_err(SchedulerError::merge)?;
        for (table, (mirror, p)) in work.iter().enumerate() {
            if p.events == 0 {
                continue;
            }
            if let Some(counts) = table_counts(batch, table, &outcome.result_rows) {
                summary.tables.push(TableSummary {
                    table: mirror.source.qualified_name(),
                    events: p.events,
                    ..counts
                });
            }
        }
    }
    summary.duration = started.elapsed();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::expired_window;

    #[test]
    fn records_expire_only_when_the_previous_refresh_is_older_than_the_retention() {
        assert_eq!(
            expired_window("2024-01-01 00:00:00", "2024-01-02 00:00:00", 24),
            None
        );
        assert_eq!(
            expired_window("2024-01-01 00:00:00.5", "2024-01-02 06:00:00", 24),
            Some((
                "2024-01-01 00:00:00".to_owned(),
                "2024-01-01 06:00:00".to_owned()
            ))
        );
        assert_eq!(expired_window("garbage", "2024-01-02 00:00:00", 24), None);
    }

    #[test]
    fn a_lease_holder_elsewhere_or_alive_is_not_gone() {
        use super::holder_is_gone;
        assert!(!holder_is_gone("some-other-host:1:abcd"));
        let me = super::lease_holder_id();
        assert!(!holder_is_gone(&me), "this process is alive");
        assert!(!holder_is_gone("no-pid-here"));
    }
}
