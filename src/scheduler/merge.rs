//! One merge run: refresh, count what is pending, merge in batches.

use std::fmt;
use std::time::{Duration, Instant};

use crate::config::Config;
use std::collections::BTreeMap;

use crate::redshift::{DataApi, Row};
use crate::shutdown::Shutdown;
use crate::sql::TableName;

use super::lease::{Lease, Renewal};
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
///
/// Requests: the lease batch (taking the lease, reading the times and the
/// mirror's columns with their widths), the refresh, one batch recording
/// the refresh and reading what is pending and the table shapes
/// (scheduler/shapes.rs), the merge batches (each fenced by the lease, up
/// to 40 tables each through the executor procedure, plan/executor.rs, and
/// read back for their counts), and one batch recording the outcome and
/// releasing the lease.
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
            shapes::mirror_tables(config, &objects, &api, read_mirror_tables(config))
                .await?
                .tables,
        );
    }
    let lease = Lease::new(&objects, redshift.lease_secs)?;
    let taken = lease
        .take(&api, &objects, &[plan::mirror_columns_statement(&objects)?])
        .await?;
    let row = &taken.holder_row;
    let (last_merged_at, now) = (row.text("last_merged_at"), row.text("now"));
    warn_if_near_retention(redshift, last_merged_at.as_deref(), now.as_deref());
    let run = Run {
        api: &api,
        objects: &objects,
        holder: lease.holder(),
        started,
    };
    let retention = Retention {
        hours: redshift.retention_hours,
        accept_loss: accept_data_loss,
    };
    let renewal = lease.renew_in_background(&api);
    let outcome = match check_retention(row, &config.source.tables, retention) {
        Ok(()) => {
            let columns = taken.extra.first().map(Vec::as_slice).unwrap_or_default();
            run_locked(&run, config, columns, now, &renewal).await
        }
        Err(error) => Err(error),
    };
    renewal.stop().await;
    finish(&run, &lease, &outcome).await;
    outcome
}

/// What every step of a run under the lease needs.
struct Run<'a> {
    api: &'a DataApi,
    objects: &'a Objects,
    holder: &'a str,
    started: Instant,
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
    let holder = "(this run's lease holder)";
    println!("{};\n", plan::executor_statement(objects)?);
    for (i, batch) in plan::merge_batches(objects, holder, &all)?
        .iter()
        .enumerate()
    {
        println!(
            "-- batch {} (one transaction; after the SETs, the statements up to the last go {} at a time through CALL {})",
            i + 1,
            plan::MAX_ARGUMENTS,
            objects.executor
        );
        for statement in batch.statements() {
            println!("{statement};\n");
        }
    }
    Ok(MergeSummary::default())
}

