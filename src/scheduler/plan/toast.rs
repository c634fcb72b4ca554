//! Unchanged TOAST values: an update that did not touch a large column
//! carries a marker instead of its value; these statements resolve each
//! marker from the mirror or an earlier change of the same key.

use crate::scheduler::mapping::ColumnKind;
use crate::source::tables::SourceColumn;
use crate::sql::{self, quote_literal, SqlError, Values};

use super::column_ident;

/// The TOAST statements of one table: merge/toast.sql (the chain of
/// versions), merge/toast_resolve.sql once per group of columns, and
/// merge/toast_unresolved.sql.
pub(super) fn toast_statements(
    values: &mut Values,
    index: usize,
    latest: &str,
    key: &[&(SourceColumn, ColumnKind)],
    toastable: &[&(SourceColumn, ColumnKind)],
) -> Result<Vec<String>, SqlError> {
    let any_placeholder = |alias: &str| {
        (0..toastable.len())
            .map(|n| format!("{alias}.{}", unchanged_marker(n)))
            .collect::<Vec<_>>()
            .join(" OR ")
    };
    let origin_match = key
        .iter()
        .enumerate()
        .map(|(i, (c, _))| format!("p.{} = r.{}", column_ident(c), origin_column(i)))
        .collect::<Vec<_>>()
        .join(" AND ");
    insert_chain_keys(values, key);
    values.insert("links", format!("kinesync_links_{index}"));
    values.insert("chain", format!("kinesync_chain_{index}"));
    values.insert("origin_match_r_p", origin_match);
    values.insert("any_placeholder_r", any_placeholder("r"));
    values.insert("any_placeholder_l", any_placeholder("l"));
    values.insert("set_markers", set_markers(toastable));
    let mut statements = sql::MERGE_TOAST_MARKERS.render(values)?;
    statements.extend(sql::MERGE_TOAST.render(values)?);
    let numbered_toastable: Vec<(usize, &(SourceColumn, ColumnKind))> =
        toastable.iter().copied().enumerate().collect();
    let groups = column_groups(&numbered_toastable, |column| {
        resolve_join(index, 0, column).len() + resolve_set(latest, 0, column).len()
    });
    for (group_index, group) in groups.iter().enumerate() {
        statements.extend(resolve_statements(
            values,
            index,
            group_index,
            latest,
            key,
            group,
        )?);
    }
    statements.extend(unresolved_statement(values, key, toastable)?);
    Ok(statements)
}

