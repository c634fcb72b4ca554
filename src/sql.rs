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
template!(SETUP_MIRROR_TABLE, "setup/mirror_table.sql");
template!(MERGE_REFRESH, "merge/refresh.sql");
template!(MERGE_BEGIN, "merge/begin.sql");
template!(MERGE_TABLE, "merge/table.sql");
template!(MERGE_TOAST, "merge/toast.sql");
template!(MERGE_TOAST_MARKERS, "merge/toast_markers.sql");
template!(MERGE_TOAST_RESOLVE, "merge/toast_resolve.sql");
template!(MERGE_TOAST_UNRESOLVED, "merge/toast_unresolved.sql");
template!(MERGE_COMMIT, "merge/commit.sql");
template!(MERGE_TRUNCATE, "merge/truncate.sql");
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
template!(MERGE_LEASE_BREAK, "merge/lease_break.sql");
template!(MERGE_LAST_REFRESH, "merge/last_refresh.sql");
template!(MERGE_REFRESH_DONE, "merge/refresh_done.sql");

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
        let code: String = self
            .text
            .lines()
            .filter(|line| !line.trim_start().starts_with("--"))
            .flat_map(|line| [line, "\n"])
            .collect();
        let filled = fill(self.name, &code, values)?;
        Ok(split_statements(&filled))
    }

    /// [`render`](Self::render) for a template of one statement: that
    /// statement (several would be joined by `;`).
    pub fn render_one(&self, values: &Values) -> Result<String, SqlError> {
        Ok(self.render(values)?.join(";\n"))
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
