//! Renamed columns: `ALTER TABLE t RENAME COLUMN b TO c` on the source.
//!
//! A shape names its columns and gives each its `attnum`, which a rename
//! keeps and a drop and an add do not. When the newest shape of a run has,
//! under an attnum of the stored shape (what the mirror was merged with), a
//! name the stored shape gave another column, and no longer has the old
//! name, the column was renamed. Then (1) the mirror column is renamed
//! (and the tombstones' one, for a key column) before the schema-change
//! step, which would otherwise add the new name as an empty column and
//! leave the values under the old one; it runs while the mirror has the old
//! name and not the new, so a run cut short after it does not rename twice;
//! (2) this run's events written before the rename carry the old name, so
//! the merge reads each event's value under the new name, else the old one
//! (`SourceColumn::former_names`: a JSON null is not SQL NULL, so an
//! event that has the new name is never read under the old).
//!
//! Shapes without attnums (older producers) rename nothing: the new name
//! is added, as before. Two columns swapping names are not detected (each
//! new name is still taken): their values stay under the old names.

use std::collections::BTreeMap;

use super::SinceStored;
use crate::scheduler::plan::{redshift_name, tombstone_table_name, MirrorTable, Objects};
use crate::sql::{qualified, quote_ident, SqlError, TableName, Template};

template!(RENAME_COLUMN, "merge/rename_column.sql");

/// One column renamed on the source since the stored shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    pub table: TableName,
    pub from: String,
    pub to: String,
}

/// Mirror table -> its columns (name, data type), as merge/mirror_columns.sql
/// reads them.
pub type MirrorColumns = BTreeMap<String, Vec<(String, String)>>;

/// The renames between each table's stored shape and its newest one.
pub fn renames(changed: &[SinceStored<'_>]) -> Vec<Rename> {
    let mut out = Vec::new();
    for since in changed {
        let (stored, table) = (since.stored, since.stored.shape.table_name());
        let Some(newest) = since.newest() else {
            continue;
        };
        for column in &newest.shape.columns {
            let Some(attnum) = column.attnum else {
                continue;
            };
            let old = stored
                .shape
                .columns
                .iter()
                .find(|c| c.attnum == Some(attnum) && c.name != column.name);
            if let Some(old) = old.filter(|o| newest.shape.columns.iter().all(|c| c.name != o.name))
            {
                out.push(Rename {
                    table: table.clone(),
                    from: old.name.clone(),
                    to: column.name.clone(),
                });
            }
        }
    }
    out
}

/// Gives each renamed column of `tables` its former name, which this run's
/// older events carry.
pub fn remember_former_names(tables: &mut [MirrorTable], renames: &[Rename]) {
    for rename in renames {
        let columns = tables
            .iter_mut()
            .filter(|t| t.source.name == rename.table)
            .flat_map(|t| t.columns.iter_mut());
        for (column, _) in columns.filter(|(c, _)| c.name == rename.to) {
            column.former_names.push(rename.from.clone());
        }
    }
}

/// The statements renaming the mirror's (and the tombstones') columns, for
/// the renames whose old name a table still has and whose new one it has
/// not, and `existing` as it is after them.
pub fn rename_statements(
    objects: &Objects,
    tables: &[MirrorTable],
    renames: &[Rename],
    existing: &MirrorColumns,
) -> Result<(Vec<String>, MirrorColumns), SqlError> {
    let mut after = existing.clone();
    let mut statements = Vec::new();
    for rename in renames {
        let Some(table) = tables.iter().find(|t| t.source.name == rename.table) else {
            continue;
        };
        let (from, to) = (redshift_name(&rename.from), redshift_name(&rename.to));
        let key = table
            .columns
            .iter()
            .any(|(c, _)| c.name == rename.to && c.key_position.is_some());
        let mut targets = vec![table.name.clone()];
        if key {
            targets.push(tombstone_table_name(&table.name));
        }
        for target in targets {
            let has = |name: &str| {
                existing
                    .get(&target)
                    .is_some_and(|cs| cs.iter().any(|(c, _)| c.eq_ignore_ascii_case(name)))
            };
            if !has(&from) || has(&to) {
                continue;
            }
            let mut values = objects.values();
            values.insert("table", qualified(&objects.mirror_schema_name, &target));
            values.insert("from", quote_ident(&from));
            values.insert("to", quote_ident(&to));
            statements.extend(RENAME_COLUMN.render(&values)?);
            for column in after.get_mut(&target).into_iter().flatten() {
                if column.0.eq_ignore_ascii_case(&from) {
                    column.0.clone_from(&to);
                }
            }
            tracing::info!(table = %rename.table, from = %rename.from, to = %rename.to, mirror = %target, "column renamed on the source: renamed in the mirror");
        }
    }
    Ok((statements, after))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::shape;
    use super::super::since_stored;
    use super::*;
    use crate::event::ShapeColumn;

    fn column(name: &str, attnum: Option<i16>) -> ShapeColumn {
        ShapeColumn {
            attnum,
            ..super::super::fixtures::column(name)
        }
    }

    #[test]
    fn a_name_moved_to_another_attnum_is_a_rename_a_new_attnum_is_not() {
        let stored = shape(1, vec![column("id", Some(1)), column("b", Some(2))]);
        let renamed = shape(2, vec![column("id", Some(1)), column("c", Some(2))]);
        let found = renames(&since_stored(&[(stored.clone(), true), (renamed, false)]));
        assert_eq!(
            found,
            [Rename {
                table: TableName::new("public", "t"),
                from: "b".into(),
                to: "c".into()
            }]
        );
        // Dropped and added: the new column has a new attnum.
        let replaced = shape(2, vec![column("id", Some(1)), column("c", Some(3))]);
        assert!(renames(&since_stored(&[(stored.clone(), true), (replaced, false)])).is_empty());
        // Shapes without attnums rename nothing.
        let old = shape(2, vec![column("id", None), column("c", None)]);
        assert!(renames(&since_stored(&[(stored, true), (old, false)])).is_empty());
    }
}