/// Writes the run's outcome for `kinesync status` and releases the lease,
/// in one batch; a failure only warns (the outcome is already decided, and
/// the lease expires by itself).
async fn finish(run: &Run<'_>, lease: &Lease, outcome: &Result<MergeSummary, SchedulerError>) {
    let (result, detail) = match outcome {
        Ok(summary) => ("ok", summary.to_string()),
        Err(error) => ("failed", error.to_string()),
    };
    let mut statements = match plan::record_status_statements(run.objects, result, &detail) {
        Ok(statements) => statements,
        Err(error) => {
            tracing::warn!(%error, "could not build the merge status statements");
            Vec::new()
        }
    };
    statements.push(lease.release_statement().to_owned());
    if let Err(error) = run.api.batch(&statements).await {
        tracing::warn!(%error, "could not record the merge outcome for `kinesync status` (run `kinesync setup` to create its table) nor release the merge lease (it expires by itself)");
    }
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
/// one (`previous` and `now` of the lease batch's holder row).
fn check_retention(
    row: &Row,
    tables: &[String],
    retention: Retention,
) -> Result<(), SchedulerError> {
    let (Some(previous), Some(now)) = (row.text("previous"), row.text("now")) else {
        return Ok(());
    };
    let Some((from, to)) = expired_window(&previous, &now, retention.hours) else {
        return Ok(());
    };
    if !retention.accept_loss {
        return Err(SchedulerError::DataLoss {
            from,
            to,
            retention_hours: retention.hours,
            tables: tables.join(", "),
        });
    }
    tracing::warn!(%from, %to, "merging despite records that may have expired unread (--accept-data-loss)");
    Ok(())
}

/// The mirror's tables and columns as Redshift stores them (merge/mirror_columns.sql).
fn existing_columns(rows: &[Row]) -> BTreeMap<String, Vec<(String, String)>> {
    let mut existing: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for row in rows {
        let text = |column: &str| row.text(column);
        if let (Some(table), Some(column), Some(data_type)) =
            (text("table_name"), text("column_name"), text("data_type"))
        {
            // As Redshift stores it, like MirrorTable::name (ASCII folded).
            existing.entry(table).or_default().push((column, data_type));
        }
    }
    existing
}

/// Each table with its pending event counts (merge/pending.sql); events
/// of tables not configured are left unmerged, with a warning.
fn pending_work(rows: &[Row], tables: Vec<MirrorTable>) -> Vec<(MirrorTable, Pending)> {
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
    work
}

/// Refresh -> pending and shapes -> schema changes and widenings -> merge
/// batches (the last storing the run's shapes), under the lease.
async fn run_locked(
    run: &Run<'_>,
    config: &Config,
    columns: &[Row],
    refresh_started: Option<String>,
    renewal: &Renewal,
) -> Result<MergeSummary, SchedulerError> {
    let (api, objects) = (run.api, run.objects);
    api.execute(&plan::refresh_statement(objects)?)
        .await
        .map_err(SchedulerError::Refresh)?;
    // Recording the refresh and reading what is pending: one batch.
    let mut statements = match &refresh_started {
        Some(at) => plan::refresh_done_statements(objects, at)?,
        None => Vec::new(),
    };
    // After the refresh, in the same batch: the shape records of the events
    // this run merges.
    statements.push(plan::pending_statement(objects)?);
    statements.push(shapes::shapes_statement(objects)?);
    let n = statements.len();
    let results = api
        .batch_with_results(&statements, &[n - 2, n - 1])
        .await
        .map_err(|error| shapes::shapes_query_failed(objects, error))?;
    let rows_of = |i: usize| results.get(i).map(Vec::as_slice).unwrap_or_default();
    let run_shapes =
        shapes::mirror_tables_from(config, objects, rows_of(1), read_mirror_tables(config)).await?;
    let tables = run_shapes.tables;
    let backfill = shapes::backfill_statements(objects, &tables, &run_shapes.backfills)?;

    // Renamed columns, then new source tables and columns, reach the mirror
    // before their events.
    let (renamed, existing) = shapes::rename_statements(
        objects,
        &tables,
        &run_shapes.renames,
        &existing_columns(columns),
    )?;
    // Each table's renames in one batch (all or nothing), then the rest.
    for batch in renamed {
        api.batch(&batch).await?;
    }
    let changes = plan::schema_change_statements(objects, &tables, &existing)?;
    for chunk in changes.chunks(plan::MAX_STATEMENTS_PER_BATCH) {
        tracing::info!(
            statements = chunk.len(),
            "bringing mirror tables up to the source schema"
        );
        api.batch(chunk).await?;
    }
    shapes::widen_columns(api, objects, &tables, columns).await?;

    let work = pending_work(rows_of(0), tables);
    let mut batches = plan::merge_batches(objects, run.holder, &work)?;
    shapes::store_in_last_batch(objects, run.holder, &mut batches, backfill)?;
    let mut summary = MergeSummary {
        batches: batches.len(),
        ..MergeSummary::default()
    };
    summary.tables = merge_in_batches(api, objects, &batches, &work, renewal).await?;
    summary.duration = run.started.elapsed();
    Ok(summary)
}

/// Runs the merge batches in order; the tables they merged, with their
/// row counts.
async fn merge_in_batches(
    api: &DataApi,
    objects: &Objects,
    batches: &[plan::MergeBatch],
    work: &[(MirrorTable, Pending)],
    renewal: &Renewal,
) -> Result<Vec<TableSummary>, SchedulerError> {
    let mut tables = Vec::new();
    // Time per statement of the batch before, to poll the next one when it
    // should be done (see DataApi::batch_expecting_results).
    let mut per_statement: Option<Duration> = None;
    for batch in batches {
        if renewal.lost() {
            return Err(SchedulerError::LeaseLost);
        }
        let n = u32::try_from(batch.statements().count()).unwrap_or(u32::MAX);
        let sent = Instant::now();
        let counts = run_batch(api, objects, batch, per_statement.map(|t| t * n)).await?;
        per_statement = Some(sent.elapsed() / n.max(1));
        tables.extend(batch_summary(&counts, work));
    }
    Ok(tables)
}

/// One merge batch; the rows of its counts query. A mirror schema set up
/// before the executor procedure existed gets it here, once.
async fn run_batch(
    api: &DataApi,
    objects: &Objects,
    batch: &plan::MergeBatch,
    expected: Option<Duration>,
) -> Result<Vec<Row>, SchedulerError> {
    let wire = batch.wire(objects);
    let counts = [wire.len() - 1];
    let outcome = match api.batch_expecting_results(&wire, expected, &counts).await {
        Err(error) if plan::executor_missing(&error.to_string()) => {
            tracing::info!(procedure = %objects.executor, "creating the merge's executor procedure (kinesync setup creates it; this mirror schema predates it)");
            api.execute(&plan::executor_statement(objects)?).await?;
            api.batch_expecting_results(&wire, expected, &counts).await
        }
        outcome => outcome,
    };
    let mut rows = outcome.map_err(SchedulerError::merge)?;
    Ok(rows.pop().unwrap_or_default())
}

/// The tables merged by a batch, from its counts query
/// (merge/counts.sql), named and with their events from `work`.
fn batch_summary(counts: &[Row], work: &[(MirrorTable, Pending)]) -> Vec<TableSummary> {
    counts
        .iter()
        .filter_map(|row| {
            let mirror = row.text("mirror_table")?;
            let (table, pending) = work.iter().find(|(t, _)| t.name == mirror)?;
            let count = |column: &str| row.get(column).and_then(|v| v.as_i64()).unwrap_or(0);
            let (replaced, upserted) = (count("replaced"), count("upserted"));
            Some(TableSummary {
                table: table.source.qualified_name(),
                events: pending.events,
                inserted: upserted - replaced,
                updated: replaced,
                deleted: count("deleted"),
            })
        })
        .collect()
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
}
