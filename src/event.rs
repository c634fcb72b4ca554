//! The change event (Debezium-shaped envelope) and its Kinesis record.
//!
//! One event is one JSON object; one Kinesis record carries exactly one event
//! (Redshift streaming ingestion cannot de-aggregate). This module owns the
//! envelope layout, the `source` block, and the partition key; `encode` owns
//! the column values. The full contract is `docs/events.md`; the merge SQL
//! depends on it field by field, so change both together.

use std::fmt::Write as _;

use md5::{Digest, Md5};
use serde_json::Value;

use crate::encode::{encode_tuple_value_noted, Conversion, UNAVAILABLE_VALUE};
use crate::lsn::Lsn;
use crate::source::pgoutput::TupleValue;
use crate::source::relation_cache::Relation;

mod shape;
pub use shape::*;

/// Kinesis's limit on a partition key, "256 Unicode characters", taken as
/// 256 UTF-8 bytes: never more characters than that under any count a
/// Kinesis implementation may use (code points, UTF-16 code units as
/// kinesalite counts, bytes). A longer key is replaced by its MD5.
pub const MAX_PARTITION_KEY_BYTES: usize = 256;

/// `op` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
    Read,
    Truncate,
}

impl Op {
    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
        }
    }
}

/// `source.snapshot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMarker {
    /// A snapshot row that is not the last one.
    True,
    /// The last row of the snapshot.
    Last,
    /// A streamed change.
    False,
}

impl SnapshotMarker {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotMarker::True => "true",
            SnapshotMarker::Last => "last",
            SnapshotMarker::False => "false",
        }
    }
}

/// What is constant for a producer run.
#[derive(Debug, Clone)]
pub struct EventContext {
    /// `source.name`: the replication slot name.
    pub slot: String,
    /// `source.db`.
    pub database: String,
}

/// Where one change sits in the WAL, and when it committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeMeta {
    pub op: Op,
    pub snapshot: SnapshotMarker,
    /// `source.ts_ms`: commit time (snapshot: snapshot start), ms since epoch.
    pub commit_time_ms: i64,
    pub txid: Option<u32>,
    /// First half of the ordering key (snapshot: the slot's consistent point).
    pub commit_lsn: Lsn,
    /// Second half of the ordering key (snapshot: 0).
    pub lsn: Lsn,
}

/// One row's column values, aligned with `Relation::columns`; `None` marks a
/// column the row does not carry (non-key columns of a `K` old tuple).
pub type Row = Vec<Option<Value>>;

/// An encoded event, ready for a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent {
    /// `schema.table`.
    pub table: String,
    /// The row's key (`[42]`: primary key, else replica identity), for
    /// error messages and the dead-letter file.
    pub key: String,
    /// At most [`MAX_PARTITION_KEY_BYTES`] bytes.
    pub partition_key: String,
    /// The JSON document.
    pub data: Vec<u8>,
}

