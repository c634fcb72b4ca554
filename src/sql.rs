//! SQL text: the templates under `sql/`, how they are filled, and how
//! identifiers and literals are quoted.
//!
//! Every statement kinesync sends to Redshift comes from a template compiled
//! into the binary (`include_str!`), so the SQL is readable on its own in the
//! repository and the binary carries exactly what was reviewed. Placeholders
//! are `{{name}}`; a template that names a placeholder the caller did not
//! fill is a bug, reported as [`SqlError::MissingPlaceholder`]. Everything
//! that reaches SQL from configuration or the source catalog goes through
//! [`quote_ident`] or [`quote_literal`].

use std::collections::BTreeMap;

/// A template file under `sql/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    pub name: &'static str,
    pub text: &'static str,
}

macro_rules! template {
    ($const_name:ident, $path:literal) => {
        pub const $const_name: Template = Template {
            name: $path,
            text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/", $path)),
        };
    };
}

template!(SETUP_STREAM, "setup/stream.sql");
template!(SETUP_EVENTS_VIEW, "setup/events_view.sql");
template!(SETUP_EVENTS_VIEW_EXISTS, "setup/events_view_exists.sql");
template!(SETUP_BOOKKEEPING, "setup/bookkeeping.sql");
template!(SETUP_EXECUTOR, "setup/executor.sql");
template!(SETUP_MIRROR_TABLE, "setup/mirror_table.sql");
template!(MERGE_REFRESH, "merge/refresh.sql");
template!(MERGE_BEGIN, "merge/begin.sql");
template!(MERGE_NEW_EVENTS, "merge/new_events.sql");
template!(MERGE_COUNTS, "merge/counts.sql");
template!(MERGE_TABLE, "merge/table.sql");
template!(MERGE_TOAST, "merge/toast.sql");
template!(MERGE_TOAST_MARKERS, "merge/toast_markers.sql");
template!(MERGE_TOAST_RESOLVE, "merge/toast_resolve.sql");
template!(MERGE_TOAST_UNRESOLVED, "merge/toast_unresolved.sql");
template!(MERGE_COMMIT, "merge/commit.sql");
template!(MERGE_TRUNCATE, "merge/truncate.sql");
template!(MERGE_TRUNCATE_ROWS, "merge/truncate_rows.sql");
template!(MERGE_PENDING, "merge/pending.sql");
template!(MERGE_MIRROR_COLUMNS, "merge/mirror_columns.sql");
template!(MERGE_ADD_COLUMN, "merge/add_column.sql");
template!(MERGE_LEASE_ACQUIRE, "merge/lease_acquire.sql");
template!(MERGE_LEASE_HOLDER, "merge/lease_holder.sql");
template!(MERGE_LEASE_RELEASE, "merge/lease_release.sql");
template!(MERGE_RECORD_STATUS, "merge/record_status.sql");
template!(
    CHECK_REDSHIFT_MERGE_STATUS,
    "check/redshift_merge_status.sql"
);
template!(CHECK_SOURCE_SERVER, "check/source_server.sql");
template!(CHECK_SOURCE_TABLE, "check/source_table.sql");
template!(CHECK_SOURCE_PUBLICATION, "check/source_publication.sql");
template!(CHECK_SOURCE_SLOT, "check/source_slot.sql");
template!(CHECK_REDSHIFT_OBJECTS, "check/redshift_objects.sql");
template!(CHECK_REDSHIFT_CHECKPOINT, "check/redshift_checkpoint.sql");
template!(VERIFY_SOURCE_BUCKETS, "verify/source_buckets.sql");
template!(VERIFY_MIRROR_BUCKETS, "verify/mirror_buckets.sql");
template!(VERIFY_BUCKET_ROWS, "verify/bucket_rows.sql");
template!(VERIFY_SOURCE_CONVERTED, "verify/source_converted.sql");
template!(VERIFY_LAST_EVENTS, "verify/last_events.sql");
template!(TEARDOWN_SOURCE_SLOT, "teardown/source_slot.sql");
template!(TEARDOWN_DROP_SLOT, "teardown/drop_slot.sql");
template!(TEARDOWN_DROP_PUBLICATION, "teardown/drop_publication.sql");
template!(TEARDOWN_RESYNC_ROWS, "teardown/resync_rows.sql");
template!(TEARDOWN_REDSHIFT_PIPELINE, "teardown/redshift_pipeline.sql");
template!(TEARDOWN_REDSHIFT_PROBE, "teardown/redshift_probe.sql");
template!(TEARDOWN_REDSHIFT_TABLE, "teardown/redshift_table.sql");
template!(
    TEARDOWN_REDSHIFT_TABLE_STATE,
    "teardown/redshift_table_state.sql"
);
template!(
    TEARDOWN_REDSHIFT_TABLE_SHAPE,
    "teardown/redshift_table_shape.sql"
);
template!(TEARDOWN_REDSHIFT_ROWS, "teardown/redshift_rows.sql");
template!(TEARDOWN_REDSHIFT_OTHERS, "teardown/redshift_others.sql");
template!(TEARDOWN_REDSHIFT_SHARED, "teardown/redshift_shared.sql");
template!(TEARDOWN_REDSHIFT_EXECUTOR, "teardown/redshift_executor.sql");
template!(TEARDOWN_REDSHIFT_SCHEMA, "teardown/redshift_schema.sql");
template!(MERGE_LEASE_BREAK, "merge/lease_break.sql");
template!(MERGE_LEASE_RENEW, "merge/lease_renew.sql");
template!(MERGE_PRUNE_TOMBSTONES, "merge/prune_tombstones.sql");
template!(MERGE_REFRESH_DONE, "merge/refresh_done.sql");
template!(RESYNC_STATE_TABLE, "resync/state_table.sql");
template!(RESYNC_EXISTS, "resync/exists.sql");
template!(RESYNC_REQUEST, "resync/request.sql");
template!(RESYNC_PENDING, "resync/pending.sql");
template!(RESYNC_PROGRESS, "resync/progress.sql");
template!(RESYNC_FINISH, "resync/finish.sql");
template!(RESYNC_STATUS, "resync/status.sql");
template!(RESYNC_CHUNK_SNAPSHOT, "resync/chunk_snapshot.sql");
template!(RESYNC_WATERMARK, "resync/watermark.sql");
template!(PRODUCE_REWRITTEN, "produce/rewritten.sql");
template!(PRODUCE_FINGERPRINTS, "produce/fingerprints.sql");
template!(RESYNC_PARTITIONS, "resync/partitions.sql");

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SqlError {
    #[error("SQL template {template} uses {{{{{placeholder}}}}} but no value was given (a kinesync bug)")]
    MissingPlaceholder {
        template: &'static str,
        placeholder: String,
    },
}

