//! The stream as a consumer sees it: every event applied in ordering-key
//! order reproduces each source table, and the values compare equal to the
//! source under the documented encodings (docs/events.md).
//!
//! The expected side is computed by PostgreSQL (`to_jsonb`, `to_char`,
//! `encode`), not by kinesync's encoder, so the two are independent.
//! Comparisons allow exactly the documented conversions: object key order
//! is not compared here (unit tests pin it), numbers compare by value,
//! numbers Redshift cannot hold arrive as strings of their digits, json too
//! deep to parse arrives as its text, strings over 65,535 bytes are cut.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;
use tokio_postgres::Client;

use super::{text_rows, StreamRecord};

/// The unchanged-TOAST placeholder.
pub const PLACEHOLDER: &str = "__debezium_unavailable_value";

/// Rows of one table keyed by the JSON text of their key values.
pub type Rows = BTreeMap<String, serde_json::Map<String, Value>>;

/// One column of a source table and the SQL that renders its value as the
/// event should carry it (as JSON text).
struct ColumnSql {
    name: String,
    expression: String,
}

/// What a row is compared as: the event (the stream) or the mirror row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    Event,
    /// Floats Redshift cannot hold (NaN, infinities, outside REAL's
    /// 1E-37..1E+37 or DOUBLE's 1E-307..1E+308) are NULL in the mirror
    /// (docs/redshift.md, "Edge values").
    Mirror,
}

fn float_sql(c: &str, typname: &str, mode: As) -> String {
    match mode {
        As::Event => format!(
            "CASE WHEN {c}::text IN ('NaN', 'Infinity', '-Infinity', '-0') THEN to_jsonb({c}::text) ELSE to_jsonb({c}) END"
        ),
        As::Mirror => {
            let (low, high) = if typname == "float4" { ("1e-37", "1e37") } else { ("1e-307", "1e308") };
            format!(
                "CASE WHEN {c}::text IN ('NaN', 'Infinity', '-Infinity') THEN NULL \
                 WHEN {c}::text = '-0' THEN to_jsonb({c}::text) \
                 WHEN {c} = 0 OR abs({c}::float8) BETWEEN {low} AND {high} THEN to_jsonb({c}) END"
            )
        }
    }
}

async fn column_sql(client: &Client, table: &str, mode: As) -> Vec<ColumnSql> {
    let rows = client
        .query(
            "SELECT a.attname::text, t.typname::text, t.typcategory::text FROM pg_attribute a \
             JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
             AND a.attname NOT LIKE '\\_kinesync\\_%' ORDER BY a.attnum",
            &[&quoted(table)],
        )
        .await
        .unwrap_or_else(|e| panic!("columns of {table}: {e}"));
    rows.iter()
        .map(|r| {
            let name: String = r.get(0);
            let c = format!("\"{}\"", name.replace('"', "\"\""));
            let expression = match (
                r.get::<_, String>(1).as_str(),
                r.get::<_, String>(2).as_str(),
            ) {
                ("int2" | "int4" | "int8" | "bool" | "json" | "jsonb", _) | (_, "A") => {
                    format!("to_jsonb({c})")
                }
                (t @ ("float4" | "float8"), _) => float_sql(&c, t, mode),
                ("timestamptz", _) => format!(
                    "to_jsonb(to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))"
                ),
                ("timestamp", _) => {
                    format!("to_jsonb(to_char({c}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US'))")
                }
                ("bytea", _) => format!("to_jsonb(encode({c}, 'hex'))"),
                _ => format!("to_jsonb({c}::text)"),
            };
            ColumnSql {
                name,
                expression: format!("({expression})::text"),
            }
        })
        .collect()
}

/// `schema.table` quoted for `::regclass` and FROM.
fn quoted(table: &str) -> String {
    let (schema, name) = table.split_once('.').expect("schema.table");
    format!("\"{schema}\".\"{name}\"")
}

/// A JSON text as a value; text too deeply nested for serde_json stays a
/// string marked as such, compared by text.
fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(format!("{UNPARSED}{text}")))
}

