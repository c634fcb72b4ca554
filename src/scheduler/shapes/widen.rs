//! Widening a mirror column to its newest shape's type: the shape says a
//! column now holds larger values (integer -> bigint, varchar(10) ->
//! varchar(50), real -> double precision), so the mirror column grows
//! before the events written with that shape merge. Runs after the
//! schema-change step (new tables and columns; a change of type family
//! stops the run there). The column is copied into a new column of the
//! wider type that takes the old one's name, in one batch (one
//! transaction): Redshift alters only VARCHAR widths in place, and not
//! inside a transaction block. Key
//! columns are not widened (their tombstones and the merge's joins use
//! them): a value too large for the mirror's key type fails the merge
//! loudly, nothing is lost (docs/operations.md, "Schema changes").

use crate::redshift::{DataApi, Row};
use crate::scheduler::mapping::ColumnKind;
use crate::scheduler::plan::{redshift_name, MirrorTable, Objects};
use crate::sql::{qualified, quote_ident, SqlError, Template};

use super::super::SchedulerError;

template!(WIDEN_COLUMN, "merge/widen_column.sql");

/// One mirror column as information_schema describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorColumn {
    pub table: String,
    pub column: String,
    pub data_type: String,
    pub max_length: Option<u32>,
}

/// Rank of a number type among those of its family (wider is larger).
fn rank(data_type: &str) -> Option<u8> {
    match data_type.to_ascii_lowercase().as_str() {
        "smallint" => Some(1),
        "integer" => Some(2),
        "bigint" => Some(3),
        "real" => Some(11),
        "double precision" => Some(12),
        _ => None,
    }
}

/// The widenings (each one batch) that bring `tables`' mirror columns up
/// to their shapes.
pub fn widenings(
    objects: &Objects,
    tables: &[MirrorTable],
    mirror: &[MirrorColumn],
) -> Result<Vec<Vec<String>>, SqlError> {
    let mut out = Vec::new();
    for table in tables {
        let mirror_table = qualified(&objects.mirror_schema_name, &table.name);
        for (column, kind) in &table.columns {
            let name = redshift_name(&column.name);
            // Read before this run's renames: a renamed column is still
            // under a former name there.
            let named = |m: &MirrorColumn| {
                std::iter::once(&column.name)
                    .chain(column.former_names.iter().map(|f| &f.name))
                    .any(|n| m.column.eq_ignore_ascii_case(&redshift_name(n)))
            };
            let Some(current) = mirror.iter().find(|m| m.table == table.name && named(m)) else {
                continue;
            };
            let mut values = objects.values();
            values.insert("mirror_table", mirror_table.clone());
            values.insert("column", quote_ident(&name));
            values.insert("column_type", kind.redshift_type());
            let wider = match kind {
                ColumnKind::Text { bytes } => current.max_length.is_some_and(|l| l < *bytes),
                ColumnKind::Integer(t) | ColumnKind::Float(t) => rank(&current.data_type)
                    .zip(rank(t))
                    .is_some_and(|(a, b)| a < b),
                _ => false,
            };
            if wider && column.key_position.is_none() {
                let widened = redshift_name(&format!("_kinesync_widen_{name}"));
                values.insert("widened", quote_ident(&widened));
                out.push(WIDEN_COLUMN.render(&values)?);
            }
        }
    }
    Ok(out)
}

fn mirror_columns(rows: &[Row]) -> Vec<MirrorColumn> {
    rows.iter()
        .filter_map(|row| {
            Some(MirrorColumn {
                table: row.text("table_name")?,
                column: row.text("column_name")?,
                data_type: row.text("data_type")?,
                max_length: row
                    .get("max_length")
                    .and_then(|v| v.as_i64())
                    .and_then(|v| u32::try_from(v).ok()),
            })
        })
        .collect()
}

/// Widens the mirror columns the newest shapes grew; `rows` are the
/// mirror's columns as the run's lease batch read them
/// (merge/mirror_columns.sql), before this run's schema changes (a column
/// added by them already has its newest type).
pub async fn widen_columns(
    api: &DataApi,
    objects: &Objects,
    tables: &[MirrorTable],
    rows: &[Row],
) -> Result<(), SchedulerError> {
    for widening in widenings(objects, tables, &mirror_columns(rows))? {
        tracing::info!(statement = %widening[0], "widening a mirror column to the table's newest shape");
        api.batch(&widening).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Shape, ShapeColumn};

    fn column(name: &str, type_name: &str, oid: u32, key: Option<usize>) -> ShapeColumn {
        ShapeColumn {
            name: name.into(),
            type_name: type_name.into(),
            oid,
            base_oid: oid,
            category: "N".into(),
            key,
            identity: key.is_some(),
            missing: None,
            attnum: None,
        }
    }

    fn mirror(column: &str, data_type: &str, max_length: Option<u32>) -> MirrorColumn {
        MirrorColumn {
            table: "items".into(),
            column: column.into(),
            data_type: data_type.into(),
            max_length,
        }
    }

    #[test]
    fn only_non_key_columns_whose_shape_holds_larger_values_are_widened() {
        let config = super::super::tests::config(r#"["public.items"]"#);
        let objects = Objects::new(&config, config.redshift.as_ref().unwrap());
        let shape = Shape {
            schema: "public".into(),
            table: "items".into(),
            oid: 1,
            replica_identity: "d".into(),
            key: "primary_key".into(),
            columns: vec![
                column("id", "bigint", 20, Some(1)),
                column("n", "bigint", 20, None),
                column("s", "character varying(50)", 1043, None),
                column("t", "character varying(5)", 1043, None),
                column("r", "smallint", 21, None),
            ],
        };
        let table = MirrorTable::new(shape.to_table().unwrap());
        let current = [
            mirror("id", "integer", None),
            mirror("n", "integer", None),
            mirror("s", "character varying", Some(40)),
            mirror("t", "character varying", Some(40)),
            mirror("r", "integer", None),
        ];
        let widened = widenings(&objects, &[table], &current).unwrap();
        let columns: Vec<&str> = widened
            .iter()
            .map(|batch| {
                assert_eq!(batch.len(), 4, "{batch:?}");
                if batch[0].contains("\"_kinesync_widen_n\"") {
                    "n"
                } else {
                    "s"
                }
            })
            .collect();
        assert_eq!(columns, ["n", "s"], "{widened:#?}");
        assert!(
            widened[0][0].ends_with("ADD COLUMN \"_kinesync_widen_n\" BIGINT"),
            "{widened:#?}"
        );
        assert!(widened[1][0].ends_with("VARCHAR(200)"), "{widened:#?}");
        assert!(widened[1][3].ends_with("RENAME COLUMN \"_kinesync_widen_s\" TO \"s\""));
    }
}
