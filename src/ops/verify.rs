//! `kinesync verify`: is each mirror table equal to its source table?
//!
//! Both sides hash every row in SQL, where the data lives, and send back only
//! small aggregates. A row's text is built column by column from
//! [`ColumnKind::canonical`] (the same value as text on both sides, with
//! the documented conversions applied) and each column's MD5, so long values
//! cannot overflow Redshift's VARCHAR and no separator can be forged. Rows
//! fall into 256 buckets by the MD5 of their key; per bucket each side
//! returns the row count and two sums of 32-bit slices of the rows' MD5s
//! (`sql/verify/*_buckets.sql`). Equal buckets are done with; for the
//! buckets that differ (if small enough) both sides list `(key, row MD5)` and
//! the difference names the keys.
//!
//! The source is read as of now and the mirror as of its last merge: a row
//! changed since then differs until the next merge. `verify` therefore also
//! reports the watermark and, per table, when its newest event arrived, so
//! a difference can be told from lag.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use tokio_postgres::Client;

use crate::config::{Config, RedshiftConfig};
use crate::postgres::redact_url;
use crate::redshift::{DataApi, RedshiftError, Value};
use crate::scheduler::mapping::Side;
use crate::scheduler::plan::{redshift_name, MirrorTable, Objects};
use crate::scheduler::{read_mirror_tables, SchedulerError};
use crate::shutdown::Shutdown;
use crate::sql::{self, quote_ident, SqlError, Template, Values};

/// Differing buckets with at most this many rows (on either side) are
/// listed row by row to name the keys that differ.
pub const MAX_ROWS_TO_LIST: u64 = 100_000;
/// At most this many differing keys are named per table.
pub const MAX_KEYS_REPORTED: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error("cannot read source table {table}: {message}")]
    Source { table: String, message: String },
    #[error("cannot read mirror table {table}: {source} (run `kinesync setup`, or `kinesync merge --once` which creates missing mirror tables)")]
    Mirror {
        table: String,
        source: RedshiftError,
    },
    #[error("cannot read the events view: {0} (run `kinesync setup`)")]
    EventsView(RedshiftError),
}

/// One table's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct TableVerdict {
    pub table: String,
    pub mirror: String,
    pub source_rows: u64,
    pub mirror_rows: u64,
    pub equal: bool,
    /// Key buckets (00..ff) whose rows differ.
    pub differing_buckets: Vec<String>,
    /// Keys present on the source only (at most [`MAX_KEYS_REPORTED`]).
    pub only_in_source: Vec<String>,
    /// Keys present in the mirror only.
    pub only_in_mirror: Vec<String>,
    /// Keys on both sides whose rows differ.
    pub different_rows: Vec<String>,
    /// Source rows with a value the mirror holds through a documented
    /// conversion (docs/redshift.md, "Edge values"): compared as converted,
    /// never a difference.
    pub converted_rows: u64,
    /// When the table's newest event reached the events view.
    pub last_event_refreshed_at: Option<String>,
    /// Commit time of the table's newest event (ms since the Unix epoch).
    pub last_event_committed_ms: Option<i64>,
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub tables: Vec<TableVerdict>,
}

impl VerifyReport {
    pub fn all_equal(&self) -> bool {
        self.tables.iter().all(|t| t.equal)
    }
}

