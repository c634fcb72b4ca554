//! Turns configuration + source catalog into the exact SQL statements of
//! `setup` and of one merge run, from the templates in `sql/`.
//!
//! Pure functions, no I/O: what is generated here is what the golden tests
//! pin down and what `--print` shows.

use std::collections::BTreeMap;

use crate::config::{Config, RedshiftConfig};
use crate::source::tables::{SourceColumn, SourceTable};
use crate::sql::{self, qualified, quote_ident, quote_literal, SqlError, TableName, Values};

use super::mapping::ColumnKind;

/// Why the source schema cannot be mapped onto the mirror.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(
        "column {column} of {table} changed type to {source_type}, which the mirror column ({mirror_type}) cannot hold; \
         fix by hand: ALTER TABLE {mirror} DROP COLUMN {column_q}; ALTER TABLE {mirror} ADD COLUMN {column_q} {redshift_type}; \
         then re-sync the table (see docs/operations.md)",
        table = .0.table, column = .0.column, source_type = .0.source_type, mirror_type = .0.mirror_type,
        mirror = .0.mirror, redshift_type = .0.redshift_type, column_q = quote_ident(&.0.column)
    )]
    TypeChanged(Box<TypeChange>),
    #[error(
        "columns {first} and {second} of {table} differ only by case, but Redshift folds identifiers to lower case, \
         so both would be mirror column {folded}: rename one on the source (ALTER TABLE {table} RENAME COLUMN {second} TO ...)",
        first = quote_ident(.first), second = quote_ident(.second), folded = quote_ident(&redshift_name(.first))
    )]
    ColumnCaseCollision {
        table: String,
        first: String,
        second: String,
    },
    #[error(
        "source tables {first} and {second} would both be mirror table {mirror} (Redshift folds identifiers to lower case): \
         mirror only one of them"
    )]
    TableNameCollision {
        first: String,
        second: String,
        mirror: String,
    },
}

/// Refuses source tables whose mirror names, or whose columns' mirror
/// names, would collide once Redshift folds them to lower case.
pub fn check_mirror_names(tables: &[MirrorTable]) -> Result<(), PlanError> {
    let mut mirror_names: BTreeMap<String, &MirrorTable> = BTreeMap::new();
    for table in tables {
        let mut columns: BTreeMap<String, &str> = BTreeMap::new();
        for column in &table.source.columns {
            if let Some(first) = columns.insert(redshift_name(&column.name), &column.name) {
                return Err(PlanError::ColumnCaseCollision {
                    table: table.source.qualified_name(),
                    first: first.to_owned(),
                    second: column.name.clone(),
                });
            }
        }
        if let Some(first) = mirror_names.insert(table.name.clone(), table) {
            return Err(PlanError::TableNameCollision {
                first: first.source.qualified_name(),
                second: table.source.qualified_name(),
                mirror: quote_ident(&table.name),
            });
        }
    }
    Ok(())
}

/// A source column type the mirror column cannot hold.
#[derive(Debug)]
pub struct TypeChange {
    pub table: String,
    pub column: String,
    pub mirror_type: String,
    pub source_type: String,
    pub mirror: String,
    pub redshift_type: String,
}

/// The Data API runs at most this many statements in one batch.
pub const MAX_STATEMENTS_PER_BATCH: usize = 40;

/// Names of the Redshift objects kinesync owns, quoted and ready for SQL.
#[derive(Debug, Clone)]
pub struct Objects {
    pub external_schema: String,
    pub stream: String,
    pub stream_role: String,
    pub mirror_schema_name: String,
    pub mirror_schema: String,
    pub events_view_name: String,
    pub events_view: String,
    pub checkpoint: String,
    pub table_state: String,
    pub lease: String,
    pub merge_status: String,
    pub refresh_log: String,
}

