//! Where the merge gets each table's shape: from the stream, never from the
//! source database.
//!
//! The producer writes a shape record (op `s`, [`crate::event::Shape`])
//! before a table's first change of a session and after each schema change.
//! A run takes each table's newest shape by position `(commit_lsn, lsn)`
//! from (a) the shapes table (`<mirror_schema>.kinesync_shapes`, one row per
//! table) and (b) the shape records among the events not merged yet, read
//! after the refresh (merge/shapes.sql). The newest shape is what the run
//! merges with: new columns reach the mirror by the schema-change step
//! (ADD COLUMN, widening), a column the shape no longer has stays in the
//! mirror (NULL in rows written after the drop), and a type the mirror's
//! column cannot hold stops the run (`PlanError::TypeChanged`). The stored
//! shapes advance in the last merge batch, the watermark's transaction
//! (merge/store_shapes.sql), so a run cut anywhere reads the same again.
//!
//! Old streams: `setup` stores each table's shape from the source catalog at
//! position 0/0 (setup/shape.sql), which any record replaces. A configured
//! table with no shape at all (added to `source.tables` after setup, with
//! an older producer) is read from the source as before, when it can be
//! reached; else the run stops naming the fix ([`ShapesError::Missing`]).

use std::collections::BTreeSet;
use std::future::Future;

use crate::config::Config;
use crate::event::{newest_shapes, Position, PositionedShape, Shape};
use crate::lsn::Lsn;
use crate::redshift::{DataApi, RedshiftError, Row};
use crate::sql::{self, parse_table_entry, quote_literal, SqlError, TableName, Template, Values};

/// A template under `sql/` (as src/sql.rs declares its own), here and in
/// `widen`.
macro_rules! template {
    ($const_name:ident, $path:literal) => {
        const $const_name: Template = Template {
            name: $path,
            text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/", $path)),
        };
    };
}

mod backfill;
#[cfg(test)]
mod fixtures;
mod rename;
mod widen;

pub use backfill::{backfill_statements, Backfill};
pub use rename::{rename_statements, Rename};
pub use widen::widen_columns;

use super::plan::{self, MergeBatch, MirrorTable, Objects, MAX_STATEMENTS_PER_BATCH};
use super::SchedulerError;

/// The shapes table, inside the mirror schema.
pub const SHAPES_TABLE: &str = "kinesync_shapes";
/// Redshift's longest VARCHAR literal: a setup shape longer is not stored
/// (the stream's record, which needs no literal, is).
const MAX_SHAPE_LITERAL_BYTES: usize = 65_535;

template!(SETUP_SHAPES, "setup/shapes.sql");
template!(SETUP_SHAPE, "setup/shape.sql");
template!(MERGE_SHAPES, "merge/shapes.sql");
template!(MERGE_STORE_SHAPES, "merge/store_shapes.sql");

/// Why the merge has no usable shape for a table.
#[derive(Debug, thiserror::Error)]
pub enum ShapesError {
    #[error("cannot read the table shapes from {table} ({detail}): run `kinesync setup` once (it creates the table and stores every table's shape)")]
    NoTable { table: String, detail: String },
    #[error("a shape of table {table} (from {origin}) is unreadable: {problem}")]
    Bad {
        table: String,
        origin: &'static str,
        problem: String,
    },
    #[error("no shape known for {tables}: neither the stream nor {shapes_table} describes them, and the source database, the fallback, cannot be read ({source_problem}). Run `kinesync setup` (reads the source once and stores every table's shape), or upgrade and restart the producer (it writes each table's shape at its start)")]
    Missing {
        tables: String,
        shapes_table: String,
        source_problem: String,
    },
}

fn shapes_table(objects: &Objects) -> String {
    sql::qualified(&objects.mirror_schema_name, SHAPES_TABLE)
}

fn values(objects: &Objects) -> Values {
    let mut values = objects.values();
    values.insert("shapes", shapes_table(objects));
    values
}

/// The one SELECT returning every stored shape and every shape record among
/// the events since the watermark (columns source_schema, source_table,
/// commit_lsn, lsn, shape). Run it after the refresh.
pub fn shapes_statement(objects: &Objects) -> Result<String, SqlError> {
    MERGE_SHAPES.render_one(&values(objects))
}

/// The statements storing this run's newest shape records (they read the
/// batch's `kinesync_new_events`): for the last merge batch, before the
/// watermark moves.
pub fn store_shapes_statements(objects: &Objects) -> Result<Vec<String>, SqlError> {
    MERGE_STORE_SHAPES.render(&values(objects))
}