/// merge/toast.sql's key columns of the chain of versions (predecessor,
/// position, link and chain keys).
pub(super) fn insert_chain_keys(values: &mut Values, key: &[&(SourceColumn, ColumnKind)]) {
    let numbered = |f: &dyn Fn(usize, &str) -> String| {
        key.iter()
            .enumerate()
            .map(|(i, (c, _))| f(i + 1, &column_ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    values.insert(
        "pred_key_names",
        numbered(&|i, _| format!("x._kinesync_pred_{i}")),
    );
    values.insert(
        "pred_key_columns",
        numbered(&|i, q| format!("p.{q} AS _kinesync_pred_{i}")),
    );
    values.insert(
        "at_key_names",
        numbered(&|i, _| format!("_kinesync_at_{i}")),
    );
    values.insert(
        "link_pred_keys",
        numbered(&|i, _| format!("k._kinesync_pred_{i}")),
    );
    values.insert(
        "chain_key_match",
        key.iter()
            .enumerate()
            .map(|(i, (c, _))| format!("c.{} = w._kinesync_at_{}", column_ident(c), i + 1))
            .collect::<Vec<_>>()
            .join(" AND "),
    );
}

/// merge/toast_markers.sql's SET clauses: each TOAST-able column's marker,
/// from the placeholder for events that predate `unchanged_toast`.
pub(super) fn set_markers(toastable: &[&(SourceColumn, ColumnKind)]) -> String {
    toastable
        .iter()
        .enumerate()
        .map(|(n, (c, k))| {
            let marker = unchanged_marker(n);
            format!(
                "{marker} = CASE WHEN _kinesync_legacy THEN {} ELSE COALESCE({marker}, false) END",
                k.is_placeholder(&column_ident(c))
            )
        })
        .collect::<Vec<_>>()
        .join(",\n    ")
}

/// Bytes of SQL per column group of merge/toast_resolve.sql: well below the
/// Data API's 100 KB per statement.
pub(super) const TOAST_GROUP_BYTES: usize = 40_000;

/// A TOAST-able column and its number among the table's TOAST-able columns
/// (which names its [`unchanged_marker`]).
pub(super) type Toastable<'a> = (usize, &'a (SourceColumn, ColumnKind));

/// The changes table's column saying that the n-th TOAST-able column was
/// left unchanged by the change (merge/table.sql).
pub(super) fn unchanged_marker(n: usize) -> String {
    format!("_kinesync_unchanged_{}", n + 1)
}

/// `columns` cut into consecutive groups whose `size` adds up to at most
/// [`TOAST_GROUP_BYTES`] (a column larger than that gets a group of its own).
pub(super) fn column_groups<'a>(
    columns: &[Toastable<'a>],
    size: impl Fn(&Toastable<'a>) -> usize,
) -> Vec<Vec<Toastable<'a>>> {
    let mut groups: Vec<Vec<Toastable<'a>>> = Vec::new();
    let mut used = 0;
    for column in columns {
        let bytes = size(column);
        match groups.last_mut() {
            Some(group) if used + bytes <= TOAST_GROUP_BYTES => group.push(*column),
            _ => {
                groups.push(vec![*column]);
                used = 0;
            }
        }
        used += bytes;
    }
    groups
}

pub(super) const CHAIN_START: &str = "start_commit_lsn, start_lsn";

/// The subquery of column `i` in merge/toast_resolve.sql: the nearest real
/// value along the chain, and the mirror's value.
pub(super) fn resolve_join(index: usize, i: usize, (n, (column, _)): &Toastable) -> String {
    let q = column_ident(column);
    let alias = format!("v{i}");
    let start = CHAIN_START;
    format!(
        "\n    LEFT JOIN (SELECT {start}, c.{q}, ROW_NUMBER() OVER (PARTITION BY {start} ORDER BY c.depth) AS _kinesync_rank \
         FROM kinesync_chain_{index} AS c WHERE NOT c.{marker}) AS {alias} \
         ON {alias}._kinesync_rank = 1 AND {alias}.start_commit_lsn = s.start_commit_lsn AND {alias}.start_lsn = s.start_lsn",
        marker = unchanged_marker(*n),
    )
}

/// The SET clauses of column `i` in merge/toast_resolve.sql: its value, and
/// its marker cleared once resolved (what merge/toast_unresolved.sql reads).
pub(super) fn resolve_set(latest: &str, i: usize, (n, (column, _)): &Toastable) -> String {
    let q = column_ident(column);
    let marker = unchanged_marker(*n);
    format!(
        "{q} = CASE WHEN NOT {latest}.{marker} THEN {latest}.{q} \
         WHEN p._kinesync_found_{i} IS NOT NULL THEN p._kinesync_value_{i} \
         WHEN p._kinesync_in_mirror THEN p._kinesync_mirror_{i} ELSE {latest}.{q} END,\n    \
         {marker} = {latest}.{marker} AND p._kinesync_found_{i} IS NULL AND NOT p._kinesync_in_mirror"
    )
}

/// merge/toast_resolve.sql for one group of columns.
pub(super) fn resolve_statements(
    values: &mut Values,
    index: usize,
    group_index: usize,
    latest: &str,
    key: &[&(SourceColumn, ColumnKind)],
    group: &[Toastable],
) -> Result<Vec<String>, SqlError> {
    let start = CHAIN_START;
    let mut joins = String::new();
    let mut picked = Vec::new();
    for (i, column) in group.iter().enumerate() {
        joins.push_str(&resolve_join(index, i, column));
        let (_, (c, kind)) = column;
        picked.push(format!(
            "v{i}.{q} AS _kinesync_value_{i}, v{i}._kinesync_rank AS _kinesync_found_{i}, {} AS _kinesync_mirror_{i}",
            kind.unconvert(&format!("m.{}", column_ident(c))),
            q = column_ident(c),
        ));
    }
    // The oldest version's origin key, and the mirror row there.
    let origins = (0..key.len())
        .map(origin_column)
        .collect::<Vec<_>>()
        .join(", ");
    let on_mirror = key
        .iter()
        .enumerate()
        .map(|(i, (c, _))| format!("m.{} = oldest.{}", column_ident(c), origin_column(i)))
        .collect::<Vec<_>>()
        .join(" AND ");
    joins.push_str(&format!(
        "\n    LEFT JOIN (SELECT {start}, {origins}, ROW_NUMBER() OVER (PARTITION BY {start} ORDER BY c.depth DESC) AS _kinesync_rank \
         FROM kinesync_chain_{index} AS c) AS oldest ON oldest._kinesync_rank = 1 AND oldest.start_commit_lsn = s.start_commit_lsn AND oldest.start_lsn = s.start_lsn\
         \n    LEFT JOIN {mirror} AS m ON {on_mirror}",
        mirror = values.get("mirror_table").cloned().unwrap_or_default(),
    ));
    let mirror_found = format!("m.{} IS NOT NULL", column_ident(&key[0].0));
    values.insert(
        "resolved_values",
        format!(
            "SELECT s.start_commit_lsn, s.start_lsn, {mirror_found} AS _kinesync_in_mirror, {} \
             FROM (SELECT DISTINCT {start} FROM kinesync_chain_{index}) AS s{joins}",
            picked.join(", ")
        ),
    );
    values.insert(
        "set_resolved",
        group
            .iter()
            .enumerate()
            .map(|(i, column)| resolve_set(latest, i, column))
            .collect::<Vec<_>>()
            .join(",\n    "),
    );
    values.insert(
        "resolved",
        format!("kinesync_resolved_{index}_{}", group_index + 1),
    );
    sql::MERGE_TOAST_RESOLVE.render(values)
}

/// merge/toast_unresolved.sql: fails the batch on a placeholder left over.
pub(super) fn unresolved_statement(
    values: &mut Values,
    key: &[&(SourceColumn, ColumnKind)],
    toastable: &[&(SourceColumn, ColumnKind)],
) -> Result<Vec<String>, SqlError> {
    let key_text = key
        .iter()
        .map(|(c, k)| {
            format!(
                "COALESCE(CAST({} AS VARCHAR), 'NULL')",
                k.unconvert(&format!("l.{}", column_ident(c)))
            )
        })
        .collect::<Vec<_>>()
        .join(" || ', ' || ");
    let column = toastable
        .iter()
        .enumerate()
        .map(|(n, (c, _))| {
            format!(
                "WHEN l.{} THEN {}",
                unchanged_marker(n),
                quote_literal(&c.name)
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    values.insert("key_text", key_text);
    values.insert("unresolved_column", format!("CASE {column} END"));
    sql::MERGE_TOAST_UNRESOLVED.render(values)
}

/// Name of the n-th origin key column of the changes table.
pub(super) fn origin_column(n: usize) -> String {
    format!("_kinesync_origin_{}", n + 1)
}