/// Values for a template's placeholders.
pub type Values = BTreeMap<&'static str, String>;

impl Template {
    /// Fills the placeholders and returns the template's statements, comments
    /// stripped, each without its trailing `;`.
    pub fn render(&self, values: &Values) -> Result<Vec<String>, SqlError> {
        Ok(split_statements(&self.render_whole(values)?))
    }

    /// The template filled as one statement, never split at its `;`s (a
    /// procedure, whose body holds statements), comment lines stripped.
    pub fn render_whole(&self, values: &Values) -> Result<String, SqlError> {
        let code: String = self
            .text
            .lines()
            .filter(|line| !line.trim_start().starts_with("--"))
            .flat_map(|line| [line, "\n"])
            .collect();
        Ok(fill(self.name, &code, values)?.trim().to_owned())
    }

    /// [`render`](Self::render) for a template of one statement: that
    /// statement (several would be joined by `;`).
    pub fn render_one(&self, values: &Values) -> Result<String, SqlError> {
        Ok(self.render(values)?.join(";\n"))
    }

    /// A template without placeholders (the source's queries take `$n`
    /// parameters instead): its statement. Nothing is left to fill, so
    /// rendering cannot fail.
    pub fn plain(&self) -> String {
        self.render_one(&Values::new()).unwrap_or_default()
    }
}