/// `setup`: the shapes table and each table's shape from the catalog (kept
/// where the stream already gave one).
pub fn setup_shapes_statements(
    objects: &Objects,
    tables: &[MirrorTable],
) -> Result<Vec<String>, SqlError> {
    let mut statements = SETUP_SHAPES.render(&values(objects))?;
    for table in tables {
        let shape = Shape::of_table(&table.source);
        let text = serde_json::to_string(&shape).unwrap_or_default();
        if text.len() > MAX_SHAPE_LITERAL_BYTES {
            tracing::warn!(table = %table.source.qualified_name(), bytes = text.len(), "table too wide for setup to store its shape; the merge takes it from the stream's shape record (a producer of this version writes one at its start)");
            continue;
        }
        let mut values = values(objects);
        values.insert("schema_literal", quote_literal(&shape.schema));
        values.insert("table_literal", quote_literal(&shape.table));
        // setup/shape.sql turns CHR(1) back into backslashes.
        values.insert("shape_literal", quote_literal(&text.replace('\\', "\u{1}")));
        statements.extend(SETUP_SHAPE.render(&values)?);
    }
    Ok(statements)
}

/// The configured tables with their newest shapes, in configuration order
/// (a `schema.*` entry: that schema's described tables in name order).
/// [`ShapesError::Missing`] names the entries no shape describes.
pub fn tables_from_shapes(
    config: &Config,
    shapes: &[(PositionedShape, bool)],
) -> Result<Vec<MirrorTable>, SchedulerError> {
    let newest = newest_shapes(shapes.iter().map(|(shape, _)| shape.clone()));
    let mut seen = BTreeSet::new();
    let (mut tables, mut missing) = (Vec::new(), Vec::new());
    for pattern in &config.source.tables {
        let entry = parse_table_entry(pattern).map_err(crate::source::tables::TablesError::from)?;
        let matched: Vec<&PositionedShape> = match &entry.table {
            Some(name) => newest
                .get(&TableName::new(&entry.schema, name))
                .into_iter()
                .collect(),
            None => newest
                .values()
                .filter(|s| s.shape.schema == entry.schema)
                .collect(),
        };
        if matched.is_empty() {
            missing.push(pattern.clone());
        }
        for shape in matched {
            if seen.insert(shape.shape.table_name()) {
                let source = shape.shape.to_table().map_err(|e| ShapesError::Bad {
                    table: e.table,
                    origin: "the newest shape",
                    problem: e.problem,
                })?;
                tables.push(MirrorTable::new(source));
            }
        }
    }
    if !missing.is_empty() {
        return Err(ShapesError::Missing {
            tables: missing.join(", "),
            shapes_table: String::new(),
            source_problem: String::new(),
        }
        .into());
    }
    plan::check_mirror_names(&tables)?;
    Ok(tables)
}

/// Shapes of merge/shapes.sql's rows, each with whether it is the stored one.
fn parse_rows(rows: &[Row]) -> Result<Vec<(PositionedShape, bool)>, ShapesError> {
    rows.iter()
        .map(|row| {
            Ok((
                parse_row(row)?,
                row.text("origin").as_deref() == Some("stored"),
            ))
        })
        .collect()
}

fn parse_row(row: &Row) -> Result<PositionedShape, ShapesError> {
    let table = format!(
        "{}.{}",
        row.text("source_schema").unwrap_or_default(),
        row.text("source_table").unwrap_or_default()
    );
    let bad = |problem: String| ShapesError::Bad {
        table: table.clone(),
        origin: "the shapes table or a shape record",
        problem,
    };
    let lsn = |column: &str| {
        row.get(column)
            .and_then(|v| v.as_i64())
            .and_then(|v| u64::try_from(v).ok())
            .map(Lsn)
            .ok_or_else(|| bad(format!("no {column}")))
    };
    let position = Position {
        commit_lsn: lsn("commit_lsn")?,
        lsn: lsn("lsn")?,
    };
    let text = row.text("shape").ok_or_else(|| bad("no shape".into()))?;
    let shape: Shape = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    Ok(PositionedShape { position, shape })
}

/// The run's tables: the shapes (stored and new), falling back to
/// `from_source` (the source catalog, awaited only then) when a configured
/// table has none (see the module doc); with the columns to fill in rows
/// older than them ([`backfill`]) and the columns renamed ([`rename`]; the
/// tables' columns know their former names).
pub async fn mirror_tables(
    config: &Config,
    objects: &Objects,
    api: &DataApi,
    from_source: impl Future<Output = Result<Vec<MirrorTable>, SchedulerError>>,
) -> Result<RunShapes, SchedulerError> {
    let rows = api
        .query(&shapes_statement(objects)?)
        .await
        .map_err(|error| shapes_query_failed(objects, error))?;
    mirror_tables_from(config, objects, &rows, from_source).await
}

