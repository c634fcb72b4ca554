//! `kinesync teardown`: removes a pipeline. On the source, the replication
//! slot (which otherwise holds WAL until the disk fills) and the
//! publication (with the snapshot marker kept in its comment); with
//! `--redshift`, also this pipeline's Redshift objects.
//!
//! Order, so that a teardown cut anywhere can simply run again: (1) refuse
//! while a process streams from the slot (a running producer would recreate
//! what is dropped); (2) with `--redshift`, the streaming view, each mirror
//! table with its tombstones, truncate state and stored shape
//! (`kinesync_shapes`), and this pipeline's bookkeeping rows; the shared
//! bookkeeping tables (the shapes table among them) and the external schema
//! only when no other pipeline's checkpoint is left in the mirror schema,
//! and the mirror schema only when it is empty (`RESTRICT`); (3) the slot,
//! then the publication, then the slot's rows of the resync request table
//! (`source.resync_table`; the table stays). Every statement is idempotent
//! (`IF EXISTS`).
//!
//! `--table T` (repeatable) drops only the mirror objects (and the stored
//! shape) of tables already removed from `source.tables` (the producer stops streaming a
//! removed table at its next start): the slot, the publication and every
//! other mirror stay.
//!
//! Nothing runs without confirmation: `--yes`, or the slot's name typed on
//! a terminal. `--print` shows the statements and runs nothing.

use std::io::{BufRead, IsTerminal, Write};

use tokio_postgres::Client;

use crate::config::Config;
use crate::postgres::{pg_message, redact_url};
use crate::redshift::{DataApi, RedshiftError};
use crate::scheduler::plan::{mirror_table_name, tombstone_table_name, Objects};
use crate::scheduler::{read_mirror_tables, SchedulerError, SHAPES_TABLE};
use crate::shutdown::Shutdown;
use crate::source::resync;
use crate::sql::{self, parse_table_entry, qualified, quote_ident, quote_literal, SqlError};
use crate::sql::{TableEntryError, TableName, Values};

/// What `teardown` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct TeardownOptions {
    /// `--table`: only these tables' mirror objects (no longer configured).
    pub tables: Vec<String>,
    /// Show the statements, run nothing.
    pub print: bool,
    /// Drop the Redshift objects too.
    pub redshift: bool,
    /// `--yes`: confirmed on the command line.
    pub confirmed: bool,
}

/// Why a teardown did not (fully) happen.
#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    #[error("teardown drops the replication slot {slot} and the publication {publication}{redshift}, which cannot be undone: pass --yes to confirm (or --print to see the statements)")]
    NotConfirmed {
        slot: String,
        publication: String,
        redshift: &'static str,
    },
    #[error("teardown not confirmed (the slot name typed did not match {0}); nothing was dropped")]
    Declined(String),
    #[error("the replication slot {slot} is in use by process {pid} (a running kinesync produce?): stop it first, then run teardown again; nothing was dropped")]
    SlotActive { slot: String, pid: i32 },
    #[error("cannot connect to the source database: {0} (check source.url)")]
    SourceConnect(String),
    #[error("{what} on the source failed: {detail}")]
    Source { what: String, detail: String },
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    #[error(transparent)]
    Redshift(#[from] RedshiftError),
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(
        "the [redshift] section is missing from the configuration: teardown --redshift and --table need it"
    )]
    NoRedshiftConfig,
    #[error("--table {0}: {1}")]
    BadTable(String, TableEntryError),
    #[error("--table {0}: name one table (schema.table), not a schema.* pattern")]
    Pattern(String),
    #[error("--table {0}: the table is still in source.tables (or a schema.* entry matches it), so the producer streams it and the merge would create its mirror again: remove it from source.tables and restart the producer first")]
    StillConfigured(String),
}

/// What a teardown did, one line each.
#[derive(Debug, Default)]
pub struct TeardownReport {
    pub lines: Vec<String>,
}