/// Compares every configured table with its mirror.
pub async fn verify(
    config: &Config,
    only: &[String],
    shutdown: Shutdown,
) -> Result<VerifyReport, VerifyError> {
    let redshift = config
        .redshift
        .as_ref()
        .ok_or(SchedulerError::NoRedshiftConfig)?;
    let objects = Objects::new(config, redshift);
    let tables: Vec<MirrorTable> = read_mirror_tables(config)
        .await?
        .into_iter()
        .filter(|t| only.is_empty() || only.contains(&t.source.qualified_name()))
        .collect();
    let source = crate::catalog::connect(&config.source.url)
        .await
        .map_err(|e| {
            SchedulerError::SourceConnect(format!(
                "{}: {}",
                redact_url(&config.source.url),
                e.describe()
            ))
        })?;
    let api = DataApi::connect(redshift, shutdown).await;
    let last_events = last_events(&api, &objects).await?;
    let mut verdicts = Vec::with_capacity(tables.len());
    for table in &tables {
        let mut verdict = compare(&source, &api, redshift, table).await?;
        let key = (
            table.source.name.schema.clone(),
            table.source.name.name.clone(),
        );
        if let Some((refreshed, committed)) = last_events.get(&key) {
            verdict.last_event_refreshed_at = refreshed.clone();
            verdict.last_event_committed_ms = *committed;
        }
        verdicts.push(verdict);
    }
    Ok(VerifyReport { tables: verdicts })
}

/// The SQL of one table on one side.
struct TableSql {
    table: String,
    key_text: String,
    key_display: String,
    row_text: String,
}

impl TableSql {
    fn new(table: &MirrorTable, side: Side, mirror_schema: &str) -> TableSql {
        let canonical = |(column, kind): &(crate::catalog::SourceColumn, _)| {
            let kind: &crate::scheduler::mapping::ColumnKind = kind;
            kind.canonical(&column_ident(side, &column.name), &column.type_name, side)
        };
        // Each column as 'N' (NULL) or 'V' + the MD5 of its text.
        let hashed = |expr: String| format!("COALESCE('V' || MD5({expr}), 'N')");
        let key = table.key();
        let key_text = key
            .iter()
            .map(|c| hashed(canonical(c)))
            .collect::<Vec<_>>()
            .join(" || ");
        let key_display = key
            .iter()
            .map(|c| format!("COALESCE({}, 'NULL')", canonical(c)))
            .collect::<Vec<_>>()
            .join(" || ', ' || ");
        let row_text = table
            .columns
            .iter()
            .map(|c| hashed(canonical(c)))
            .collect::<Vec<_>>()
            .join(" || ");
        let table = match side {
            Side::Source => table.source.name.quoted(),
            Side::Mirror => sql::qualified(mirror_schema, &table.name),
        };
        TableSql {
            table,
            key_text,
            key_display,
            row_text,
        }
    }

    fn render(&self, template: Template, buckets: &str) -> Result<String, SqlError> {
        let values = Values::from([
            ("table", self.table.clone()),
            ("key_text", self.key_text.clone()),
            ("key_display", self.key_display.clone()),
            ("row_text", self.row_text.clone()),
            ("buckets", buckets.to_owned()),
        ]);
        template.render_one(&values)
    }
}

/// Per bucket: (row count, high hash sum, low hash sum), as text.
type Buckets = BTreeMap<String, (u64, String, String)>;