fn fill(template: &'static str, text: &str, values: &Values) -> Result<String, SqlError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| SqlError::MissingPlaceholder {
                template,
                placeholder: after.chars().take(20).collect(),
            })?;
        let name = &after[..end];
        let value = values
            .get(name)
            .ok_or_else(|| SqlError::MissingPlaceholder {
                template,
                placeholder: name.to_owned(),
            })?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Splits on `;` at the end of a line, dropping blank lines.
fn split_statements(text: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim_end();
        if trimmed.trim().is_empty() {
            continue;
        }
        if let Some(body) = trimmed.strip_suffix(';') {
            current.push_str(body);
            statements.push(std::mem::take(&mut current).trim().to_owned());
        } else {
            current.push_str(trimmed);
            current.push('\n');
        }
    }
    if !current.trim().is_empty() {
        statements.push(current.trim().to_owned());
    }
    statements
}

/// `"name"`, with embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."name"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// An identifier as a user would type it in SQL: bare when it is a plain
/// lower-case name, else double-quoted (what error messages show).
pub fn display_ident(name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_owned()
    } else {
        quote_ident(name)
    }
}

/// `schema.name` as a user would type it in SQL (see [`display_ident`]).
pub fn display_qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", display_ident(schema), display_ident(name))
}

/// A table's schema and name, verbatim (case kept, not quoted). Serialized
/// as `["schema", "name"]` (the snapshot marker stores lists of them).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(from = "(String, String)", into = "(String, String)")]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl TableName {
    /// `tables`' schema names and table names, pairwise: the two arrays a
    /// query joins through `unnest($1::text[], $2::text[])`.
    pub fn columns_of(tables: &[TableName]) -> (Vec<&str>, Vec<&str>) {
        tables
            .iter()
            .map(|t| (t.schema.as_str(), t.name.as_str()))
            .unzip()
    }

    pub fn new(schema: &str, name: &str) -> TableName {
        TableName {
            schema: schema.to_owned(),
            name: name.to_owned(),
        }
    }

    /// `"schema"."name"`, for SQL.
    pub fn quoted(&self) -> String {
        qualified(&self.schema, &self.name)
    }

    /// `schema.name` verbatim (partition keys, `verify --table`, table literals).
    pub fn plain(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

impl From<(String, String)> for TableName {
    fn from((schema, name): (String, String)) -> TableName {
        TableName { schema, name }
    }
}

impl From<TableName> for (String, String) {
    fn from(table: TableName) -> (String, String) {
        (table.schema, table.name)
    }
}

/// As a user would type it in SQL (see [`display_qualified`]).
impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&display_qualified(&self.schema, &self.name))
    }
}

/// One `source.tables` entry: a schema and a table in it, or every table
/// of the schema (`schema.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    pub schema: String,
    /// `None` for `schema.*`.
    pub table: Option<String>,
}

/// A `source.tables` entry that names no table.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("source.tables entry {entry:?} {problem}: write schema.table, schema.* or the SQL spelling with double quotes, e.g. public.\"Odd Table\"")]
pub struct TableEntryError {
    pub entry: String,
    pub problem: &'static str,
}

/// Parses a `source.tables` entry. Each part is either written as is
/// (`public.Odd Table`: the exact name, case kept) or in SQL's spelling,
/// double-quoted with `""` for a quote (`public."Odd Table"`, as psql
/// prints it). An unquoted `*` as the table selects the whole schema; a
/// schema written as is ends at its first `.`, a table written as is is
/// the rest of the entry.
pub fn parse_table_entry(entry: &str) -> Result<TableEntry, TableEntryError> {
    let fail = |problem| TableEntryError {
        entry: entry.to_owned(),
        problem,
    };
    let (schema, rest) = match entry.strip_prefix('"') {
        Some(quoted) => {
            let (schema, rest) = unquote(quoted).ok_or_else(|| fail("has an unclosed \""))?;
            let rest = rest
                .strip_prefix('.')
                .ok_or_else(|| fail("has no . after the quoted schema"))?;
            (schema, rest)
        }
        None => {
            let (schema, rest) = entry
                .split_once('.')
                .ok_or_else(|| fail("is not schema.table"))?;
            (schema.to_owned(), rest)
        }
    };
    let table = match rest.strip_prefix('"') {
        Some(quoted) => match unquote(quoted).ok_or_else(|| fail("has an unclosed \""))? {
            (name, "") => Some(name),
            _ => return Err(fail("has text after the quoted table name")),
        },
        None if rest == "*" => None,
        None => Some(rest.to_owned()),
    };
    if schema.is_empty() || table.as_deref() == Some("") {
        return Err(fail("has an empty schema or table name"));
    }
    Ok(TableEntry { schema, table })
}