impl Objects {
    pub fn new(config: &Config, redshift: &RedshiftConfig) -> Objects {
        let stream_role = if redshift.stream_role_arn == "default" {
            "default".to_owned()
        } else {
            quote_literal(&redshift.stream_role_arn)
        };
        // Named as Redshift stores them, so that they are the same objects
        // with and without enable_case_sensitive_identifier.
        let schema = redshift_name(&redshift.mirror_schema);
        Objects {
            external_schema: quote_ident(&redshift_name(&redshift.external_schema)),
            stream: quote_ident(config.stream_name()),
            stream_role,
            events_view_name: redshift.events_view.clone(),
            events_view: qualified(&schema, &redshift_name(&redshift.events_view)),
            checkpoint: qualified(&schema, "kinesync_checkpoint"),
            table_state: qualified(&schema, "kinesync_table_state"),
            lease: qualified(&schema, "kinesync_lease"),
            merge_status: qualified(&schema, "kinesync_merge_status"),
            refresh_log: qualified(&schema, "kinesync_refresh_log"),
            mirror_schema: quote_ident(&schema),
            mirror_schema_name: schema,
        }
    }

    pub(crate) fn values(&self) -> Values {
        Values::from([
            ("external_schema", self.external_schema.clone()),
            ("stream", self.stream.clone()),
            ("stream_role", self.stream_role.clone()),
            ("mirror_schema", self.mirror_schema.clone()),
            ("events_view", self.events_view.clone()),
            ("events_view_literal", quote_literal(&self.events_view_name)),
            ("checkpoint", self.checkpoint.clone()),
            ("table_state", self.table_state.clone()),
            ("lease", self.lease.clone()),
            ("merge_status", self.merge_status.clone()),
            ("refresh_log", self.refresh_log.clone()),
        ])
    }
}

/// A source table and its mirror.
#[derive(Debug, Clone)]
pub struct MirrorTable {
    pub source: SourceTable,
    /// Unquoted name of the mirror table inside the mirror schema.
    pub name: String,
    pub columns: Vec<(SourceColumn, ColumnKind)>,
}

impl MirrorTable {
    /// `public.orders` mirrors to `orders`; `sales.orders` to `sales__orders`.
    pub fn new(source: SourceTable) -> MirrorTable {
        let name = redshift_name(&if source.name.schema == "public" {
            source.name.name.clone()
        } else {
            format!("{}__{}", source.name.schema, source.name.name)
        });
        let columns = source
            .columns
            .iter()
            .map(|c| (c.clone(), ColumnKind::of(c)))
            .collect();
        MirrorTable {
            source,
            name,
            columns,
        }
    }

    /// The key columns, in key order.
    pub fn key(&self) -> Vec<&(SourceColumn, ColumnKind)> {
        let mut key: Vec<_> = self
            .columns
            .iter()
            .filter(|(c, _)| c.key_position.is_some())
            .collect();
        key.sort_by_key(|(c, _)| c.key_position);
        key
    }

    fn toastable(&self) -> Vec<&(SourceColumn, ColumnKind)> {
        self.columns
            .iter()
            .filter(|(c, k)| k.toastable() && c.key_position.is_none())
            .collect()
    }
}

/// What one merge run will see for one table (from `merge/pending.sql`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    pub events: u64,
    pub truncates: u64,
    pub updates: u64,
}

/// `setup`: everything but the events view, in order, idempotent.
pub fn setup_statements(
    objects: &Objects,
    tables: &[MirrorTable],
) -> Result<Vec<String>, SqlError> {
    let values = objects.values();
    let mut statements = sql::SETUP_STREAM.render(&values)?;
    statements.extend(sql::SETUP_BOOKKEEPING.render(&values)?);
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
    sql::SETUP_MIRROR_TABLE.render(&values)
}

