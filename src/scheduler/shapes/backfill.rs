//! Columns added with a DEFAULT: the value of the rows older than the column.
//!
//! `ALTER TABLE t ADD COLUMN c ... DEFAULT <constant>` does not rewrite the
//! table: PostgreSQL keeps the default once (`attmissingval`) and every
//! existing row reads it, while no change event says so. The producer puts
//! that value into the shape (`missing`, docs/events.md). A run whose new
//! shape records have a column that the stored shape (what the mirror was
//! merged with) lacks sets that value in every mirror row last written
//! before the first such record: exactly the rows whose source row has not
//! changed since the ALTER (a shape record sits before the first change
//! written with it). Rows written at or after it carry the column in their
//! own events. The UPDATE runs in the last merge batch, with the store of
//! the shapes and the watermark, so a run cut short leaves it to the next.
//!
//! A column renamed since the stored shape (same attnum) is not new.
//!
//! A volatile default (`DEFAULT random()`, `clock_timestamp()`, an identity
//! column) rewrites the table instead, and so does any later rewrite, which
//! drops the kept value: the shape then has none, and the older rows stay
//! NULL in the mirror until the table is re-synced (docs/operations.md,
//! "Schema changes").

use std::collections::BTreeMap;

use super::SinceStored;
use crate::event::{Position, PositionedShape};
use crate::scheduler::plan::{redshift_name, MirrorTable, Objects};
use crate::sql::{qualified, quote_ident, quote_literal, SqlError, TableName, Template};

template!(BACKFILL_COLUMN, "merge/backfill_column.sql");

/// The temporary table holding one ALTER's defaults as SUPER.
const DEFAULTS_TABLE: &str = "kinesync_defaults";

/// Redshift's longest VARCHAR literal: a longer default is not written
/// (warned; the rows keep NULL).
const MAX_LITERAL_BYTES: usize = 65_535;

/// One column to fill in the rows older than it.
#[derive(Debug, Clone, PartialEq)]
pub struct Backfill {
    pub table: TableName,
    pub column: String,
    /// Encoded as the column's values in `after`.
    pub value: serde_json::Value,
    /// The first shape record with the column: rows before it get `value`.
    pub before: Position,
}