/// The error of a failed [`shapes_statement`] (alone or in a batch): a
/// missing shapes table says what to run.
pub fn shapes_query_failed(objects: &Objects, error: RedshiftError) -> SchedulerError {
    if is_missing_relation(&error) {
        return ShapesError::NoTable {
            table: shapes_table(objects),
            detail: error.to_string(),
        }
        .into();
    }
    error.into()
}

/// [`mirror_tables`] from the rows of [`shapes_statement`], read already
/// (the merge reads them in the batch that counts what is pending).
pub async fn mirror_tables_from(
    config: &Config,
    objects: &Objects,
    rows: &[Row],
    from_source: impl Future<Output = Result<Vec<MirrorTable>, SchedulerError>>,
) -> Result<RunShapes, SchedulerError> {
    let shapes = parse_rows(rows)?;
    match tables_from_shapes(config, &shapes) {
        Ok(mut tables) => {
            let changed = since_stored(&shapes);
            let renames = rename::renames(&changed);
            rename::remember_former_names(&mut tables, &renames);
            Ok(RunShapes {
                tables,
                backfills: backfill::backfills(&changed),
                renames,
            })
        }
        Err(SchedulerError::Shapes(ShapesError::Missing { tables, .. })) => {
            match from_source.await {
                Ok(read) => {
                    tracing::warn!(%tables, "no shape in the stream or the shapes table yet: read the tables from the source database (upgrade and restart the producer, or run `kinesync setup`, to stop needing it)");
                    Ok(RunShapes {
                        tables: read,
                        backfills: Vec::new(),
                        renames: Vec::new(),
                    })
                }
                Err(error) => Err(ShapesError::Missing {
                    tables,
                    shapes_table: shapes_table(objects),
                    source_problem: error.to_string(),
                }
                .into()),
            }
        }
        Err(error) => Err(error),
    }
}

/// One table's stored shape (what the mirror was merged with) and this
/// run's shape records newer than it, in position order.
pub struct SinceStored<'a> {
    pub stored: &'a PositionedShape,
    pub records: Vec<&'a PositionedShape>,
}

/// Per table with a stored shape, the records since: `shapes` are
/// `(shape, stored)` pairs, at most one stored per table.
pub fn since_stored(shapes: &[(PositionedShape, bool)]) -> Vec<SinceStored<'_>> {
    shapes
        .iter()
        .filter(|(_, is_stored)| *is_stored)
        .map(|(stored, _)| {
            let table = stored.shape.table_name();
            let mut records: Vec<&PositionedShape> = shapes
                .iter()
                .filter(|(s, is_stored)| !is_stored && s.shape.table_name() == table)
                .map(|(s, _)| s)
                .filter(|s| s.position > stored.position)
                .collect();
            records.sort_by_key(|s| s.position);
            SinceStored { stored, records }
        })
        .collect()
}

/// What a run takes from the shapes.
pub struct RunShapes {
    pub tables: Vec<MirrorTable>,
    pub backfills: Vec<Backfill>,
    pub renames: Vec<Rename>,
}

fn is_missing_relation(error: &RedshiftError) -> bool {
    let text = error.to_string();
    text.contains(SHAPES_TABLE) && text.contains("does not exist")
}