/// Runs (or prints) the teardown of the pipeline `config` describes.
pub async fn teardown(
    config: &Config,
    options: TeardownOptions,
    shutdown: Shutdown,
) -> Result<TeardownReport, TeardownError> {
    let source = &config.source;
    let redshift = match (
        options.redshift || !options.tables.is_empty(),
        &config.redshift,
    ) {
        (false, _) => None,
        (true, Some(redshift)) => Some(redshift),
        (true, None) => return Err(TeardownError::NoRedshiftConfig),
    };
    if !options.tables.is_empty() {
        return teardown_tables(config, &options, shutdown).await;
    }
    let client = crate::catalog::connect(&source.url).await.map_err(|e| {
        TeardownError::SourceConnect(format!("{}: {}", redact_url(&source.url), e.describe()))
    })?;
    let mirrors: Vec<TableName> = match redshift {
        Some(_) => read_mirror_tables(config)
            .await?
            .into_iter()
            .map(|t| t.source.name)
            .collect(),
        None => Vec::new(),
    };
    let objects = redshift.map(|r| Objects::new(config, r));
    let plan = objects
        .as_ref()
        .map(|o| RedshiftPlan::new(o, &mirrors))
        .transpose()?;
    if options.print {
        return Ok(print(config, plan.as_ref()));
    }
    let slot_pid = slot_in_use(&client, &source.slot).await?;
    if let Some(pid) = slot_pid.flatten() {
        return Err(TeardownError::SlotActive {
            slot: quote_ident(&source.slot),
            pid,
        });
    }
    confirm(config, &options)?;
    let mut report = TeardownReport::default();
    if let (Some(plan), Some(redshift)) = (&plan, redshift) {
        let api = DataApi::connect(redshift, shutdown).await;
        plan.run(&api, &mut report).await?;
    }
    drop_source_objects(&client, config, slot_pid.is_some(), &mut report).await?;
    Ok(report)
}

/// `--table`: the mirror objects of tables no longer configured, and
/// nothing else.
async fn teardown_tables(
    config: &Config,
    options: &TeardownOptions,
    shutdown: Shutdown,
) -> Result<TeardownReport, TeardownError> {
    let redshift = config
        .redshift
        .as_ref()
        .ok_or(TeardownError::NoRedshiftConfig)?;
    let mut mirrors = Vec::new();
    for entry in &options.tables {
        let parsed =
            parse_table_entry(entry).map_err(|e| TeardownError::BadTable(entry.clone(), e))?;
        let name = TableName::new(&parsed.schema, parsed.table.as_deref().unwrap_or("*"));
        let configured = config.source.tables.iter().any(|t| {
            parse_table_entry(t).is_ok_and(|c| {
                c.schema == name.schema && c.table.as_ref().is_none_or(|t| *t == name.name)
            })
        });
        if parsed.table.is_none() {
            return Err(TeardownError::Pattern(entry.clone()));
        }
        if configured {
            return Err(TeardownError::StillConfigured(entry.clone()));
        }
        mirrors.push(name);
    }
    let plan = RedshiftPlan::new(&Objects::new(config, redshift), &mirrors)?;
    let mut report = TeardownReport::default();
    if options.print {
        plan.print_tables(&mut report.lines);
        return Ok(report);
    }
    confirm(config, options)?;
    let api = DataApi::connect(redshift, shutdown).await;
    plan.run_tables(&api, &mut report).await?;
    Ok(report)
}

/// `None`: no such slot; `Some(pid)`: it exists, in use by `pid` if any.
async fn slot_in_use(client: &Client, slot: &str) -> Result<Option<Option<i32>>, TeardownError> {
    let row = client
        .query_opt(&sql::TEARDOWN_SOURCE_SLOT.plain(), &[&slot])
        .await
        .map_err(|e| source_error("reading pg_replication_slots", &e))?;
    Ok(row.map(|r| {
        let active: bool = r.get("active");
        active
            .then(|| r.get::<_, Option<i32>>("active_pid"))
            .flatten()
    }))
}