/// The backfills of each table's shapes since its stored one.
pub fn backfills(changed: &[SinceStored<'_>]) -> Vec<Backfill> {
    let mut out: Vec<Backfill> = Vec::new();
    for SinceStored { stored, records } in changed {
        let Some(newest) = records.last() else {
            continue;
        };
        let table = stored.shape.table_name();
        for column in &newest.shape.columns {
            let Some(value) = &column.missing else {
                continue;
            };
            // By name, or by attnum: a renamed column is not a new one.
            let known = |s: &PositionedShape| {
                s.shape.columns.iter().any(|c| {
                    c.name == column.name || (column.attnum.is_some() && c.attnum == column.attnum)
                })
            };
            if known(stored) {
                continue;
            }
            if let Some(first) = records.iter().find(|s| known(s)) {
                out.push(Backfill {
                    table: table.clone(),
                    column: column.name.clone(),
                    value: value.clone(),
                    before: first.position,
                });
            }
        }
    }
    out
}

/// The statements of `backfills`, for the run's `tables`: per table and
/// position (one ALTER TABLE), one UPDATE setting its columns.
pub fn backfill_statements(
    objects: &Objects,
    tables: &[MirrorTable],
    backfills: &[Backfill],
) -> Result<Vec<String>, SqlError> {
    let mut groups: BTreeMap<(String, Position), Vec<&Backfill>> = BTreeMap::new();
    for backfill in backfills {
        groups
            .entry((backfill.table.quoted(), backfill.before))
            .or_default()
            .push(backfill);
    }
    let mut statements = Vec::new();
    for group in groups.values() {
        let Some(table) = tables.iter().find(|t| t.source.name == group[0].table) else {
            continue;
        };
        statements.extend(group_statements(objects, table, group)?);
    }
    Ok(statements)
}

/// One table's columns added at one position.
fn group_statements(
    objects: &Objects,
    table: &MirrorTable,
    group: &[&Backfill],
) -> Result<Vec<String>, SqlError> {
    let (mut document, mut assignments) = (serde_json::Map::new(), Vec::new());
    for (i, backfill) in group.iter().enumerate() {
        let Some((column, kind)) = table
            .columns
            .iter()
            .find(|(c, _)| c.name == backfill.column)
        else {
            continue;
        };
        let key = format!("v{i}");
        let raw = kind.extract(&format!("{DEFAULTS_TABLE}.doc.\"{key}\""));
        assignments.push(format!(
            "{} = {}",
            quote_ident(&redshift_name(&column.name)),
            kind.convert(&raw)
        ));
        document.insert(key, backfill.value.clone());
    }
    // JSON text never holds a raw CHR(1): backslashes travel as it, since
    // string literals treat backslashes differently across dialects.
    let text = serde_json::Value::Object(document).to_string();
    let literal = quote_literal(&text.replace('\\', "\u{1}"));
    if assignments.is_empty() {
        return Ok(Vec::new());
    }
    if literal.len() > MAX_LITERAL_BYTES {
        tracing::warn!(table = %table.source.qualified_name(), bytes = literal.len(), "the defaults of added columns are too long for a Redshift literal: rows older than the columns keep NULL in the mirror (re-sync the table to fill them)");
        return Ok(Vec::new());
    }
    let before = group[0].before;
    let mut values = objects.values();
    values.insert(
        "mirror_table",
        qualified(&objects.mirror_schema_name, &table.name),
    );
    values.insert("defaults", DEFAULTS_TABLE.to_owned());
    values.insert("assignments", assignments.join(", "));
    values.insert("defaults_literal", literal);
    values.insert("commit_lsn", before.commit_lsn.0.to_string());
    values.insert("lsn", before.lsn.0.to_string());
    BACKFILL_COLUMN.render(&values)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::shape;
    use super::super::since_stored;
    use super::*;
    use crate::event::ShapeColumn;
    use crate::lsn::Lsn;

    fn column(name: &str, missing: Option<serde_json::Value>) -> ShapeColumn {
        ShapeColumn {
            missing,
            ..super::super::fixtures::column(name)
        }
    }

    #[test]
    fn a_column_new_since_the_stored_shape_fills_rows_before_its_first_record() {
        let seven = Some(serde_json::json!(7));
        let shapes = vec![
            (shape(10, vec![column("id", None)]), true),
            (
                shape(30, vec![column("id", None), column("c", seven.clone())]),
                false,
            ),
            (
                shape(20, vec![column("id", None), column("c", seven.clone())]),
                false,
            ),
        ];
        let found = backfills(&since_stored(&shapes));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].column, "c");
        assert_eq!(found[0].before.commit_lsn, Lsn(20));
        assert_eq!(found[0].value, serde_json::json!(7));
    }

    #[test]
    fn a_column_the_stored_shape_has_or_without_a_kept_default_fills_nothing() {
        let seven = Some(serde_json::json!(7));
        let known = vec![
            (shape(10, vec![column("id", None), column("c", None)]), true),
            (
                shape(20, vec![column("id", None), column("c", seven)]),
                false,
            ),
        ];
        assert!(backfills(&since_stored(&known)).is_empty());
        let volatile = vec![
            (shape(10, vec![column("id", None)]), true),
            (
                shape(20, vec![column("id", None), column("c", None)]),
                false,
            ),
        ];
        assert!(backfills(&since_stored(&volatile)).is_empty());
        let first_shapes = vec![(
            shape(20, vec![column("c", Some(serde_json::json!(1)))]),
            false,
        )];
        assert!(
            backfills(&since_stored(&first_shapes)).is_empty(),
            "no stored shape: the snapshot has the values"
        );
    }
}