async fn compare(
    source: &Client,
    api: &DataApi,
    redshift: &RedshiftConfig,
    table: &MirrorTable,
) -> Result<TableVerdict, VerifyError> {
    let name = table.source.qualified_name();
    let mirror_schema = redshift_name(&redshift.mirror_schema);
    let source_sql = TableSql::new(table, Side::Source, &mirror_schema);
    let mirror_sql = TableSql::new(table, Side::Mirror, &mirror_schema);
    let source_error = |e: tokio_postgres::Error| VerifyError::Source {
        table: name.clone(),
        message: crate::postgres::pg_message(&e),
    };
    let mirror_error = |e: RedshiftError| VerifyError::Mirror {
        table: format!("{mirror_schema}.{}", table.name),
        source: e,
    };

    let query = source_sql.render(sql::VERIFY_SOURCE_BUCKETS, "")?;
    let source_buckets = buckets(
        source_text_rows(source, &query)
            .await
            .map_err(source_error)?,
    );
    let query = mirror_sql.render(sql::VERIFY_MIRROR_BUCKETS, "")?;
    let mirror_buckets = buckets(api.text_rows(&query).await.map_err(mirror_error)?);

    let rows = |b: &Buckets| b.values().map(|(n, _, _)| n).sum::<u64>();
    let differing = differing_buckets(&source_buckets, &mirror_buckets);
    let mut verdict = TableVerdict {
        table: name.clone(),
        mirror: format!("{mirror_schema}.{}", table.name),
        source_rows: rows(&source_buckets),
        converted_rows: converted_rows(source, table).await?,
        mirror_rows: rows(&mirror_buckets),
        equal: differing.is_empty(),
        differing_buckets: differing.clone(),
        only_in_source: Vec::new(),
        only_in_mirror: Vec::new(),
        different_rows: Vec::new(),
        last_event_refreshed_at: None,
        last_event_committed_ms: None,
    };
    // Name the keys, in the buckets small enough to list.
    let listable = listable_buckets(&differing, &source_buckets, &mirror_buckets);
    if listable.is_empty() {
        return Ok(verdict);
    }
    let buckets = listable.join(", ");
    let query = source_sql.render(sql::VERIFY_BUCKET_ROWS, &buckets)?;
    let source_rows = keyed(
        source_text_rows(source, &query)
            .await
            .map_err(source_error)?,
    );
    let query = mirror_sql.render(sql::VERIFY_BUCKET_ROWS, &buckets)?;
    let mirror_rows = keyed(api.text_rows(&query).await.map_err(mirror_error)?);
    name_keys(&mut verdict, &source_rows, &mirror_rows);
    Ok(verdict)
}

/// The buckets whose (count, hash sums) differ between the two sides.
fn differing_buckets(source: &Buckets, mirror: &Buckets) -> Vec<String> {
    source
        .keys()
        .chain(mirror.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|b| source.get(*b) != mirror.get(*b))
        .cloned()
        .collect()
}

/// Of the `differing` buckets, those small enough to list their keys (at
/// most 16), quoted for the bucket-rows template.
fn listable_buckets(differing: &[String], source: &Buckets, mirror: &Buckets) -> Vec<String> {
    let count_in = |b: &Buckets, bucket: &String| b.get(bucket).map(|(n, _, _)| *n).unwrap_or(0);
    differing
        .iter()
        .filter(|b| count_in(source, b).max(count_in(mirror, b)) <= MAX_ROWS_TO_LIST)
        .map(|b| format!("'{b}'"))
        .take(16)
        .collect()
}

/// Fills the verdict's key lists from the rows (key -> hash) of the listed
/// buckets on both sides, each cut to [`MAX_KEYS_REPORTED`].
fn name_keys(
    verdict: &mut TableVerdict,
    source_rows: &BTreeMap<String, String>,
    mirror_rows: &BTreeMap<String, String>,
) {
    for (key, hash) in source_rows {
        match mirror_rows.get(key) {
            None => verdict.only_in_source.push(key.clone()),
            Some(other) if other != hash => verdict.different_rows.push(key.clone()),
            Some(_) => {}
        }
    }
    verdict.only_in_mirror = mirror_rows
        .keys()
        .filter(|k| !source_rows.contains_key(*k))
        .cloned()
        .collect();
    for keys in [
        &mut verdict.only_in_source,
        &mut verdict.only_in_mirror,
        &mut verdict.different_rows,
    ] {
        keys.truncate(MAX_KEYS_REPORTED);
    }
}

