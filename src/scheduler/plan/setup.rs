//! The statements of `setup`: the external schema, the events view, the
//! mirror and tombstone tables, and the schema changes a merge run applies
//! first (new columns, widened types).

use std::collections::BTreeMap;

use crate::config::RedshiftConfig;
use crate::scheduler::mapping::ColumnKind;
use crate::source::tables::SourceColumn;
use crate::sql::{self, qualified, quote_literal, SqlError};

use super::{column_ident, redshift_name, MirrorTable, Objects, PlanError, TypeChange};

/// `setup`: everything but the events view, in order, idempotent.
pub fn setup_statements(
    objects: &Objects,
    tables: &[MirrorTable],
) -> Result<Vec<String>, SqlError> {
    let values = objects.values();
    let mut statements = sql::SETUP_STREAM.render(&values)?;
    statements.extend(sql::SETUP_BOOKKEEPING.render(&values)?);
    statements.push(super::executor_statement(objects)?);
    for table in tables {
        statements.extend(mirror_table_statements(objects, table)?);
    }
    Ok(statements)
}

/// The streaming view (Redshift has no `CREATE MATERIALIZED VIEW IF NOT EXISTS`:
/// `setup` runs this only when `SVV_MV_INFO` does not list the view).
pub fn events_view_statements(objects: &Objects) -> Result<Vec<String>, SqlError> {
    sql::SETUP_EVENTS_VIEW.render(&objects.values())
}

/// The query telling whether the streaming view exists (sql/setup/events_view_exists.sql).
pub fn events_view_exists_statement(
    objects: &Objects,
    redshift: &RedshiftConfig,
) -> Result<String, SqlError> {
    let mut values = objects.values();
    values.insert(
        "mirror_schema_literal",
        quote_literal(&objects.mirror_schema_name),
    );
    values.insert(
        "events_view_name_literal",
        quote_literal(&redshift_name(&redshift.events_view)),
    );
    sql::SETUP_EVENTS_VIEW_EXISTS.render_one(&values)
}

/// The mirror table and its tombstones, `IF NOT EXISTS`.
pub fn mirror_table_statements(
    objects: &Objects,
    table: &MirrorTable,
) -> Result<Vec<String>, SqlError> {
    let definitions = |columns: &[&(SourceColumn, ColumnKind)]| {
        columns
            .iter()
            .map(|(c, k)| format!("    {} {}", column_ident(c), k.redshift_type()))
            .collect::<Vec<_>>()
            .join(",\n")
    };
    let mut values = objects.values();
    values.insert(
        "mirror_table",
        qualified(&objects.mirror_schema_name, &table.name),
    );
    values.insert("tombstone_table", tombstone_table(objects, table));
    values.insert(
        "column_definitions",
        definitions(&table.columns.iter().collect::<Vec<_>>()),
    );
    values.insert("key_definitions", definitions(&table.key()));
    values.insert("table_attributes", table_attributes(table));
    sql::SETUP_MIRROR_TABLE.render(&values)
}

/// The key columns the mirror, its tombstones and the merge's temporary
/// tables are distributed and sorted by (docs/redshift.md, "Physical
/// design"): `None` for a table without a primary key or replica identity
/// index (its "key" is every column, and may hold NULLs and duplicates) and
/// for a key with a SUPER or VARBYTE column (SUPER cannot be a distribution
/// or sort key; VARBYTE is left out too).
fn physical_key(table: &MirrorTable) -> Option<Vec<String>> {
    let key = table.key();
    let plain = |k: &ColumnKind| !matches!(k, ColumnKind::Super | ColumnKind::Bytes);
    (!table.source.nullable_key() && !key.is_empty() && key.iter().all(|(_, k)| plain(k)))
        .then(|| key.iter().map(|(c, _)| column_ident(c)).collect())
}

/// CREATE TABLE's table attributes of the mirror and tombstone tables:
/// distributed on the first key column and sorted by the key, so that the
/// merge's joins on the key are co-located and range-restricted; Redshift's
/// automatic choice (DISTSTYLE AUTO, SORTKEY AUTO) without a usable key.
pub(super) fn table_attributes(table: &MirrorTable) -> String {
    match physical_key(table) {
        Some(key) => format!(
            "\nDISTSTYLE KEY DISTKEY({}) COMPOUND SORTKEY({})",
            key[0],
            key.join(", ")
        ),
        None => "\nDISTSTYLE AUTO SORTKEY AUTO".to_owned(),
    }
}

/// CREATE TEMP TABLE ... AS's table attributes of the merge's temporary
/// tables (before AS): distributed like the mirror, so that joining them to
/// it on the key moves no rows; nothing (Redshift's choice) without a key.
pub(super) fn temp_distribution(table: &MirrorTable) -> String {
    match physical_key(table) {
        Some(key) => format!("DISTKEY({}) ", key[0]),
        None => String::new(),
    }
}

pub(super) fn tombstone_table(objects: &Objects, table: &MirrorTable) -> String {
    qualified(
        &objects.mirror_schema_name,
        &tombstone_table_name(&table.name),
    )
}

/// The unquoted name of the tombstone table of mirror table `mirror`.
pub fn tombstone_table_name(mirror: &str) -> String {
    redshift_name(&format!("kinesync_tombstones__{mirror}"))
}

/// The statement listing the mirror schema's tables and columns.
pub fn mirror_columns_statement(objects: &Objects) -> Result<String, SqlError> {
    let mut values = objects.values();
    values.insert(
        "mirror_schema_literal",
        quote_literal(&objects.mirror_schema_name),
    );
    sql::MERGE_MIRROR_COLUMNS.render_one(&values)
}

/// What brings the mirror schema up to the source catalog: whole tables
/// that are missing, and columns the source gained. Redshift folds
/// identifiers to lower case, so names compare in lower case. Columns the
/// source dropped stay in the mirror (NULL in rows merged afterwards).
pub fn schema_change_statements(
    objects: &Objects,
    tables: &[MirrorTable],
    existing: &BTreeMap<String, Vec<(String, String)>>,
) -> Result<Vec<String>, PlanError> {
    let mut statements = Vec::new();
    for table in tables {
        match existing.get(&table.name) {
            None => statements.extend(mirror_table_statements(objects, table)?),
            Some(columns) => {
                for (column, kind) in &table.columns {
                    if let Some((_, data_type)) = columns
                        .iter()
                        .find(|(c, _)| c.eq_ignore_ascii_case(&column.name))
                    {
                        let family = crate::scheduler::mapping::Family::of_data_type(data_type);
                        if family.is_some_and(|f| f != kind.family()) {
                            return Err(PlanError::TypeChanged(Box::new(TypeChange {
                                table: table.source.qualified_name(),
                                column: column.name.clone(),
                                mirror_type: data_type.clone(),
                                source_type: column.type_name.clone(),
                                mirror: qualified(&objects.mirror_schema_name, &table.name),
                                redshift_type: kind.redshift_type(),
                            })));
                        }
                        continue;
                    }
                    let mut values = objects.values();
                    values.insert(
                        "mirror_table",
                        qualified(&objects.mirror_schema_name, &table.name),
                    );
                    values.insert("column", column_ident(column));
                    values.insert("column_type", kind.redshift_type());
                    statements.extend(sql::MERGE_ADD_COLUMN.render(&values)?);
                }
            }
        }
    }
    Ok(statements)
}