/// `--yes`, or the slot's name typed on a terminal.
fn confirm(config: &Config, options: &TeardownOptions) -> Result<(), TeardownError> {
    if options.confirmed {
        return Ok(());
    }
    let slot = &config.source.slot;
    if !std::io::stdin().is_terminal() {
        return Err(TeardownError::NotConfirmed {
            slot: quote_ident(slot),
            publication: quote_ident(&config.source.publication),
            redshift: if options.redshift {
                " and this pipeline's Redshift objects (mirror tables included)"
            } else {
                ""
            },
        });
    }
    eprint!(
        "This drops slot {} and publication {} on {}{}. Type the slot name to confirm: ",
        quote_ident(slot),
        quote_ident(&config.source.publication),
        redact_url(&config.source.url),
        if options.redshift {
            ", and this pipeline's Redshift objects"
        } else {
            ""
        }
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    match answer.trim() == slot {
        true => Ok(()),
        false => Err(TeardownError::Declined(quote_ident(slot))),
    }
}

/// The slot (if it exists), then the publication.
async fn drop_source_objects(
    client: &Client,
    config: &Config,
    slot_exists: bool,
    report: &mut TeardownReport,
) -> Result<(), TeardownError> {
    let source = &config.source;
    if slot_exists {
        client
            .execute(&sql::TEARDOWN_DROP_SLOT.plain(), &[&source.slot])
            .await
            .map_err(|e| source_error("dropping the replication slot", &e))?;
        report.lines.push(format!(
            "dropped replication slot {}",
            quote_ident(&source.slot)
        ));
    } else {
        report.lines.push(format!(
            "replication slot {} did not exist",
            quote_ident(&source.slot)
        ));
    }
    client
        .batch_execute(&drop_publication(config)?)
        .await
        .map_err(|e| source_error("dropping the publication", &e))?;
    report.lines.push(format!(
        "dropped publication {} (if it existed)",
        quote_ident(&source.publication)
    ));
    drop_resync_requests(client, config, report).await
}

/// This slot's rows of the resync request table, when it exists.
async fn drop_resync_requests(
    client: &Client,
    config: &Config,
    report: &mut TeardownReport,
) -> Result<(), TeardownError> {
    let table = config.source.resync_table();
    let exists = resync::state_table_exists(client, &table)
        .await
        .map_err(|e| TeardownError::Source {
            what: "deleting the resync requests".to_owned(),
            detail: e.to_string(),
        })?;
    if !exists {
        return Ok(());
    }
    let deleted = client
        .execute(&resync_rows(config), &[&config.source.slot])
        .await
        .map_err(|e| source_error("deleting the resync requests", &e))?;
    report.lines.push(format!(
        "deleted {deleted} resync request(s) of slot {} from {table}",
        quote_ident(&config.source.slot)
    ));
    Ok(())
}

fn resync_rows(config: &Config) -> String {
    resync::render(sql::TEARDOWN_RESYNC_ROWS, &config.source.resync_table())
}

fn drop_publication(config: &Config) -> Result<String, SqlError> {
    sql::TEARDOWN_DROP_PUBLICATION.render_one(&Values::from([(
        "publication",
        quote_ident(&config.source.publication),
    )]))
}

/// `--print`: the statements, in the order they would run.
fn print(config: &Config, plan: Option<&RedshiftPlan>) -> TeardownReport {
    let mut lines = Vec::new();
    if let Some(plan) = plan {
        plan.print(&mut lines);
    }
    lines.push("-- source (PostgreSQL)".to_owned());
    lines.push(format!(
        "SELECT pg_drop_replication_slot({});",
        quote_literal(&config.source.slot)
    ));
    lines.push(format!("{};", drop_publication(config).unwrap_or_default()));
    lines.push(format!(
        "{}; -- $1 = {}, if the table exists",
        resync_rows(config),
        quote_literal(&config.source.slot)
    ));
    TeardownReport { lines }
}

/// The Redshift statements of a teardown.
#[derive(Debug)]
struct RedshiftPlan {
    /// What exists (one SELECT: the mirror schema, its bookkeeping).
    probe: String,
    /// The streaming view.
    view: Vec<String>,
    /// The mirror and tombstone tables.
    tables: Vec<String>,
    /// Their truncate state.
    table_rows: Vec<String>,
    /// Their stored shapes (when the shapes table exists).
    shapes: Vec<String>,
    /// Their truncate state and this pipeline's bookkeeping rows (when the
    /// bookkeeping tables exist).
    rows: Vec<String>,
    /// Pipelines left after `rows` (one SELECT).
    others: String,
    /// The shared bookkeeping tables and the external schema.
    shared: Vec<String>,
    /// The merge's executor procedure (shared too).
    executor: String,
    /// The mirror schema, if empty.
    schema: String,
}

impl RedshiftPlan {
    /// The plan for the mirror tables of the source tables `mirrors`.
    fn new(objects: &Objects, mirrors: &[TableName]) -> Result<RedshiftPlan, SqlError> {
        let mut values = objects.values();
        values.insert(
            "mirror_schema_literal",
            quote_literal(&objects.mirror_schema_name),
        );
        values.insert(
            "shapes",
            qualified(&objects.mirror_schema_name, SHAPES_TABLE),
        );
        let (mut tables, mut table_rows, mut shapes) = (Vec::new(), Vec::new(), Vec::new());
        for source in mirrors {
            let mirror = &mirror_table_name(source);
            let mut values = values.clone();
            values.insert("source_schema_literal", quote_literal(&source.schema));
            values.insert("source_table_literal", quote_literal(&source.name));
            values.insert(
                "mirror_table",
                qualified(&objects.mirror_schema_name, mirror),
            );
            values.insert("mirror_table_literal", quote_literal(mirror));
            values.insert(
                "tombstone_table",
                qualified(&objects.mirror_schema_name, &tombstone_table_name(mirror)),
            );
            tables.extend(sql::TEARDOWN_REDSHIFT_TABLE.render(&values)?);
            table_rows.extend(sql::TEARDOWN_REDSHIFT_TABLE_STATE.render(&values)?);
            shapes.extend(sql::TEARDOWN_REDSHIFT_TABLE_SHAPE.render(&values)?);
        }
        let mut rows = table_rows.clone();
        rows.extend(sql::TEARDOWN_REDSHIFT_ROWS.render(&values)?);
        Ok(RedshiftPlan {
            probe: sql::TEARDOWN_REDSHIFT_PROBE.render_one(&values)?,
            view: sql::TEARDOWN_REDSHIFT_PIPELINE.render(&values)?,
            tables,
            table_rows,
            shapes,
            rows,
            others: sql::TEARDOWN_REDSHIFT_OTHERS.render_one(&values)?,
            shared: sql::TEARDOWN_REDSHIFT_SHARED.render(&values)?,
            executor: crate::scheduler::plan::drop_executor_statement(objects)?,
            schema: sql::TEARDOWN_REDSHIFT_SCHEMA.render_one(&values)?,
        })
    }

    /// `--print`'s lines.
    fn print(&self, lines: &mut Vec<String>) {
        let statements = |list: &[String]| list.iter().map(|s| format!("{s};")).collect::<Vec<_>>();
        lines.push("-- Redshift (Data API), when the mirror schema exists:".to_owned());
        lines.extend(statements(&self.view));
        lines.extend(statements(&self.tables));
        lines.push("-- when the shapes table exists:".to_owned());
        lines.extend(statements(&self.shapes));
        lines.push("-- when its bookkeeping tables exist:".to_owned());
        lines.extend(statements(&self.rows));
        lines.push("-- then, only when no other pipeline's checkpoint row is left:".to_owned());
        lines.extend(statements(&self.shared));
        lines.push(format!("{}; -- when it exists", self.executor));
        lines.push(format!(
            "{}; -- kept if it still holds other objects",
            self.schema
        ));
    }

    /// Runs the plan; a mirror schema that still holds other objects is
    /// kept (reported), not an error.
    async fn run(&self, api: &DataApi, report: &mut TeardownReport) -> Result<(), TeardownError> {
        let count = self.probe(api).await?;
        if count("schemas") == 0 {
            report
                .lines
                .push("no mirror schema in Redshift: nothing to drop there".to_owned());
            return Ok(());
        }
        for statement in self.view.iter().chain(&self.tables) {
            api.execute(statement).await?;
        }
        report.lines.push(format!(
            "dropped this pipeline's streaming view and its {} mirror and tombstone tables",
            self.tables.len()
        ));
        if count("shapes") > 0 {
            self.drop_shapes(api, report).await?;
        }
        if count("bookkeeping") > 0 && !self.drop_rows(api, report).await? {
            return Ok(());
        }
        match api.execute(&self.schema).await {
            Ok(_) => report.lines.push("dropped the mirror schema".to_owned()),
            Err(error) => report.lines.push(format!(
                "kept the mirror schema: it still holds objects kinesync did not create ({error})"
            )),
        }
        Ok(())
    }

    /// What exists: the probe's count of `name` ("schemas", "bookkeeping",
    /// "shapes").
    async fn probe(&self, api: &DataApi) -> Result<impl Fn(&str) -> i64, TeardownError> {
        let probe = api.query(&self.probe).await?;
        Ok(move |name: &str| {
            probe
                .first()
                .and_then(|row| row.get(name))
                .and_then(|value| value.as_i64())
                .unwrap_or(0)
        })
    }

    /// The tables' stored shapes.
    async fn drop_shapes(
        &self,
        api: &DataApi,
        report: &mut TeardownReport,
    ) -> Result<(), TeardownError> {
        for statement in &self.shapes {
            api.execute(statement).await?;
        }
        report.lines.push(format!(
            "removed the stored shapes of {} tables",
            self.shapes.len()
        ));
        Ok(())
    }

    /// `--table --print`'s lines.
    fn print_tables(&self, lines: &mut Vec<String>) {
        lines.push("-- Redshift (Data API):".to_owned());
        lines.extend(
            self.tables
                .iter()
                .chain(&self.table_rows)
                .map(|s| format!("{s};")),
        );
        lines.push("-- when the shapes table exists:".to_owned());
        lines.extend(self.shapes.iter().map(|s| format!("{s};")));
    }

    /// `--table`: the named mirrors, their tombstones, truncate state and
    /// stored shapes.
    async fn run_tables(
        &self,
        api: &DataApi,
        report: &mut TeardownReport,
    ) -> Result<(), TeardownError> {
        for statement in self.tables.iter().chain(&self.table_rows) {
            api.execute(statement).await?;
        }
        report.lines.push(format!(
            "dropped {} mirror and tombstone tables and their truncate state",
            self.tables.len()
        ));
        let count = self.probe(api).await?;
        if count("shapes") > 0 {
            self.drop_shapes(api, report).await?;
        }
        Ok(())
    }

    /// This pipeline's bookkeeping rows, then the shared objects unless
    /// another pipeline is left (then returns false).
    async fn drop_rows(
        &self,
        api: &DataApi,
        report: &mut TeardownReport,
    ) -> Result<bool, TeardownError> {
        for statement in &self.rows {
            api.execute(statement).await?;
        }
        let left = api.query(&self.others).await?;
        let pipelines = left
            .first()
            .and_then(|row| row.get("pipelines"))
            .and_then(|value| value.as_i64())
            .unwrap_or(0);
        if pipelines > 0 {
            report.lines.push(format!(
                "kept the bookkeeping tables, the external schema and the mirror schema: {pipelines} other pipeline(s) use them"
            ));
            return Ok(false);
        }
        for statement in &self.shared {
            api.execute(statement).await?;
        }
        match api.execute(&self.executor).await {
            Err(error) if !crate::scheduler::plan::executor_missing(&error.to_string()) => {
                return Err(error.into())
            }
            _ => {}
        }
        report.lines.push(
            "dropped the bookkeeping tables, the merge's executor procedure and the external schema"
                .to_owned(),
        );
        Ok(true)
    }
}

fn source_error(what: &str, error: &tokio_postgres::Error) -> TeardownError {
    TeardownError::Source {
        what: what.to_owned(),
        detail: pg_message(error),
    }
}