/// How many source rows hold a value that reaches the mirror converted.
async fn converted_rows(client: &Client, table: &MirrorTable) -> Result<u64, VerifyError> {
    let conditions: Vec<String> = table
        .columns
        .iter()
        .filter_map(|(c, k)| k.source_conversion(&quote_ident(&c.name), &c.type_name))
        .collect();
    if conditions.is_empty() {
        return Ok(0);
    }
    let values = Values::from([
        ("table", table.source.name.quoted()),
        ("converted", conditions.join("\n   OR ")),
    ]);
    let query = sql::VERIFY_SOURCE_CONVERTED.render_one(&values)?;
    let count: i64 = client
        .query_one(&query, &[])
        .await
        .map_err(|e| VerifyError::Source {
            table: table.source.qualified_name(),
            message: crate::postgres::pg_message(&e),
        })?
        .get(0);
    Ok(u64::try_from(count).unwrap_or(0))
}

/// A column's identifier on one side: the source's name, or the mirror
/// column's name as Redshift stores it.
fn column_ident(side: Side, name: &str) -> String {
    match side {
        Side::Source => quote_ident(name),
        Side::Mirror => quote_ident(&redshift_name(name)),
    }
}

/// Every value of every row as text (NULL as an empty string).
async fn source_text_rows(
    client: &Client,
    query: &str,
) -> Result<Vec<Vec<String>>, tokio_postgres::Error> {
    Ok(client
        .query(query, &[])
        .await?
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| row.get::<_, Option<String>>(i).unwrap_or_default())
                .collect()
        })
        .collect())
}

/// Rows of `*_buckets.sql`: (bucket, count, high sum, low sum).
fn buckets(rows: Vec<Vec<String>>) -> Buckets {
    rows.into_iter()
        .filter_map(|row| {
            let [bucket, count, high, low]: [String; 4] = row.try_into().ok()?;
            Some((bucket, (count.parse().unwrap_or(0), high, low)))
        })
        .collect()
}

/// Rows of `bucket_rows.sql`: key -> row hash.
fn keyed(rows: Vec<Vec<String>>) -> BTreeMap<String, String> {
    rows.into_iter()
        .filter_map(|row| {
            let [key, hash]: [String; 2] = row.try_into().ok()?;
            Some((key, hash))
        })
        .collect()
}

/// (schema, table) -> (newest refresh_time, newest commit time in ms).
type LastEvents = BTreeMap<(String, String), (Option<String>, Option<i64>)>;

async fn last_events(api: &DataApi, objects: &Objects) -> Result<LastEvents, VerifyError> {
    let values = Values::from([("events_view", objects.events_view.clone())]);
    let statement = sql::VERIFY_LAST_EVENTS.render_one(&values)?;
    let rows = api
        .query(&statement)
        .await
        .map_err(VerifyError::EventsView)?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some((
                (r.text("source_schema")?, r.text("source_table")?),
                (
                    r.text("last_refresh_time"),
                    r.get("last_commit_ms").and_then(Value::as_i64),
                ),
            ))
        })
        .collect())
}

impl fmt::Display for TableVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = match (&self.last_event_refreshed_at, self.last_event_committed_ms) {
            (Some(at), Some(ms)) => format!(
                "newest event committed {} reached Redshift {at}",
                chrono::DateTime::from_timestamp_millis(ms)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_else(|| ms.to_string())
            ),
            _ => "no event in the events view".to_owned(),
        };
        let converted = match self.converted_rows {
            0 => String::new(),
            n => format!("; converted as documented: {n} rows"),
        };
        if self.equal {
            return write!(
                f,
                "equal      {} = {} ({} rows){converted}; {last}",
                self.table, self.mirror, self.source_rows
            );
        }
        write!(
            f,
            "DIFFERENT  {} vs {}: {} source rows, {} mirror rows, {} of 256 key buckets differ",
            self.table,
            self.mirror,
            self.source_rows,
            self.mirror_rows,
            self.differing_buckets.len()
        )?;
        for (what, keys) in [
            ("only in source", &self.only_in_source),
            ("only in mirror", &self.only_in_mirror),
            ("rows differ", &self.different_rows),
        ] {
            if !keys.is_empty() {
                write!(f, "; {what}: ({})", keys.join("), ("))?;
            }
        }
        write!(f, "{converted}; {last}")
    }
}
