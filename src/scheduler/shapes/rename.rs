//! Renamed columns: `ALTER TABLE t RENAME COLUMN b TO c` on the source.
//!
//! A shape names its columns and gives each its `attnum`, which a rename
//! keeps and a drop and an add do not. Following each attnum of the stored
//! shape (what the mirror was merged with) through this run's shape
//! records, in position order, gives the names the column had and from
//! which position each applies. Then (1) the mirror column is renamed from
//! its stored name to its newest (and the tombstones' one, for a key
//! column) before the schema-change step, which would otherwise add the new
//! name as an empty column and leave the values under the old one; every
//! renamed column of a table first goes to a temporary name, so that names
//! that swap or move along a chain never collide, and a mirror column left
//! by a dropped source column whose name a rename takes is kept aside under
//! `<name>_kinesync_dropped`; one batch (one transaction) per table, so a run
//! cut short renames all or nothing. (2) This run's events carry the name
//! their position had: the merge reads each event's value under that name
//! (`SourceColumn::former_names`, each with the position the next name
//! applies from: the first shape record carrying it; pgoutput sends a
//! table's Relation message before its first change after a schema change).
//!
//! Shapes without attnums (older producers) rename nothing: the new name
//! is added, as before.

use std::collections::BTreeMap;

use super::SinceStored;
use crate::scheduler::plan::{redshift_name, tombstone_table_name, MirrorTable, Objects};
use crate::source::tables::FormerName;
use crate::sql::{qualified, quote_ident, SqlError, TableName, Template};

template!(RENAME_COLUMN, "merge/rename_column.sql");

/// One column renamed on the source since the stored shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    pub table: TableName,
    /// The name the mirror has (the stored shape's).
    pub from: String,
    /// The newest name (equal to `from` when renamed and renamed back).
    pub to: String,
    /// The names before the newest, in position order, each with the
    /// position from which the next one applies.
    pub former: Vec<FormerName>,
}

/// Mirror table -> its columns (name, data type), as merge/mirror_columns.sql
/// reads them.
pub type MirrorColumns = BTreeMap<String, Vec<(String, String)>>;