fn tombstone_table(objects: &Objects, table: &MirrorTable) -> String {
    qualified(
        &objects.mirror_schema_name,
        &redshift_name(&format!("kinesync_tombstones__{}", table.name)),
    )
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
                        let family = super::mapping::Family::of_data_type(data_type);
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

/// The merge lease: (acquire batch, holder query, release statement).
pub fn lease_statements(
    objects: &Objects,
    holder: &str,
    lease_seconds: u64,
) -> Result<(Vec<String>, String, String), SqlError> {
    let mut values = objects.values();
    values.insert("holder", quote_literal(holder));
    values.insert("lease_seconds", lease_seconds.to_string());
    Ok((
        sql::MERGE_LEASE_ACQUIRE.render(&values)?,
        sql::MERGE_LEASE_HOLDER.render_one(&values)?,
        sql::MERGE_LEASE_RELEASE.render_one(&values)?,
    ))
}

/// The batch recording a run's outcome (`ok` or `failed`) for `kinesync status`.
pub fn record_status_statements(
    objects: &Objects,
    result: &str,
    detail: &str,
) -> Result<Vec<String>, SqlError> {
    let mut values = objects.values();
    values.insert("result", quote_literal(result));
    values.insert(
        "detail",
        quote_literal(truncate_bytes(detail, MAX_DETAIL_BYTES)),
    );
    sql::MERGE_RECORD_STATUS.render(&values)
}

/// The merge status detail column is VARCHAR(1024): Redshift counts bytes.
const MAX_DETAIL_BYTES: usize = 1024;

/// The longest prefix of `text` of whole characters in at most `max` bytes.
pub fn truncate_bytes(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Redshift's longest identifier, in bytes: longer names are truncated
/// (r_CREATE_TABLE_NEW, r_names).
pub const MAX_IDENTIFIER_BYTES: usize = 127;

/// An identifier as Redshift stores it: ASCII letters folded to lower case
/// (other letters keep theirs, r_names), and a name over 127 bytes
/// shortened to a prefix and a hash of the whole name, so that two long
/// names never become one by truncation.
pub fn redshift_name(name: &str) -> String {
    let folded = name.to_ascii_lowercase();
    if folded.len() <= MAX_IDENTIFIER_BYTES {
        return folded;
    }
    // FNV-1a, 64 bits: stable across releases, unlike std's hasher.
    let hash = folded.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let suffix = format!("_{hash:016x}");
    let prefix = truncate_bytes(&folded, MAX_IDENTIFIER_BYTES - suffix.len());
    format!("{prefix}{suffix}")
}

/// A mirror column's identifier (also in the merge's temp tables).
fn column_ident(column: &SourceColumn) -> String {
    quote_ident(&redshift_name(&column.name))
}

/// The statement dropping the lease of `stale_holder` (a scheduler known to be gone).
pub fn lease_break_statement(objects: &Objects, stale_holder: &str) -> Result<String, SqlError> {
    let mut values = objects.values();
    values.insert("stale_holder", quote_literal(stale_holder));
    sql::MERGE_LEASE_BREAK.render_one(&values)
}

/// The statement reading (previous refresh, now), see merge/last_refresh.sql.
pub fn last_refresh_statement(objects: &Objects) -> Result<String, SqlError> {
    sql::MERGE_LAST_REFRESH.render_one(&objects.values())
}

/// The batch recording a refresh that started at `refreshed_at` (Redshift's clock, as text).
pub fn refresh_done_statements(
    objects: &Objects,
    refreshed_at: &str,
) -> Result<Vec<String>, SqlError> {
    let mut values = objects.values();
    values.insert("refreshed_at", quote_literal(refreshed_at));
    sql::MERGE_REFRESH_DONE.render(&values)
}

/// The statement that counts pending events per table and operation.
pub fn pending_statement(objects: &Objects) -> Result<String, SqlError> {
    sql::MERGE_PENDING.render_one(&objects.values())
}

/// The statement that pulls new records from the stream into the view.
pub fn refresh_statement(objects: &Objects) -> Result<String, SqlError> {
    sql::MERGE_REFRESH.render_one(&objects.values())
}

/// One merge run: the tables with pending events, packed into batches of at
/// most [`MAX_STATEMENTS_PER_BATCH`] statements. Each batch is one
/// transaction; the last one advances the watermark. Every batch re-derives
/// the new events from the same watermark, and every step is idempotent, so
/// a run cut between batches converges when it runs again.
pub fn merge_batches(
    objects: &Objects,
    tables: &[(MirrorTable, Pending)],
) -> Result<Vec<Vec<String>>, SqlError> {
    let begin = sql::MERGE_BEGIN.render(&objects.values())?;
    let commit = sql::MERGE_COMMIT.render(&objects.values())?;
    let mut batches: Vec<Vec<String>> = Vec::new();
    let mut current = begin.clone();
    for (index, (table, pending)) in tables.iter().enumerate() {
        if pending.events == 0 {
            continue;
        }
        let statements = table_merge_statements(objects, table, *pending, index + 1)?;
        if current.len() > begin.len()
            && current.len() + statements.len() > MAX_STATEMENTS_PER_BATCH
        {
            batches.push(std::mem::replace(&mut current, begin.clone()));
        }
        current.extend(statements);
    }
    if current.len() + commit.len() > MAX_STATEMENTS_PER_BATCH {
        batches.push(std::mem::replace(&mut current, begin.clone()));
    }
    current.extend(commit);
    batches.push(current);
    Ok(batches)
}

/// One table's mirror key columns, in key order.
type Key<'a> = [&'a (SourceColumn, ColumnKind)];

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
    values.insert(
        "this_table",
        format!(
            "e.payload.\"source\".\"schema\"::varchar = {} AND e.payload.\"source\".\"table\"::varchar = {}",
            quote_literal(&table.source.name.schema),
            quote_literal(&table.source.name.name)
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

    let truncate = if pending.truncates > 0 {
        sql::MERGE_TRUNCATE.render(&values)?
    } else {
        Vec::new()
    };
    values.insert("truncate_statements", terminated(&truncate));
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
fn key_match(key: &Key, nullable: bool, left: &str, right: &str) -> String {
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
fn insert_change_columns(values: &mut Values, table: &MirrorTable, key: &Key, toastable: &Key) {
    let nav = |side: &str, column: &str| format!("e.payload.\"{side}\".{}", quote_ident(column));
    let after_columns = table
        .columns
        .iter()
        .map(|(c, k)| {
            format!(
                "{} AS {}",
                k.extract(&nav("after", &c.name)),
                column_ident(c)
            )
        })
        .collect::<Vec<_>>()
        .join(",\n       ");
    let before_key_columns = table
        .columns
        .iter()
        .map(|(c, k)| match c.key_position {
            Some(_) => k.extract(&nav("before", &c.name)),
            None => format!("CAST(NULL AS {})", k.raw_type()),
        })
        .collect::<Vec<_>>()
        .join(",\n       ");
    let mut origin_columns = key
        .iter()
        .enumerate()
        .map(|(i, (c, k))| {
            format!(
                "COALESCE({}, {}) AS {}",
                k.extract(&nav("before", &c.name)),
                k.extract(&nav("after", &c.name)),
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
    let (markers, null_markers) = unchanged_columns(toastable, &nav);
    origin_columns.push_str(&markers);
    null_origin_columns.push_str(&null_markers);
    values.insert("after_columns", after_columns);
    values.insert("before_key_columns", before_key_columns);
    values.insert("origin_columns", origin_columns);
    values.insert("null_origin_columns", null_origin_columns);
}

/// merge/table.sql's lists of key and mirror columns.
fn insert_column_lists(values: &mut Values, table: &MirrorTable, key: &Key) {
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
fn unchanged_columns(
    toastable: &[&(SourceColumn, ColumnKind)],
    nav: &dyn Fn(&str, &str) -> String,
) -> (String, String) {
    let (mut markers, mut null_markers) = (String::new(), String::new());
    for (n, (c, _)) in toastable.iter().enumerate() {
        let marker = unchanged_marker(n);
        let entry = nav("unchanged_toast", &c.name);
        markers.push_str(&format!(",\n       {entry}::boolean AS {marker}"));
        null_markers.push_str(&format!(",\n       CAST(NULL AS BOOLEAN) AS {marker}"));
    }
    if !toastable.is_empty() {
        markers.push_str(
            ",\n       (e.payload.\"op\"::varchar = 'u' AND e.payload.\"unchanged_toast\" IS NULL) AS _kinesync_legacy",
        );
        null_markers.push_str(",\n       false AS _kinesync_legacy");
    }
    (markers, null_markers)
}

/// Statements re-joined so that they survive another render's split.
fn terminated(statements: &[String]) -> String {
    statements.iter().map(|s| format!("{s};\n")).collect()
}

/// The TOAST statements of one table: merge/toast.sql (the chain of
/// versions), merge/toast_resolve.sql once per group of columns, and
/// merge/toast_unresolved.sql.
fn toast_statements(
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
fn insert_chain_keys(values: &mut Values, key: &[&(SourceColumn, ColumnKind)]) {
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
fn set_markers(toastable: &[&(SourceColumn, ColumnKind)]) -> String {
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
const TOAST_GROUP_BYTES: usize = 40_000;

/// A TOAST-able column and its number among the table's TOAST-able columns
/// (which names its [`unchanged_marker`]).
type Toastable<'a> = (usize, &'a (SourceColumn, ColumnKind));

/// The changes table's column saying that the n-th TOAST-able column was
/// left unchanged by the change (merge/table.sql).
fn unchanged_marker(n: usize) -> String {
    format!("_kinesync_unchanged_{}", n + 1)
}

/// `columns` cut into consecutive groups whose `size` adds up to at most
/// [`TOAST_GROUP_BYTES`] (a column larger than that gets a group of its own).
fn column_groups<'a>(
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

const CHAIN_START: &str = "start_commit_lsn, start_lsn";

/// The subquery of column `i` in merge/toast_resolve.sql: the nearest real
/// value along the chain, and the mirror's value.
fn resolve_join(index: usize, i: usize, (n, (column, _)): &Toastable) -> String {
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
fn resolve_set(latest: &str, i: usize, (n, (column, _)): &Toastable) -> String {
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
fn resolve_statements(
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
fn unresolved_statement(
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
fn origin_column(n: usize) -> String {
    format!("_kinesync_origin_{}", n + 1)
}

/// Pending counts per table, from the rows of `pending_statement`.
pub fn pending_by_table(rows: &[(String, String, String, u64)]) -> BTreeMap<TableName, Pending> {
    let mut pending: BTreeMap<TableName, Pending> = BTreeMap::new();
    for (schema, table, op, events) in rows {
        let entry = pending.entry(TableName::new(schema, table)).or_default();
        entry.events += events;
        match op.as_str() {
            "t" => entry.truncates += events,
            "u" => entry.updates += events,
            _ => {}
        }
    }
    pending
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn column(name: &str, type_name: &str, type_oid: u32, key: Option<usize>) -> SourceColumn {
        let category = if type_name.ends_with("[]") { 'A' } else { 'U' };
        SourceColumn {
            name: name.into(),
            type_name: type_name.into(),
            declared_oid: type_oid,
            type_oid,
            category,
            key_position: key,
            in_identity: key.is_some(),
        }
    }

    fn table(schema: &str, name: &str, columns: Vec<SourceColumn>) -> SourceTable {
        SourceTable {
            oid: 0,
            name: TableName::new(schema, name),
            replica_identity: crate::source::pgoutput::ReplicaIdentity::Default,
            columns,
            key: crate::source::tables::KeyKind::PrimaryKey,
        }
    }

    fn config() -> Config {
        let text = r#"
            [source]
            url = "postgres://u@h/db"
            tables = ["public.orders", "sales.Line Items"]
            [kinesis]
            stream = "kinesync-cdc"
            [redshift]
            workgroup = "w"
            database = "dev"
            stream_role_arn = "arn:aws:iam::123456789012:role/r"
        "#;
        Config::from_toml_with_env(text, &BTreeMap::new()).unwrap()
    }

    fn tables() -> Vec<MirrorTable> {
        let orders = table(
            "public",
            "orders",
            vec![
                column("id", "bigint", 20, Some(1)),
                column("amount", "numeric(12,2)", 1700, None),
                column("note", "text", 25, None),
                column("doc", "jsonb", 3802, None),
                column("at", "timestamp with time zone", 1184, None),
            ],
        );
        let lines = table(
            "sales",
            "Line Items",
            vec![
                column("order_id", "bigint", 20, Some(1)),
                column("Line\"No", "integer", 23, Some(2)),
                column("data", "bytea", 17, None),
            ],
        );
        vec![MirrorTable::new(orders), MirrorTable::new(lines)]
    }

    /// The generated SQL for a two-table source, pinned in tests/golden/.
    /// Regenerate with KINESYNC_UPDATE_GOLDEN=1 after an intended change.
    #[test]
    fn generated_sql_matches_the_golden_file() {
        let config = config();
        let objects = Objects::new(&config, config.redshift.as_ref().unwrap());
        let tables = tables();
        let mut out = String::from("-- setup\n");
        for s in setup_statements(&objects, &tables)
            .unwrap()
            .iter()
            .chain(&events_view_statements(&objects).unwrap())
        {
            out.push_str(&format!("{s};\n\n"));
        }
        out.push_str(&format!(
            "-- refresh\n{};\n\n",
            refresh_statement(&objects).unwrap()
        ));
        out.push_str(&format!(
            "-- pending\n{};\n\n",
            pending_statement(&objects).unwrap()
        ));
        let all = Pending {
            events: 1,
            truncates: 1,
            updates: 1,
        };
        let work: Vec<_> = tables.into_iter().map(|t| (t, all)).collect();
        for (i, batch) in merge_batches(&objects, &work).unwrap().iter().enumerate() {
            assert!(batch.len() <= MAX_STATEMENTS_PER_BATCH);
            out.push_str(&format!("-- merge batch {}\n", i + 1));
            for s in batch {
                out.push_str(&format!("{s};\n\n"));
            }
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/plan.sql");
        if std::env::var_os("KINESYNC_UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &out).unwrap();
        }
        let golden = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            golden == out,
            "generated SQL differs from {path}; rerun with KINESYNC_UPDATE_GOLDEN=1 if intended"
        );
    }

    /// 160 columns with the longest names PostgreSQL allows: one
    /// statement resolving all its TOAST columns would be over the Data
    /// API's 100 KB; in column groups every statement stays well below.
    #[test]
    fn a_wide_table_merges_in_statements_under_the_data_api_limit() {
        let config = config();
        let objects = Objects::new(&config, config.redshift.as_ref().unwrap());
        let mut columns = vec![column("id", "bigint", 20, Some(1))];
        columns.extend((1..=160).map(|i| column(&wide_column_name(i), "text", 25, None)));
        let wide = MirrorTable::new(table("public", "wide", columns));
        let all = Pending {
            events: 1,
            truncates: 1,
            updates: 1,
        };
        let statements = table_merge_statements(&objects, &wide, all, 1).unwrap();
        let longest = statements.iter().map(String::len).max().unwrap_or(0);
        // The changes statement grows with every column (about 400 bytes
        // for a 63-byte name, value and unchanged-TOAST marker): 160 such
        // columns stay well under the Data API's 100 KB.
        assert!(longest < 75_000, "longest statement {longest} bytes");
        let groups = statements
            .iter()
            .filter(|s| s.starts_with("CREATE TEMP TABLE kinesync_resolved_"))
            .count();
        assert!(groups > 1, "{groups} column groups");
        let batches = merge_batches(&objects, &[(wide, all)]).unwrap();
        assert!(batches.iter().all(|b| b.len() <= MAX_STATEMENTS_PER_BATCH));
    }

    /// A 63-byte column name (PostgreSQL's longest).
    fn wide_column_name(i: usize) -> String {
        format!("{}_{i:03}", "w".repeat(59))
    }

    #[test]
    fn names_fold_ascii_only_and_long_names_keep_apart() {
        assert_eq!(redshift_name("Line Items"), "line items");
        assert_eq!(redshift_name("Ärger_X"), "Ärger_x");
        let a = redshift_name(&format!("{}_first", "é".repeat(70)));
        let b = redshift_name(&format!("{}_second", "é".repeat(70)));
        assert!(a.len() <= MAX_IDENTIFIER_BYTES && b.len() <= MAX_IDENTIFIER_BYTES);
        assert_ne!(a, b);
        assert_eq!(a, redshift_name(&format!("{}_FIRST", "é".repeat(70))));
        assert_eq!(truncate_bytes("aéb", 2), "a");
    }

    #[test]
    fn tables_without_pending_events_get_no_statements() {
        let config = config();
        let objects = Objects::new(&config, config.redshift.as_ref().unwrap());
        let work: Vec<_> = tables()
            .into_iter()
            .map(|t| (t, Pending::default()))
            .collect();
        let batches = merge_batches(&objects, &work).unwrap();
        assert_eq!(batches.len(), 1);
        assert!(batches[0].iter().all(|s| !s.contains("kinesync_changes")));
    }

    #[test]
    fn many_tables_are_packed_into_batches_of_at_most_40() {
        let config = config();
        let objects = Objects::new(&config, config.redshift.as_ref().unwrap());
        let one = tables().remove(0);
        let all = Pending {
            events: 1,
            truncates: 1,
            updates: 1,
        };
        let work: Vec<_> = (0..40).map(|_| (one.clone(), all)).collect();
        let batches = merge_batches(&objects, &work).unwrap();
        assert!(batches.len() > 1);
        assert!(batches.iter().all(|b| b.len() <= MAX_STATEMENTS_PER_BATCH));
        assert!(batches
            .last()
            .unwrap()
            .last()
            .unwrap()
            .contains("SET watermark"));
        let merged: usize = batches
            .iter()
            .map(|b| {
                b.iter()
                    .filter(|s| s.contains("INSERT INTO \"mirror\".\"orders\""))
                    .count()
            })
            .sum();
        assert_eq!(merged, 40);
    }
}
