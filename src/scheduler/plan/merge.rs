//! The merge itself: per table, the statements that apply a run's
//! changes to the mirror (latest change per key, delete, insert), in
//! batches the Data API takes.

use crate::scheduler::mapping::ColumnKind;
use crate::source::tables::SourceColumn;
use crate::sql::{self, qualified, quote_ident, quote_literal, SqlError, Values};

use super::setup::{temp_distribution, tombstone_table};
use super::toast::{origin_column, toast_statements, unchanged_marker};
use super::{
    column_ident, MirrorTable, Objects, Pending, MAX_STATEMENTS_PER_BATCH, MAX_TABLES_PER_BATCH,
};

/// One Data API batch of a merge run, one transaction: `head` runs as plain
/// statements (the lease fence, merge/begin.sql's first statement, and the
/// session settings), `body` (everything that reads or changes data) goes
/// through the executor procedure in CALLs ([`super::pack`]), `tail` reads
/// back what each table's merge changed (merge/counts.sql).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeBatch {
    pub head: Vec<String>,
    pub body: Vec<String>,
    pub tail: Vec<String>,
    /// Tables merged by this batch.
    pub tables: usize,
}

impl MergeBatch {
    /// An empty batch of `holder`'s run: fenced, settings made, new events
    /// and the counts table created.
    pub fn opened(objects: &Objects, holder: &str) -> Result<MergeBatch, SqlError> {
        let mut fenced = objects.values();
        fenced.insert("holder", quote_literal(holder));
        Ok(MergeBatch {
            head: sql::MERGE_BEGIN.render(&fenced)?,
            body: sql::MERGE_NEW_EVENTS.render(&objects.values())?,
            tail: vec![sql::MERGE_COUNTS.render_one(&objects.values())?],
            tables: 0,
        })
    }

    /// The statements as the Data API gets them (the body packed into CALLs).
    pub fn wire(&self, objects: &Objects) -> Vec<String> {
        let mut wire = self.head.clone();
        wire.extend(super::pack(objects, &self.body));
        wire.extend(self.tail.iter().cloned());
        wire
    }

    /// How many statements [`MergeBatch::wire`] sends.
    pub fn wire_len(&self, objects: &Objects) -> usize {
        self.head.len() + super::packed_len(objects, &self.body) + self.tail.len()
    }

    /// Every statement, unpacked (what `--print` shows).
    pub fn statements(&self) -> impl Iterator<Item = &String> {
        self.head.iter().chain(&self.body).chain(&self.tail)
    }

    /// Within the Data API's 40 statements and [`MAX_TABLES_PER_BATCH`].
    fn fits(&self, objects: &Objects) -> bool {
        self.tables <= MAX_TABLES_PER_BATCH && self.wire_len(objects) <= MAX_STATEMENTS_PER_BATCH
    }
}

/// One merge run: the tables with pending events, packed into batches of at
/// most [`MAX_TABLES_PER_BATCH`] tables and [`MAX_STATEMENTS_PER_BATCH`]
/// statements as sent. Each batch is one transaction, fenced by `holder`'s
/// merge lease; the last one advances the watermark. Every batch re-derives
/// the new events from the same watermark, and every step is idempotent, so
/// a run cut between batches converges when it runs again.
pub fn merge_batches(
    objects: &Objects,
    holder: &str,
    tables: &[(MirrorTable, Pending)],
) -> Result<Vec<MergeBatch>, SqlError> {
    let commit = sql::MERGE_COMMIT.render(&objects.values())?;
    let mut batches: Vec<MergeBatch> = Vec::new();
    let mut current = MergeBatch::opened(objects, holder)?;
    for (index, (table, pending)) in tables.iter().enumerate() {
        if pending.events == 0 {
            continue;
        }
        let statements = table_merge_statements(objects, table, *pending, index + 1)?;
        current = append(objects, holder, &mut batches, current, statements, 1)?;
    }
    current = append(objects, holder, &mut batches, current, commit, 0)?;
    batches.push(current);
    Ok(batches)
}