const UNPARSED: &str = "\u{0}unparsed:";

/// The table's rows as the event `after` objects (or, `As::Mirror`, the
/// mirror rows) they should equal. Run on the mirror, `As::Event` reads the
/// mirror's own values unchanged.
pub async fn source_rows(client: &Client, table: &str, key: &[String], mode: As) -> Rows {
    let columns = column_sql(client, table, mode).await;
    let list = columns
        .iter()
        .map(|c| c.expression.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut rows = Rows::new();
    for row in text_rows(client, &format!("SELECT {list} FROM {}", quoted(table))).await {
        let object: serde_json::Map<String, Value> = columns
            .iter()
            .zip(row)
            .map(|(c, v)| (c.name.clone(), v.as_deref().map_or(Value::Null, parse)))
            .collect();
        rows.insert(key_of(&object, key), object);
    }
    rows
}

/// `(table, key columns)` pairs as the map [`replay`] takes.
pub fn keys(tables: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    tables
        .iter()
        .map(|(t, k)| ((*t).to_owned(), k.iter().map(|c| (*c).to_owned()).collect()))
        .collect()
}

/// The key of a row: its key columns' values as a JSON array.
pub fn key_of(row: &serde_json::Map<String, Value>, key: &[String]) -> String {
    Value::Array(
        key.iter()
            .map(|c| row.get(c).cloned().unwrap_or(Value::Null))
            .collect(),
    )
    .to_string()
}

/// `source.commit_lsn`, `source.lsn` of an event, as numbers.
pub fn ordering(event: &Value) -> (u64, u64) {
    let source = &event["source"];
    let number = |field: &str| {
        source[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field} is not a u64: {event}"))
    };
    (number("commit_lsn"), number("lsn"))
}

/// Applies every event of `tables` in `(commit_lsn, lsn)` order, each at
/// most once (at-least-once duplicates share their ordering key). A
/// re-sync's end event (`op = "e"`, positioned at the re-sync's start)
/// removes, at the end, the rows whose newest event is ordered before it.
pub fn replay(
    records: &[StreamRecord],
    tables: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, Rows> {
    let mut events: Vec<&Value> = records.iter().map(|r| &r.event).collect();
    events.sort_by_key(|e| ordering(e));
    let mut out: BTreeMap<String, Rows> = tables.keys().map(|t| (t.clone(), Rows::new())).collect();
    let mut applied = HashSet::new();
    let mut newest: HashMap<(String, String), (u64, u64)> = HashMap::new();
    let mut resync_starts: Vec<(String, (u64, u64))> = Vec::new();
    for event in events {
        let Some(schema) = event["source"]["schema"].as_str() else {
            continue; // not an event (a probe record)
        };
        let table = format!(
            "{schema}.{}",
            event["source"]["table"].as_str().expect("table")
        );
        let Some(key) = tables.get(&table) else {
            continue;
        };
        let op = event["op"].as_str().expect("op");
        let object = |v: &Value| v.as_object().cloned().unwrap_or_default();
        let row_key = match op {
            "d" => key_of(&object(&event["before"]), key),
            "t" | "e" => String::new(),
            _ => key_of(&object(&event["after"]), key),
        };
        if !applied.insert((table.clone(), ordering(event), row_key.clone())) {
            continue;
        }
        if op == "e" {
            resync_starts.push((table, ordering(event)));
            continue;
        }
        newest.insert((table.clone(), row_key.clone()), ordering(event));
        let rows = out.get_mut(&table).expect("known table");
        apply(rows, op, event, key, row_key);
    }
    for (table, start) in resync_starts {
        let rows = out.get_mut(&table).expect("known table");
        rows.retain(|row_key, _| newest.get(&(table.clone(), row_key.clone())) >= Some(&start));
    }
    out
}

fn apply(rows: &mut Rows, op: &str, event: &Value, key: &[String], row_key: String) {
    match op {
        "c" | "r" => {
            rows.insert(row_key, event["after"].as_object().cloned().expect("after"));
        }
        "u" => {
            let old_key = match event["before"].as_object() {
                Some(before) => key_of(before, key),
                None => row_key.clone(),
            };
            let previous = rows.remove(&old_key);
            let mut after = event["after"].as_object().cloned().expect("after");
            // Unchanged by the update: named in unchanged_toast (a real
            // value may equal the placeholder text, docs/events.md).
            let unchanged = |column: &str| match event.get("unchanged_toast") {
                Some(listed) => listed.get(column) == Some(&Value::Bool(true)),
                None => false,
            };
            for (column, value) in after.iter_mut() {
                if unchanged(column) {
                    *value = previous
                        .as_ref()
                        .and_then(|p| p.get(column))
                        .cloned()
                        .unwrap_or_else(|| {
                            panic!("{old_key}: placeholder without a previous value: {event}")
                        });
                }
            }
            rows.insert(row_key, after);
        }
        "d" => {
            rows.remove(&row_key);
        }
        "t" => rows.clear(),
        other => panic!("unexpected op {other}: {event}"),
    }
}

/// Whether `got` (from the stream or the mirror) is `expected` (from the
/// source) under the documented encodings and conversions.
pub fn values_match(expected: &Value, got: &Value) -> bool {
    match (expected, got) {
        (Value::Number(e), Value::Number(g)) => canonical(e.as_str()) == canonical(g.as_str()),
        // A number Redshift cannot hold arrives as a string of its digits.
        (Value::Number(e), Value::String(g)) => {
            canonical(e.as_str()) == canonical(g)
                && !kinesync::encode::redshift_holds_number(e.as_str())
        }
        (Value::String(e), Value::String(g)) => match e.strip_prefix(UNPARSED) {
            // json too deep to parse arrives as its text.
            Some(text) => text == g,
            None => e == g || (e.len() > 65_535 && e.starts_with(g.as_str()) && g.len() > 65_531),
        },
        (Value::Array(e), Value::Array(g)) => {
            e.len() == g.len() && e.iter().zip(g).all(|(e, g)| values_match(e, g))
        }
        // A column an event does not carry (added to the table after the
        // event) is NULL.
        (Value::Object(e), Value::Object(g)) => {
            e.iter()
                .all(|(k, v)| values_match(v, g.get(k).unwrap_or(&Value::Null)))
                && g.keys().all(|k| e.contains_key(k))
        }
        (e, g) => e == g,
    }
}

/// A JSON number's value as (sign, digits without leading/trailing zeros,
/// exponent of the last digit); `None` if not a number.
fn canonical(text: &str) -> Option<(bool, String, i64)> {
    let negative = text.starts_with('-');
    let unsigned = text.trim_start_matches('-');
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) || int.is_empty() {
        return None;
    }
    let digits = format!("{int}{frac}");
    let trimmed = digits.trim_start_matches('0');
    let significant = trimmed.trim_end_matches('0');
    if significant.is_empty() {
        return Some((false, String::new(), 0));
    }
    let power = exponent - frac.len() as i64 + (trimmed.len() - significant.len()) as i64;
    Some((negative, significant.to_owned(), power))
}

/// Compares replayed (or mirrored) rows with the source's; panics naming
/// the first differences and `context` (the seed and how to re-run it).
pub fn assert_rows_match(table: &str, expected: &Rows, got: &Rows, context: &str) {
    let row_matches = |e: &serde_json::Map<String, Value>, g: &serde_json::Map<String, Value>| {
        values_match(&Value::Object(e.clone()), &Value::Object(g.clone()))
    };
    let missing: Vec<_> = expected
        .iter()
        .filter(|(k, e)| !got.get(*k).is_some_and(|g| row_matches(e, g)))
        .take(3)
        .collect();
    let extra: Vec<_> = got
        .iter()
        .filter(|(k, g)| !expected.get(*k).is_some_and(|e| row_matches(e, g)))
        .take(3)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{context}: {table} differs from the source ({} vs {} rows)\nsource only: {missing:#?}\nother only: {extra:#?}",
        expected.len(),
        got.len()
    );
}