impl EncodedEvent {
    /// What Kinesis counts against the record limit: data plus partition key.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// Why a tuple cannot be turned into a row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table}: the change has {got} columns but the Relation message described {expected}")]
pub struct ShapeMismatch {
    pub table: String,
    pub expected: usize,
    pub got: usize,
}

/// Build a row from a pgoutput tuple. `keys_only` keeps just the replica
/// identity columns (for a `K` old tuple, whose other columns are nulls that
/// mean "not sent", not SQL NULL). Values that went through a documented
/// conversion are reported by [`report_conversions`].
pub fn row_from_tuple(
    rel: &Relation,
    values: &[TupleValue],
    keys_only: bool,
) -> Result<Row, ShapeMismatch> {
    if values.len() != rel.columns.len() {
        return Err(ShapeMismatch {
            table: rel.qualified_name(),
            expected: rel.columns.len(),
            got: values.len(),
        });
    }
    let mut row: Row = vec![None; values.len()];
    let mut notes = Vec::new();
    let mut encode = |i: usize| {
        let (value, note) = encode_tuple_value_noted(rel.columns[i].type_oid, &values[i]);
        if let Some(note) = note {
            notes.push((i, note));
        }
        row[i] = Some(value);
    };
    if keys_only {
        rel.key_indices.iter().for_each(|&i| encode(i));
    } else {
        (0..values.len()).for_each(encode);
    }
    report_conversions(rel, &row, &notes);
    Ok(row)
}

/// Warns about (and counts) each value of `row` that went through a
/// documented conversion, naming the table, the column and the row key.
pub fn report_conversions(rel: &Relation, row: &Row, notes: &[(usize, Conversion)]) {
    if notes.is_empty() {
        return;
    }
    let table = rel.qualified_name();
    let key = key_text(row, None, message_key_indices(rel));
    for &(column, note) in notes {
        crate::telemetry::metrics()
            .values_converted
            .get_or_create(&[
                ("table", table.clone()),
                ("conversion", note.as_str().to_owned()),
            ])
            .inc();
        tracing::warn!(
            table = %table,
            column = %rel.columns[column].name,
            key = %key,
            conversion = note.as_str(),
            "{}",
            note.describe()
        );
    }
}

/// The columns that name a row in messages: the partition key columns
/// (primary key, else replica identity index), else the replica identity.
fn message_key_indices(rel: &Relation) -> &[usize] {
    if rel.partition_indices.is_empty() {
        &rel.key_indices
    } else {
        &rel.partition_indices
    }
}

/// The JSON array of `row`'s values at `columns`; a column holding the
/// unchanged-TOAST placeholder takes its value from `fallback` (the old
/// tuple) when that has one, so a row's key never depends on whether a
/// TOASTed value was sent.
fn key_text(row: &Row, fallback: Option<&Row>, columns: &[usize]) -> String {
    let value_at = |r: &Row, i: usize| r.get(i).cloned().flatten();
    let values: Vec<Value> = columns
        .iter()
        .map(|&i| {
            let value = value_at(row, i).unwrap_or(Value::Null);
            if value.as_str() != Some(UNAVAILABLE_VALUE) {
                return value;
            }
            fallback
                .and_then(|old| value_at(old, i))
                .filter(|old| old.as_str() != Some(UNAVAILABLE_VALUE))
                .unwrap_or(value)
        })
        .collect();
    Value::Array(values).to_string()
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Postgres timestamps (µs since 2000-01-01) to ms since the Unix epoch.
pub fn pg_micros_to_unix_ms(micros: i64) -> i64 {
    const PG_EPOCH_OFFSET_MS: i64 = 946_684_800_000;
    micros.div_euclid(1000) + PG_EPOCH_OFFSET_MS
}

/// Encode one event. `before`/`after` follow the contract for `meta.op`;
/// the partition key comes from `after` (c/u/r) or `before` (d), none for t.
pub fn encode_event(
    ctx: &EventContext,
    rel: &Relation,
    meta: &ChangeMeta,
    before: Option<&Row>,
    after: Option<&Row>,
) -> EncodedEvent {
    encode_event_with(ctx, rel, meta, before, after, &[])
}

/// The columns of a new tuple that PostgreSQL did not send because an
/// update left their TOASTed value unchanged.
pub fn unchanged_toast(values: &[TupleValue]) -> Vec<usize> {
    values
        .iter()
        .enumerate()
        .filter(|(_, v)| matches!(v, TupleValue::UnchangedToast))
        .map(|(i, _)| i)
        .collect()
}

/// [`encode_event`] for an update whose `after` holds the placeholder at
/// `unchanged` (see [`unchanged_toast`]): every `u` event carries
/// `"unchanged_toast": {"<column>": true, ...}`, so a consumer can tell an
/// unchanged value from a real value that happens to equal the placeholder.
pub fn encode_event_with(
    ctx: &EventContext,
    rel: &Relation,
    meta: &ChangeMeta,
    before: Option<&Row>,
    after: Option<&Row>,
    unchanged: &[usize],
) -> EncodedEvent {
    let table = rel.qualified_name();
    let (key, partition_key) = event_keys(rel, meta, before, after, &table);
    let mut out = String::with_capacity(256);
    out.push_str("{\"before\":");
    write_row(&mut out, rel, before);
    out.push_str(",\"after\":");
    write_row(&mut out, rel, after);
    if meta.op == Op::Update {
        write_unchanged_toast(&mut out, rel, unchanged);
    }
    write_envelope(&mut out, ctx, rel, meta);
    EncodedEvent {
        table,
        key,
        partition_key,
        data: out.into_bytes(),
    }
}

/// The event's row key (JSON array text, empty for a truncate) and its
/// partition key.
fn event_keys(
    rel: &Relation,
    meta: &ChangeMeta,
    before: Option<&Row>,
    after: Option<&Row>,
    table: &str,
) -> (String, String) {
    // The row the key comes from, and the other one of the event (the old
    // tuple of an update) for key values the first does not carry.
    let (key_row, other) = match meta.op {
        Op::Delete => (before, None),
        Op::Truncate => (None, None),
        _ => (after, before),
    };
    let Some(row) = key_row else {
        return (String::new(), bounded_partition_key(table.to_owned()));
    };
    let key = key_text(row, other, message_key_indices(rel));
    // Primary key (or replica identity index): one row, one shard,
    // whatever the replica identity. No such key (FULL only): the
    // table, so the row's events still share a shard.
    let partition = if rel.partition_indices.is_empty() {
        table.to_owned()
    } else {
        format!("{table}:{key}")
    };
    (key, bounded_partition_key(partition))
}

/// `,"unchanged_toast":{"<column>":true,...}` of an update.
fn write_unchanged_toast(out: &mut String, rel: &Relation, unchanged: &[usize]) {
    out.push_str(",\"unchanged_toast\":{");
    for (n, &i) in unchanged.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        push_json_str(out, &rel.columns[i].name);
        out.push_str(":true");
    }
    out.push('}');
}

/// `,"op":...,"ts_ms":...,"source":{...}}`: everything after the rows.
fn write_envelope(out: &mut String, ctx: &EventContext, rel: &Relation, meta: &ChangeMeta) {
    let _ = write!(
        out,
        ",\"op\":\"{}\",\"ts_ms\":{},\"source\":{{",
        meta.op.code(),
        now_ms()
    );
    let _ = write!(
        out,
        "\"version\":\"{}\",\"connector\":\"postgresql\",\"name\":",
        env!("CARGO_PKG_VERSION")
    );
    push_json_str(out, &ctx.slot);
    let _ = write!(
        out,
        ",\"ts_ms\":{},\"snapshot\":\"{}\",\"db\":",
        meta.commit_time_ms,
        meta.snapshot.as_str()
    );
    push_json_str(out, &ctx.database);
    let _ = write!(
        out,
        ",\"sequence\":\"[\\\"{}\\\",\\\"{}\\\"]\",\"schema\":",
        meta.commit_lsn.0, meta.lsn.0
    );
    push_json_str(out, &rel.schema);
    out.push_str(",\"table\":");
    push_json_str(out, &rel.name);
    match meta.txid {
        Some(xid) => {
            let _ = write!(out, ",\"txId\":{xid}");
        }
        None => out.push_str(",\"txId\":null"),
    }
    let _ = write!(
        out,
        ",\"lsn\":{},\"commit_lsn\":{},\"xmin\":null}}}}",
        meta.lsn.0, meta.commit_lsn.0
    );
}

/// The partition key, or its MD5 (32 hex chars) when it could be too long
/// for Kinesis under any way of counting (see [`MAX_PARTITION_KEY_BYTES`]).
pub fn bounded_partition_key(full: String) -> String {
    if full.len() <= MAX_PARTITION_KEY_BYTES && !full.is_empty() {
        full
    } else {
        hex::encode(Md5::digest(full.as_bytes()))
    }
}

fn write_row(out: &mut String, rel: &Relation, row: Option<&Row>) {
    let Some(row) = row else {
        out.push_str("null");
        return;
    };
    out.push('{');
    let mut first = true;
    for (col, value) in rel.columns.iter().zip(row) {
        let Some(value) = value else { continue };
        if !first {
            out.push(',');
        }
        first = false;
        push_json_str(out, &col.name);
        out.push(':');
        push_json_value(out, value);
    }
    out.push('}');
}

/// Append `value` as JSON, byte for byte what `serde_json` writes, without
/// going through `core::fmt` for the common scalar cases (the profile of
/// wide rows showed `Value`'s `Display` among the top costs).
pub fn push_json_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::String(s) => push_json_str(out, s),
        Value::Number(n) => match n.as_i64() {
            Some(i) => push_i64(out, i),
            None => {
                let _ = write!(out, "{n}");
            }
        },
        Value::Array(_) | Value::Object(_) => {
            let _ = write!(out, "{value}");
        }
    }
}