/// `current` with `statements` (of `tables` tables) added; when they do
/// not fit beside what it holds, `current` goes to `batches` and a new
/// batch takes them.
fn append(
    objects: &Objects,
    holder: &str,
    batches: &mut Vec<MergeBatch>,
    mut current: MergeBatch,
    statements: Vec<String>,
    tables: usize,
) -> Result<MergeBatch, SqlError> {
    let (had_tables, before) = (current.tables > 0, current.body.len());
    current.body.extend(statements.iter().cloned());
    current.tables += tables;
    if !had_tables || current.fits(objects) {
        return Ok(current);
    }
    current.body.truncate(before);
    current.tables -= tables;
    batches.push(current);
    let mut opened = MergeBatch::opened(objects, holder)?;
    opened.body.extend(statements);
    opened.tables = tables;
    Ok(opened)
}

/// One table's mirror key columns, in key order.
pub(super) type Key<'a> = [&'a (SourceColumn, ColumnKind)];

/// The merge statements of one table (merge/table.sql, with merge/truncate.sql
/// and merge/toast.sql where needed).
pub fn table_merge_statements(
    objects: &Objects,
    table: &MirrorTable,
    pending: Pending,
    index: usize,
) -> Result<Vec<String>, SqlError> {
    let latest = format!("kinesync_latest_{index}");
    let mirror = qualified(&objects.mirror_schema_name, &table.name);
    let tombstones = tombstone_table(objects, table);
    let key = table.key();
    let toastable = table.toastable();
    let mut values = objects.values();
    values.insert("changes", format!("kinesync_changes_{index}"));
    values.insert("latest", latest.clone());
    values.insert("cutoff", format!("kinesync_cutoff_{index}"));
    values.insert("mirror_table", mirror.clone());
    values.insert("mirror_table_literal", quote_literal(&table.name));
    values.insert(
        "table_literal",
        quote_literal(&table.source.qualified_name()),
    );
    values.insert("tombstone_table", tombstones.clone());
    values.insert("temp_distribution", temp_distribution(table));
    values.insert(
        "this_table",
        format!(
            "e.source_table = {} AND e.source_schema = {}",
            quote_literal(&table.source.name.name),
            quote_literal(&table.source.name.schema)
        ),
    );
    insert_change_columns(&mut values, table, &key, &toastable);
    insert_column_lists(&mut values, table, &key);
    let key_match =
        |left: &str, right: &str| key_match(&key, table.source.nullable_key(), left, right);
    values.insert("key_match_latest_m", key_match(&latest, "m"));
    values.insert("key_match_mirror_latest", key_match(&mirror, &latest));
    values.insert(
        "key_match_tombstone_latest",
        key_match(&tombstones, &latest),
    );

    let (truncate, truncate_rows) = if pending.truncates > 0 {
        (
            sql::MERGE_TRUNCATE.render(&values)?,
            sql::MERGE_TRUNCATE_ROWS.render(&values)?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    values.insert("truncate_statements", terminated(&truncate));
    values.insert("truncate_row_statements", terminated(&truncate_rows));
    let toast = if pending.updates > 0 && !toastable.is_empty() {
        toast_statements(&mut values, index, &latest, &key, &toastable)?
    } else {
        Vec::new()
    };
    values.insert("toast_statements", terminated(&toast));
    sql::MERGE_TABLE.render(&values)
}

/// `left` and `right` rows have the same key. A key of every column may
/// hold NULLs (`nullable`): NULL matches NULL (written without IS NOT
/// DISTINCT FROM, which Redshift does not document).
pub(super) fn key_match(key: &Key, nullable: bool, left: &str, right: &str) -> String {
    key.iter()
        .map(|(c, _)| {
            let q = column_ident(c);
            let equal = format!("{left}.{q} = {right}.{q}");
            if nullable {
                format!("({equal} OR ({left}.{q} IS NULL AND {right}.{q} IS NULL))")
            } else {
                equal
            }
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// merge/table.sql's changes table columns: each event's `after` values,
/// its `before` key, and its origin key (the key before this change: the
/// "before" key when the event has one) with the unchanged-TOAST markers.
pub(super) fn insert_change_columns(
    values: &mut Values,
    table: &MirrorTable,
    key: &Key,
    toastable: &Key,
) {
    let nav = |side: &str, (c, k): &(SourceColumn, ColumnKind)| {
        event_value(side, c, &|n: &str| k.extract(n))
    };
    let after_columns = table
        .columns
        .iter()
        .map(|column| format!("{} AS {}", nav("after", column), column_ident(&column.0)))
        .collect::<Vec<_>>()
        .join(",\n       ");
    let before_key_columns = table
        .columns
        .iter()
        .map(|column| match column.0.key_position {
            Some(_) => nav("before", column),
            None => format!("CAST(NULL AS {})", column.1.raw_type()),
        })
        .collect::<Vec<_>>()
        .join(",\n       ");
    let mut origin_columns = key
        .iter()
        .enumerate()
        .map(|(i, column)| {
            format!(
                "COALESCE({}, {}) AS {}",
                nav("before", column),
                nav("after", column),
                origin_column(i)
            )
        })
        .collect::<Vec<_>>()
        .join(",\n       ");
    let mut null_origin_columns = key
        .iter()
        .map(|(_, k)| format!("CAST(NULL AS {})", k.raw_type()))
        .collect::<Vec<_>>()
        .join(",\n       ");
    let (markers, null_markers) = unchanged_columns(toastable);
    origin_columns.push_str(&markers);
    null_origin_columns.push_str(&null_markers);
    values.insert("after_columns", after_columns);
    values.insert("before_key_columns", before_key_columns);
    values.insert("origin_columns", origin_columns);
    values.insert("null_origin_columns", null_origin_columns);
}

/// merge/table.sql's lists of key and mirror columns.
pub(super) fn insert_column_lists(values: &mut Values, table: &MirrorTable, key: &Key) {
    let column_list = |prefix: &str, columns: &Key| {
        columns
            .iter()
            .map(|(c, _)| format!("{prefix}{}", column_ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let all: Vec<_> = table.columns.iter().collect();
    let converted_columns = table
        .columns
        .iter()
        .map(|(c, k)| k.convert(&format!("l.{}", column_ident(c))))
        .collect::<Vec<_>>()
        .join(", ");
    values.insert("key_list", column_list("", key));
    values.insert("column_list", column_list("", &all));
    values.insert("key_column_list", column_list("", key));
    values.insert("latest_key_columns", column_list("l.", key));
    values.insert("converted_columns", converted_columns);
}

/// The changes table's columns (after its origin key columns) per TOAST-able
/// column: the event's `unchanged_toast` entry, finished by
/// merge/toast_markers.sql, and `_kinesync_legacy`, whether the event
/// predates that field. Returns (the upsert branch's, the delete branch's).
pub(super) fn unchanged_columns(toastable: &[&(SourceColumn, ColumnKind)]) -> (String, String) {
    let (mut markers, mut null_markers) = (String::new(), String::new());
    for (n, (c, _)) in toastable.iter().enumerate() {
        let marker = unchanged_marker(n);
        let entry = event_value("unchanged_toast", c, &|n: &str| format!("{n}::boolean"));
        markers.push_str(&format!(",\n       {entry} AS {marker}"));
        null_markers.push_str(&format!(",\n       CAST(NULL AS BOOLEAN) AS {marker}"));
    }
    if !toastable.is_empty() {
        markers.push_str(
            ",\n       (e.op = 'u' AND e.payload.\"unchanged_toast\" IS NULL) AS _kinesync_legacy",
        );
        null_markers.push_str(",\n       false AS _kinesync_legacy");
    }
    (markers, null_markers)
}

/// An event's value of `column` in `side` (`after`, `before`,
/// `unchanged_toast`), through `cast` (the navigation to the value's SQL):
/// under the name the event's position had (a column renamed since the
/// event: scheduler/shapes/rename.rs), else under its name. Each branch
/// casts its own navigation, so the cast reads SUPER as Redshift does.
pub(super) fn event_value(
    side: &str,
    column: &SourceColumn,
    cast: &dyn Fn(&str) -> String,
) -> String {
    let at = |name: &str| cast(&format!("e.payload.\"{side}\".{}", quote_ident(name)));
    if column.former_names.is_empty() {
        return at(&column.name);
    }
    let commit = "e.payload.\"source\".\"commit_lsn\"::bigint";
    let lsn = "e.payload.\"source\".\"lsn\"::bigint";
    let branches: String = column
        .former_names
        .iter()
        .map(|former| {
            let (c, l) = (former.until.0 .0, former.until.1 .0);
            format!(
                "WHEN {commit} < {c} OR ({commit} = {c} AND {lsn} < {l}) THEN {} ",
                at(&former.name)
            )
        })
        .collect();
    format!("CASE {branches}ELSE {} END", at(&column.name))
}

/// Statements re-joined so that they survive another render's split.
pub(super) fn terminated(statements: &[String]) -> String {
    statements.iter().map(|s| format!("{s};\n")).collect()
}
