//! Every function kinesync's Redshift SQL calls is on the compatibility page
//! (docs/redshift-compatibility.md) with the documentation page allowing it.
//! Reads the Redshift-side templates under sql/, the golden merge plan and
//! the column expressions of every type mapping; needs no running service.

use std::collections::BTreeSet;
use std::path::Path;

use kinesync::scheduler::mapping::{ColumnKind, Side};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The text with comments, string literals and quoted identifiers blanked.
fn code_only(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                for d in chars.by_ref() {
                    if d == c {
                        break;
                    }
                }
                out.push(' ');
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                out.push('\n');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Upper-cased words directly followed by `(` (blanks allowed between).
fn called_words(sql: &str) -> BTreeSet<String> {
    let code = code_only(sql);
    let bytes = code.as_bytes();
    let mut words = BTreeSet::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts = (bytes[i].is_ascii_alphabetic() || bytes[i] == b'_')
            && (i == 0
                || !(bytes[i - 1].is_ascii_alphanumeric()
                    || bytes[i - 1] == b'_'
                    || bytes[i - 1] == b'.'));
        if !starts {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        let mut j = i;
        while j < bytes.len() && bytes[j] == b' ' {
            j += 1;
        }
        if bytes.get(j) == Some(&b'(') {
            words.insert(code[start..i].to_ascii_uppercase());
        }
    }
    words
}

/// The functions (and listed non-function words) the page allows.
fn allowed() -> BTreeSet<String> {
    let page = std::fs::read_to_string(Path::new(ROOT).join("docs/redshift-compatibility.md"))
        .expect("docs/redshift-compatibility.md");
    let mut allowed = BTreeSet::new();
    for piece in page.split('`').skip(1).step_by(2) {
        if let Some(name) = piece.strip_suffix(" (").or_else(|| piece.strip_suffix('(')) {
            if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                allowed.insert(name.to_ascii_uppercase());
            }
        }
    }
    allowed
}

/// The Redshift-side SQL: templates (not the source_*.sql ones, which run
/// on PostgreSQL) and the golden plan.
fn redshift_sql() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for dir in ["sql/setup", "sql/merge", "sql/check", "sql/verify"] {
        for entry in std::fs::read_dir(Path::new(ROOT).join(dir)).expect(dir) {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if name.ends_with(".sql") && !name.starts_with("source_") {
                files.push((
                    format!("{dir}/{name}"),
                    std::fs::read_to_string(&path).expect("read"),
                ));
            }
        }
    }
    files.push((
        "tests/golden/plan.sql".into(),
        std::fs::read_to_string(Path::new(ROOT).join("tests/golden/plan.sql")).expect("golden"),
    ));
    files
}

/// The expressions of every column kind, as the merge and verify write them
/// for the mirror side.
fn generated_expressions() -> String {
    let kinds = [
        ColumnKind::Integer("BIGINT"),
        ColumnKind::Decimal {
            precision: 10,
            scale: 2,
        },
        ColumnKind::Float("REAL"),
        ColumnKind::Float("DOUBLE PRECISION"),
        ColumnKind::Boolean,
        ColumnKind::Text { bytes: 100 },
        ColumnKind::Temporal("DATE"),
        ColumnKind::Temporal("TIME"),
        ColumnKind::Temporal("TIMETZ"),
        ColumnKind::Temporal("TIMESTAMP"),
        ColumnKind::Temporal("TIMESTAMPTZ"),
        ColumnKind::Bytes,
        ColumnKind::Super,
    ];
    let mut out = String::new();
    for kind in kinds {
        for expression in [
            kind.extract("e.payload.\"after\".\"c\""),
            kind.convert("l.\"c\""),
            kind.unconvert("m.\"c\""),
            kind.is_placeholder("l.\"c\""),
            kind.canonical("\"c\"", "text", Side::Mirror),
            kind.canonical("\"c\"", "character(3)", Side::Mirror),
        ] {
            out.push_str(&expression);
            out.push('\n');
        }
    }
    out
}

#[test]
fn every_function_the_redshift_sql_calls_is_on_the_compatibility_page() {
    let allowed = allowed();
    assert!(
        allowed.contains("TO_VARBYTE"),
        "page not parsed: {allowed:?}"
    );
    let mut sources = redshift_sql();
    sources.push((
        "generated column expressions".into(),
        generated_expressions(),
    ));
    let mut missing = Vec::new();
    for (name, sql) in &sources {
        for word in called_words(sql) {
            if !allowed.contains(&word) {
                missing.push(format!("{word} (in {name})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not on docs/redshift-compatibility.md (add each with its documentation page): {missing:?}"
    );
}

#[test]
fn the_check_finds_an_unlisted_function() {
    let words =
        called_words("SELECT FROM_HEX(x), 'NOT_A_CALL(' AS \"ALSO_NOT(\" -- COMMENT_CALL(\n");
    assert_eq!(words, BTreeSet::from(["FROM_HEX".to_owned()]));
    assert!(!allowed().contains("FROM_HEX"));
}