/// Append an integer in decimal, without `core::fmt`.
fn push_i64(out: &mut String, i: i64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    let mut n = i.unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        out.push('-');
    }
    if let Ok(digits) = std::str::from_utf8(&buf[at..]) {
        out.push_str(digits);
    }
}

/// Append `s` as a JSON string literal, escaped as `serde_json` escapes
/// (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other control characters as
/// `\u00xx`). Runs without escapes are copied in one piece.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        // Every byte escaped is ASCII, so `i` is a char boundary.
        out.push_str(&s[start..i]);
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn orders() -> Relation {
        Relation::keyed_by_first("public", "orders", &[("id", 23), ("Note \"x\"", 25)])
    }

    fn ctx() -> EventContext {
        EventContext {
            slot: "kinesync".into(),
            database: "app".into(),
        }
    }

    fn meta(op: Op) -> ChangeMeta {
        ChangeMeta {
            op,
            snapshot: SnapshotMarker::False,
            commit_time_ms: 1_700_000_000_000,
            txid: Some(750),
            commit_lsn: Lsn(0x1_0000_0000),
            lsn: Lsn(0x0_FFFF_0000),
        }
    }

    fn text(s: &str) -> TupleValue {
        TupleValue::Text(bytes::Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn insert_envelope() {
        let rel = orders();
        let after = row_from_tuple(&rel, &[text("42"), text("hi\n")], false).unwrap();
        let ev = encode_event(&ctx(), &rel, &meta(Op::Create), None, Some(&after));
        assert_eq!(ev.partition_key, "public.orders:[42]");
        assert_eq!(ev.key, "[42]");
        let v: Value = serde_json::from_slice(&ev.data).unwrap();
        assert_eq!(v["before"], Value::Null);
        assert_eq!(v["after"], json!({"id": 42, "Note \"x\"": "hi\n"}));
        assert_eq!(v["op"], "c");
        assert!(v["ts_ms"].as_i64().unwrap() > 1_600_000_000_000);
        let s = &v["source"];
        assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(s["connector"], "postgresql");
        assert_eq!(s["name"], "kinesync");
        assert_eq!(s["ts_ms"], 1_700_000_000_000i64);
        assert_eq!(s["snapshot"], "false");
        assert_eq!(s["db"], "app");
        assert_eq!(
            s["sequence"],
            format!("[\"{}\",\"{}\"]", 0x1_0000_0000u64, 0xFFFF_0000u64)
        );
        assert_eq!(s["schema"], "public");
        assert_eq!(s["table"], "orders");
        assert_eq!(s["txId"], 750);
        assert_eq!(s["lsn"], 0xFFFF_0000u64);
        assert_eq!(s["commit_lsn"], 0x1_0000_0000u64);
        assert_eq!(s["xmin"], Value::Null);
        // Columns keep table order.
        let text = String::from_utf8(ev.data).unwrap();
        assert!(
            text.starts_with("{\"before\":null,\"after\":{\"id\":42,"),
            "{text}"
        );
    }

    #[test]
    fn update_with_key_change_and_delete() {
        let rel = orders();
        let before = row_from_tuple(&rel, &[text("1"), TupleValue::Null], true).unwrap();
        let after = row_from_tuple(&rel, &[text("2"), TupleValue::UnchangedToast], false).unwrap();
        let ev = encode_event(&ctx(), &rel, &meta(Op::Update), Some(&before), Some(&after));
        let v: Value = serde_json::from_slice(&ev.data).unwrap();
        assert_eq!(v["before"], json!({"id": 1}));
        assert_eq!(
            v["after"],
            json!({"id": 2, "Note \"x\"": crate::encode::UNAVAILABLE_VALUE})
        );
        assert_eq!(ev.partition_key, "public.orders:[2]");
        assert_eq!(v["unchanged_toast"], json!({}), "every update says which");
        let new = [text("2"), TupleValue::UnchangedToast];
        let ev = encode_event_with(
            &ctx(),
            &rel,
            &meta(Op::Update),
            Some(&before),
            Some(&after),
            &unchanged_toast(&new),
        );
        let v: Value = serde_json::from_slice(&ev.data).unwrap();
        assert_eq!(v["unchanged_toast"], json!({"Note \"x\"": true}));

        let ev = encode_event(&ctx(), &rel, &meta(Op::Delete), Some(&before), None);
        let v: Value = serde_json::from_slice(&ev.data).unwrap();
        assert_eq!((v["op"].as_str(), &v["after"]), (Some("d"), &Value::Null));
        assert_eq!(ev.partition_key, "public.orders:[1]");
    }

    #[test]
    fn truncate_and_snapshot() {
        let rel = orders();
        let ev = encode_event(&ctx(), &rel, &meta(Op::Truncate), None, None);
        assert_eq!(ev.partition_key, "public.orders");
        let v: Value = serde_json::from_slice(&ev.data).unwrap();
        assert_eq!(
            (&v["before"], &v["after"], &v["op"]),
            (&Value::Null, &Value::Null, &json!("t"))
        );

        let m = ChangeMeta {
            op: Op::Read,
            snapshot: SnapshotMarker::Last,
            txid: None,
            lsn: Lsn::ZERO,
            ..meta(Op::Read)
        };
        let after = row_from_tuple(&rel, &[text("3"), TupleValue::Null], false).unwrap();
        let v: Value =
            serde_json::from_slice(&encode_event(&ctx(), &rel, &m, None, Some(&after)).data)
                .unwrap();
        assert_eq!(v["source"]["snapshot"], "last");
        assert_eq!(v["source"]["txId"], Value::Null);
        assert_eq!(v["source"]["lsn"], 0);
        assert_eq!(v["after"], json!({"id": 3, "Note \"x\"": null}));
    }

    #[test]
    fn long_partition_key_is_hashed() {
        let mut rel = orders();
        rel.columns[0].type_oid = 25;
        let long = "k".repeat(300);
        let after = row_from_tuple(&rel, &[text(&long), TupleValue::Null], false).unwrap();
        let ev = encode_event(&ctx(), &rel, &meta(Op::Create), None, Some(&after));
        assert_eq!(ev.partition_key.len(), 32);
        assert_eq!(
            ev.partition_key,
            hex::encode(Md5::digest(
                format!("public.orders:[\"{long}\"]").as_bytes()
            ))
        );
    }

    #[test]
    fn partition_keys_longer_than_256_utf8_bytes_are_hashed() {
        let mut rel = orders();
        rel.columns[0].type_oid = 25;
        let key_of = |id: &str| {
            let after = row_from_tuple(&rel, &[text(id), TupleValue::Null], false).unwrap();
            encode_event(&ctx(), &rel, &meta(Op::Create), None, Some(&after)).partition_key
        };
        // "public.orders:[\"" + id + "\"]" is 18 bytes around the id.
        let fits = "k".repeat(MAX_PARTITION_KEY_BYTES - 18);
        assert_eq!(key_of(&fits), format!("public.orders:[\"{fits}\"]"));
        let over = "k".repeat(MAX_PARTITION_KEY_BYTES - 17);
        assert_eq!(key_of(&over).len(), 32, "one byte over: hashed");
        // 60 crabs: 60 code points, 120 UTF-16 units, 240 UTF-8 bytes (+18).
        let crabs = "🦀".repeat(60);
        assert_eq!(key_of(&crabs).len(), 32, "UTF-8 bytes decide, not chars");
        assert!(key_of(&"é".repeat(119)).len() <= MAX_PARTITION_KEY_BYTES);
    }

    /// REPLICA IDENTITY FULL with a primary key: every column is flagged as
    /// replica identity, but the partition key is the primary key only.
    fn full_with_primary_key() -> Relation {
        Relation {
            key_indices: vec![0, 1],
            partition_indices: vec![0],
            ..orders()
        }
    }

    #[test]
    fn a_full_table_with_a_primary_key_keeps_one_partition_key_per_row() {
        let rel = full_with_primary_key();
        let row = |note: &str| row_from_tuple(&rel, &[text("7"), text(note)], false).unwrap();
        let insert = encode_event(&ctx(), &rel, &meta(Op::Create), None, Some(&row("a")));
        let update = encode_event(
            &ctx(),
            &rel,
            &meta(Op::Update),
            Some(&row("a")),
            Some(&row("b")),
        );
        let delete = encode_event(&ctx(), &rel, &meta(Op::Delete), Some(&row("b")), None);
        for ev in [&insert, &update, &delete] {
            assert_eq!(ev.partition_key, "public.orders:[7]");
            assert_eq!(ev.key, "[7]");
        }
    }

    #[test]
    fn a_full_table_without_a_key_partitions_by_table() {
        let rel = Relation {
            partition_indices: vec![],
            ..full_with_primary_key()
        };
        let after = row_from_tuple(&rel, &[text("7"), text("x")], false).unwrap();
        let ev = encode_event(&ctx(), &rel, &meta(Op::Create), None, Some(&after));
        assert_eq!(ev.partition_key, "public.orders");
        assert_eq!(ev.key, "[7,\"x\"]", "messages still name the row");
    }

    #[test]
    fn an_unchanged_toast_key_value_is_taken_from_the_old_tuple() {
        let mut rel = full_with_primary_key();
        rel.columns[0].type_oid = 25;
        let before = row_from_tuple(&rel, &[text("big-key"), text("a")], false).unwrap();
        let after = row_from_tuple(&rel, &[TupleValue::UnchangedToast, text("b")], false).unwrap();
        let ev = encode_event(&ctx(), &rel, &meta(Op::Update), Some(&before), Some(&after));
        assert_eq!(ev.partition_key, "public.orders:[\"big-key\"]");
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        assert!(row_from_tuple(&orders(), &[text("1")], false).is_err());
    }

    #[test]
    fn pg_epoch() {
        assert_eq!(pg_micros_to_unix_ms(0), 946_684_800_000);
        assert_eq!(pg_micros_to_unix_ms(1_500), 946_684_800_001);
    }

    #[test]
    fn values_are_written_exactly_as_serde_json_writes_them() {
        let controls: String = (0u8..0x20).map(char::from).collect();
        let values = [
            Value::Null,
            json!(true),
            json!(false),
            json!(0),
            json!(-1),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(1.5),
            json!(-0.000_123),
            json!("plain"),
            json!("quote \" backslash \\ slash / del \u{7f} é 日本 🦀"),
            Value::String(controls),
            json!(""),
            json!(["a", 1, null, {"k": "v\n"}]),
            json!({"nested": {"x": [true, 2.5]}}),
        ];
        for value in values {
            let mut out = String::new();
            push_json_value(&mut out, &value);
            assert_eq!(out, serde_json::to_string(&value).unwrap(), "{value:?}");
        }
    }
}