/// The name up to the closing `"` of a quoted identifier (`""` is a quote)
/// and the text after it; `None` if it is not closed.
fn unquote(text: &str) -> Option<(String, &str)> {
    let mut name = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '"' {
            name.push(c);
        } else if text[i + 1..].starts_with('"') {
            name.push('"');
            chars.next();
        } else {
            return Some((name, &text[i + 1..]));
        }
    }
    None
}

/// `'text'`, with embedded quotes doubled. Backslashes are doubled too:
/// Redshift treats a backslash in a literal as an escape.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_cannot_break_out_of_quotes() {
        assert_eq!(
            quote_ident(r#"a"; drop table x; --"#),
            r#""a""; drop table x; --""#
        );
        assert_eq!(qualified("Sch", "t b"), r#""Sch"."t b""#);
    }

    #[test]
    fn table_entries_are_read_as_written_or_in_sql_spelling() {
        let entry = |schema: &str, table: Option<&str>| TableEntry {
            schema: schema.to_owned(),
            table: table.map(str::to_owned),
        };
        for (text, expected) in [
            ("public.orders", entry("public", Some("orders"))),
            ("public.Odd Table", entry("public", Some("Odd Table"))),
            (r#"public."Odd Table""#, entry("public", Some("Odd Table"))),
            (r#""My.Schema"."a""b""#, entry("My.Schema", Some("a\"b"))),
            (r#""Sales".*"#, entry("Sales", None)),
            ("sales.*", entry("sales", None)),
            (r#"sales."*""#, entry("sales", Some("*"))),
            ("public.a.b", entry("public", Some("a.b"))),
        ] {
            assert_eq!(parse_table_entry(text), Ok(expected), "{text}");
        }
        for (text, problem) in [
            ("orders", "is not schema.table"),
            (r#"public."Odd Table"#, "has an unclosed \""),
            (r#""public"orders"#, "has no . after the quoted schema"),
            (r#"public."a"b"#, "has text after the quoted table name"),
            (".orders", "has an empty schema or table name"),
            ("public.", "has an empty schema or table name"),
        ] {
            let error = parse_table_entry(text).unwrap_err();
            assert_eq!(error.problem, problem, "{text}");
            assert!(error.to_string().contains("source.tables"), "{error}");
        }
    }

    #[test]
    fn names_are_displayed_as_sql_would_spell_them() {
        assert_eq!(display_qualified("public", "orders"), "public.orders");
        assert_eq!(
            display_qualified("public", "Odd Table"),
            r#"public."Odd Table""#
        );
    }

    #[test]
    fn literals_cannot_break_out_of_quotes() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal(r"a\'"), r"'a\\'''");
    }

    #[test]
    fn statements_split_on_line_end_semicolons_and_comments_vanish() {
        let t = Template {
            name: "t",
            text: "-- hi {{unfilled}}\nSELECT {{a}};\n\nSELECT 'x;y'\nFROM t;\n",
        };
        let values = Values::from([("a", "1".to_owned())]);
        assert_eq!(
            t.render(&values).unwrap(),
            vec!["SELECT 1".to_owned(), "SELECT 'x;y'\nFROM t".to_owned()]
        );
    }

    #[test]
    fn a_missing_placeholder_is_an_error() {
        let t = Template {
            name: "t",
            text: "SELECT {{a}};",
        };
        assert_eq!(
            t.render(&Values::new()).unwrap_err(),
            SqlError::MissingPlaceholder {
                template: "t",
                placeholder: "a".to_owned()
            }
        );
    }
}