/// Puts the store statements into the last batch, before its closing
/// (watermark) statements, or into a batch of their own that closes the
/// run when the last one has no room left.
pub fn store_in_last_batch(
    objects: &Objects,
    holder: &str,
    batches: &mut Vec<MergeBatch>,
    backfills: Vec<String>,
) -> Result<(), SqlError> {
    let store: Vec<String> = backfills
        .into_iter()
        .chain(store_shapes_statements(objects)?)
        .collect();
    let closing = sql::MERGE_COMMIT.render(&objects.values())?.len();
    let Some(last) = batches.last_mut() else {
        return Ok(());
    };
    let at = last.body.len().saturating_sub(closing);
    let mut stored = last.clone();
    stored.body.splice(at..at, store.iter().cloned());
    if stored.wire_len(objects) <= MAX_STATEMENTS_PER_BATCH {
        *last = stored;
        return Ok(());
    }
    let commit: Vec<String> = last.body.drain(at..).collect();
    let mut own = MergeBatch::opened(objects, holder)?;
    own.body.extend(store);
    own.body.extend(commit);
    batches.push(own);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::redshift::Value;

    pub(super) fn config(tables: &str) -> Config {
        let sections = [
            format!("[source]\nurl = \"postgres://u@127.0.0.1:1/db\"\ntables = {tables}"),
            "[kinesis]\nstream = \"s\"".to_owned(),
            "[redshift]\nworkgroup = \"w\"\ndatabase = \"dev\"\nstream_role_arn = \"arn:aws:iam::1:role/r\"".to_owned(),
        ];
        Config::from_toml_with_env(&sections.join("\n"), &BTreeMap::new()).unwrap()
    }

    /// A merge/shapes.sql row of `schema.table` with `columns` (the first keyed).
    fn row(schema: &str, table: &str, at: (i64, i64), columns: &[(&str, &str, u32)]) -> Row {
        let columns: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, (name, type_name, oid))| {
                let key = if i == 0 { r#","key":1,"identity":true"# } else { "" };
                format!(r#"{{"name":"{name}","type":"{type_name}","oid":{oid},"base_oid":{oid},"category":"N"{key}}}"#)
            })
            .collect();
        let shape = format!(
            r#"{{"schema":"{schema}","table":"{table}","oid":1,"replica_identity":"d","key":"primary_key","columns":[{}]}}"#,
            columns.join(",")
        );
        let names: Arc<[String]> = [
            "source_schema",
            "source_table",
            "commit_lsn",
            "lsn",
            "shape",
        ]
        .map(String::from)
        .into();
        let values = vec![
            Value::Text(schema.into()),
            Value::Text(table.into()),
            Value::Long(at.0),
            Value::Text(at.1.to_string()),
            Value::Text(shape),
        ];
        Row::new(names, values)
    }

    #[test]
    fn each_table_gets_its_newest_shape_in_configuration_order() {
        let rows = [
            row("sales", "b", (5, 1), &[("id", "integer", 23)]),
            row(
                "public",
                "orders",
                (9, 3),
                &[("id", "bigint", 20), ("note", "text", 25)],
            ),
            row("sales", "a", (5, 1), &[("id", "integer", 23)]),
            row("public", "orders", (9, 2), &[("id", "integer", 23)]),
            row("public", "orders", (0, 0), &[("id", "integer", 23)]),
        ];
        let tables = tables_from_shapes(
            &config(r#"["public.orders", "sales.*"]"#),
            &parse_rows(&rows).unwrap(),
        )
        .unwrap();
        let names: Vec<String> = tables.iter().map(|t| t.source.qualified_name()).collect();
        assert_eq!(names, ["public.orders", "sales.a", "sales.b"]);
        let orders = &tables[0].source;
        assert_eq!(orders.columns.len(), 2);
        assert_eq!(orders.columns[0].type_name, "bigint");
    }

    #[test]
    fn a_configured_table_without_a_shape_is_named() {
        let rows = [row("public", "orders", (1, 1), &[("id", "integer", 23)])];
        let error = tables_from_shapes(
            &config(r#"["public.orders", "public.other"]"#),
            &parse_rows(&rows).unwrap(),
        )
        .unwrap_err();
        let SchedulerError::Shapes(ShapesError::Missing { tables, .. }) = error else {
            panic!("not Missing: {error}");
        };
        assert_eq!(tables, "public.other");
    }

    #[test]
    fn the_shapes_are_stored_in_the_watermark_transaction() {
        let config = config(r#"["public.orders"]"#);
        let objects = Objects::new(&config, config.redshift.as_ref().unwrap());
        let commit = sql::MERGE_COMMIT.render(&objects.values()).unwrap();
        let store = store_shapes_statements(&objects).unwrap();
        // Bodies of plain statements (too long for the executor: one each).
        let long = format!("SELECT '{}'", "x".repeat(plan::MAX_ARGUMENT_BYTES));
        // 3 + 35 + 1 + 1: a full batch, where a plain backfill has no room.
        for (plain, backfills, expected) in [(5, vec![], 1), (35, vec![long.clone()], 2)] {
            let mut batch = MergeBatch::opened(&objects, "h").unwrap();
            batch.body = vec![long.clone(); plain];
            batch.body.extend(commit.clone());
            assert!(batch.wire_len(&objects) <= MAX_STATEMENTS_PER_BATCH);
            let mut batches = vec![batch];
            let store = backfills
                .iter()
                .cloned()
                .chain(store.clone())
                .collect::<Vec<_>>();
            store_in_last_batch(&objects, "h", &mut batches, backfills).unwrap();
            assert_eq!(batches.len(), expected);
            let last = batches.last().unwrap();
            assert!(batches
                .iter()
                .all(|b| b.wire_len(&objects) <= MAX_STATEMENTS_PER_BATCH));
            assert!(last.body.ends_with(&commit), "the watermark moves last");
            let stored = &last.body[last.body.len() - commit.len() - store.len()..];
            assert_eq!(&stored[..store.len()], &store[..]);
            let watermarks = batches
                .iter()
                .flat_map(|b| &b.body)
                .filter(|s| **s == commit[0]);
            assert_eq!(watermarks.count(), 1, "{plain} plain statements");
        }
    }
}