/// The renames between each table's stored shape and its records since.
pub fn renames(changed: &[SinceStored<'_>]) -> Vec<Rename> {
    let mut out = Vec::new();
    for since in changed {
        let table = since.stored.shape.table_name();
        for column in &since.stored.shape.columns {
            let Some(attnum) = column.attnum else {
                continue;
            };
            if let Some((to, former)) = names_of(since, attnum, &column.name) {
                out.push(Rename {
                    table: table.clone(),
                    from: column.name.clone(),
                    to,
                    former,
                });
            }
        }
    }
    out
}

/// The attnum's newest name and the names before it, through the run's
/// records; `None` when never renamed, or dropped since.
///
/// A record may name a column without its attnum: the producer looks
/// attnums up by name in the catalog, which may be newer than the record
/// (renamed again since). pgoutput lists a table's columns in attnum
/// order, so such a column is found by its place, when the record has as
/// many columns as the last one that placed the attnum and a later record
/// still has the attnum (so it was not dropped and another added there).
fn names_of(
    since: &SinceStored<'_>,
    attnum: i16,
    stored: &str,
) -> Option<(String, Vec<FormerName>)> {
    let place = |columns: &[crate::event::ShapeColumn]| {
        columns.iter().position(|c| c.attnum == Some(attnum))
    };
    let mut layout = (
        place(&since.stored.shape.columns)?,
        since.stored.shape.columns.len(),
    );
    let mut current = stored.to_owned();
    let mut former = Vec::new();
    let last_placed = since
        .records
        .iter()
        .rposition(|r| place(&r.shape.columns).is_some());
    for (i, record) in since.records.iter().enumerate() {
        let columns = &record.shape.columns;
        let confirmed = last_placed.is_some_and(|last| i < last);
        let column = match place(columns) {
            Some(at) => {
                layout = (at, columns.len());
                &columns[at]
            }
            None if confirmed
                && columns.len() == layout.1
                && columns[layout.0].attnum.is_none() =>
            {
                &columns[layout.0]
            }
            None if columns.iter().any(|c| c.attnum.is_none()) => continue,
            None => return None, // dropped
        };
        if column.name != current {
            let until = (record.position.commit_lsn, record.position.lsn);
            former.push(FormerName {
                name: std::mem::replace(&mut current, column.name.clone()),
                until,
            });
        }
    }
    (!former.is_empty()).then_some((current, former))
}

/// Gives each renamed column of `tables` the names this run's older events
/// carry.
pub fn remember_former_names(tables: &mut [MirrorTable], renames: &[Rename]) {
    for rename in renames {
        let columns = tables
            .iter_mut()
            .filter(|t| t.source.name == rename.table)
            .flat_map(|t| t.columns.iter_mut());
        for (column, _) in columns.filter(|(c, _)| c.name == rename.to) {
            column.former_names.clone_from(&rename.former);
        }
    }
}

/// The batches (one per table) renaming the mirror's (and the
/// tombstones') columns from their stored names to their newest, and
/// `existing` as it is after them.
pub fn rename_statements(
    objects: &Objects,
    tables: &[MirrorTable],
    renames: &[Rename],
    existing: &MirrorColumns,
) -> Result<(Vec<Vec<String>>, MirrorColumns), SqlError> {
    let mut after = existing.clone();
    let mut batches = Vec::new();
    for table in tables {
        let mine: Vec<&Rename> = renames
            .iter()
            .filter(|r| {
                r.table == table.source.name && redshift_name(&r.from) != redshift_name(&r.to)
            })
            .collect();
        let is_key = |r: &&Rename| {
            table
                .columns
                .iter()
                .any(|(c, _)| c.name == r.to && c.key_position.is_some())
        };
        let keys: Vec<&Rename> = mine.iter().copied().filter(is_key).collect();
        let mut batch = Vec::new();
        for (target, list) in [
            (table.name.clone(), &mine),
            (tombstone_table_name(&table.name), &keys),
        ] {
            let Some(columns) = after.get_mut(&target) else {
                continue;
            };
            batch.extend(rename_in(objects, &target, list, columns)?);
        }
        if !batch.is_empty() {
            for rename in &mine {
                tracing::info!(table = %rename.table, from = %rename.from, to = %rename.to, "column renamed on the source: renamed in the mirror");
            }
            batches.push(batch);
        }
    }
    Ok((batches, after))
}

/// One mirror table's renames: every column to a temporary name, a column
/// a new name would collide with (left by a dropped source column) aside,
/// then each to its new name; `columns` follows.
fn rename_in(
    objects: &Objects,
    target: &str,
    renames: &[&Rename],
    columns: &mut [(String, String)],
) -> Result<Vec<String>, SqlError> {
    let has = |columns: &[(String, String)], name: &str| {
        columns.iter().any(|(c, _)| c.eq_ignore_ascii_case(name))
    };
    let moving: Vec<(String, String)> = renames
        .iter()
        .map(|r| (redshift_name(&r.from), redshift_name(&r.to)))
        .filter(|(from, _)| has(columns, from))
        .collect();
    let mut steps: Vec<(String, String)> = Vec::new();
    for (i, (from, _)) in moving.iter().enumerate() {
        steps.push((from.clone(), format!("_kinesync_renaming_{i}")));
    }
    for (_, to) in &moving {
        if has(columns, to) && !moving.iter().any(|(from, _)| from == to) {
            let aside = (1..)
                .map(|n| {
                    redshift_name(&format!(
                        "{to}_kinesync_dropped{}",
                        if n == 1 {
                            String::new()
                        } else {
                            format!("_{n}")
                        }
                    ))
                })
                .find(|name| !has(columns, name))
                .unwrap_or_default();
            steps.push((to.clone(), aside));
        }
    }
    for (i, (_, to)) in moving.iter().enumerate() {
        steps.push((format!("_kinesync_renaming_{i}"), to.clone()));
    }
    let mut statements = Vec::new();
    for (from, to) in steps {
        let mut values = objects.values();
        values.insert("table", qualified(&objects.mirror_schema_name, target));
        values.insert("from", quote_ident(&from));
        values.insert("to", quote_ident(&to));
        statements.extend(RENAME_COLUMN.render(&values)?);
        for column in columns
            .iter_mut()
            .filter(|(c, _)| c.eq_ignore_ascii_case(&from))
        {
            column.0.clone_from(&to);
        }
    }
    Ok(statements)
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

    fn until(position: u64) -> (crate::lsn::Lsn, crate::lsn::Lsn) {
        let at = shape(position, Vec::new()).position;
        (at.commit_lsn, at.lsn)
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
                to: "c".into(),
                former: vec![FormerName {
                    name: "b".into(),
                    until: until(2)
                }],
            }]
        );
        // Dropped and added: the new column has a new attnum.
        let replaced = shape(2, vec![column("id", Some(1)), column("c", Some(3))]);
        assert!(renames(&since_stored(&[(stored.clone(), true), (replaced, false)])).is_empty());
        // Shapes without attnums rename nothing.
        let old = shape(2, vec![column("id", None), column("c", None)]);
        assert!(renames(&since_stored(&[(stored, true), (old, false)])).is_empty());
    }

    #[test]
    fn swaps_and_chains_are_followed_record_by_record() {
        let stored = shape(1, vec![column("a", Some(1)), column("b", Some(2))]);
        let swapped = shape(5, vec![column("b", Some(1)), column("a", Some(2))]);
        let found = renames(&since_stored(&[(stored.clone(), true), (swapped, false)]));
        let pairs: Vec<_> = found
            .iter()
            .map(|r| (r.from.as_str(), r.to.as_str()))
            .collect();
        assert_eq!(pairs, [("a", "b"), ("b", "a")]);
        // b -> c -> d within one run: events between the two records carry c.
        let c = shape(3, vec![column("a", Some(1)), column("c", Some(2))]);
        let d = shape(7, vec![column("a", Some(1)), column("d", Some(2))]);
        let found = renames(&since_stored(&[(stored, true), (c, false), (d, false)]));
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].from.as_str(), found[0].to.as_str()), ("b", "d"));
        let former: Vec<_> = found[0]
            .former
            .iter()
            .map(|f| (f.name.as_str(), f.until))
            .collect();
        assert_eq!(former, [("b", until(3)), ("c", until(7))]);
        // The producer found no attnum for a name renamed again since: the
        // column is found by its place.
        let stored = shape(1, vec![column("a", Some(1)), column("b", Some(2))]);
        let c = shape(3, vec![column("a", Some(1)), column("c", None)]);
        let d = shape(7, vec![column("a", Some(1)), column("d", Some(2))]);
        let found = renames(&since_stored(&[
            (stored.clone(), true),
            (c, false),
            (d, false),
        ]));
        let former: Vec<_> = found[0]
            .former
            .iter()
            .map(|f| (f.name.as_str(), f.until))
            .collect();
        assert_eq!(former, [("b", until(3)), ("c", until(7))]);
        // Not when a column was added or dropped in between: skipped.
        let moved = shape(
            3,
            vec![column("a", Some(1)), column("x", None), column("c", None)],
        );
        let found = renames(&since_stored(&[(stored, true), (moved, false)]));
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn swapped_names_go_through_temporary_ones_and_a_dropped_column_is_kept_aside() {
        let config = super::super::tests::config(r#"["public.t"]"#);
        let objects = Objects::new(&config, config.redshift.as_ref().unwrap());
        let rename = |from: &str, to: &str| Rename {
            table: TableName::new("public", "t"),
            from: from.into(),
            to: to.into(),
            former: Vec::new(),
        };
        let mut columns: Vec<(String, String)> = ["a", "b", "c", "old"]
            .iter()
            .map(|c| (c.to_string(), "integer".to_string()))
            .collect();
        // a <-> b swap; c renamed to "old", a name a dropped column left.
        let (ab, ba, c) = (rename("a", "b"), rename("b", "a"), rename("c", "old"));
        let statements = rename_in(&objects, "t", &[&ab, &ba, &c], &mut columns).unwrap();
        let steps: Vec<String> = statements
            .iter()
            .map(|s| {
                s.trim_start_matches("ALTER TABLE \"mirror\".\"t\" RENAME COLUMN ")
                    .to_owned()
            })
            .collect();
        assert_eq!(
            steps,
            [
                "\"a\" TO \"_kinesync_renaming_0\"",
                "\"b\" TO \"_kinesync_renaming_1\"",
                "\"c\" TO \"_kinesync_renaming_2\"",
                "\"old\" TO \"old_kinesync_dropped\"",
                "\"_kinesync_renaming_0\" TO \"b\"",
                "\"_kinesync_renaming_1\" TO \"a\"",
                "\"_kinesync_renaming_2\" TO \"old\"",
            ]
        );
        let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(names, ["b", "a", "old", "old_kinesync_dropped"]);
    }
}
