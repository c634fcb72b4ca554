//! The change event (Debezium-shaped envelope) and its Kinesis record.
//!
//! One event is one JSON object; one Kinesis record carries exactly one event
//! (Redshift streaming ingestion cannot de-aggregate). This module owns the
//! envelope layout, the `source` block, and the partition key; `encode` owns
//! the column values and the per-relation plan that writes them.
//!
//! Two ways in, one layout: [`encode_change`] writes an event straight from
//! pgoutput tuples through the relation's [`RelationPlan`] (the streaming
//! path), [`encode_event`] from rows of `serde_json::Value`s (the snapshot;
//! `rows`). Their bytes are the same (tests/properties.rs). The full contract is `docs/events.md`; the merge SQL
//! depends on it field by field, so change both together.

mod envelope;
mod rows;

use md5::{Digest, Md5};

pub use crate::encode::{push_json_str, ShapeMismatch, Tuple};
use crate::encode::{report, RelationPlan};
use crate::lsn::Lsn;
use crate::source::pgoutput::TupleValue;
use crate::source::relation_cache::Relation;
use envelope::{write_envelope, ENVELOPE_BYTES};
pub use rows::{
    encode_event, encode_event_with, report_conversions, row_from_tuple, unchanged_toast, Row,
};

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
    /// The end of a re-sync: the table's rows ordered before this event's
    /// position that no chunk or change sent again are gone (docs/events.md).
    ResyncEnd,
}

impl Op {
    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
            Op::ResyncEnd => "e",
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
    /// A row of a re-sync (`kinesync resync`), or its closing sweep.
    Incremental,
}

impl SnapshotMarker {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotMarker::True => "true",
            SnapshotMarker::Last => "last",
            SnapshotMarker::False => "false",
            SnapshotMarker::Incremental => "incremental",
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
    /// An update with an unchanged TOASTed value: its consumer needs the
    /// row's older events first (the merge takes the value from them), so it
    /// must follow them even under `kinesis.ordering = "position"`.
    pub needs_key_order: bool,
}

impl EncodedEvent {
    /// What Kinesis counts against the record limit: data plus partition key.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
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

/// Encode one change straight from its pgoutput tuples: `before` is the old
/// tuple (update, delete), `after` the new one (insert, update), neither for
/// a truncate. Every update carries `"unchanged_toast": {"<column>": true,
/// ...}` for the columns of `after` PostgreSQL did not send (unchanged
/// TOASTed values), so a consumer can tell an unchanged value from a real
/// value that happens to equal the placeholder. Values that went through a
/// documented conversion are reported, per row, with the row's key.
pub fn encode_change(
    ctx: &EventContext,
    plan: &RelationPlan,
    meta: &ChangeMeta,
    before: Option<Tuple>,
    after: Option<Tuple>,
) -> Result<EncodedEvent, ShapeMismatch> {
    let rel = &*plan.relation;
    let envelope = ENVELOPE_BYTES + ctx.slot.len() + ctx.database.len() + plan.table.len();
    let mut out = Vec::with_capacity(plan.row_capacity(&[before, after]) + envelope);
    out.extend_from_slice(b"{\"before\":");
    write_side(&mut out, plan, before)?;
    out.extend_from_slice(b",\"after\":");
    write_side(&mut out, plan, after)?;
    if meta.op == Op::Update {
        plan.write_unchanged_toast(&mut out, after.map_or(&[], |t| t.values));
    }
    write_envelope(&mut out, ctx, rel, meta);
    let (key, partition_key) = event_keys(rel, &plan.table, meta, before, after, |row, other| {
        plan.key_text(row, other)
    });
    let needs_key_order = meta.op == Op::Update
        && after.is_some_and(|t| {
            t.values
                .iter()
                .any(|v| matches!(v, TupleValue::UnchangedToast))
        });
    Ok(EncodedEvent {
        table: plan.table.clone(),
        key,
        partition_key,
        data: out,
        needs_key_order,
    })
}

/// `null`, or the row of `tuple` (its conversions reported).
fn write_side(
    out: &mut Vec<u8>,
    plan: &RelationPlan,
    side: Option<Tuple>,
) -> Result<(), ShapeMismatch> {
    let Some(tuple) = side else {
        out.extend_from_slice(b"null");
        return Ok(());
    };
    plan.check(tuple.values)?;
    let mut notes = Vec::new();
    plan.write_row(out, tuple, &mut notes);
    if !notes.is_empty() {
        let key = plan.key_text(tuple, None);
        report(&plan.relation, &plan.table, &key, &notes);
    }
    Ok(())
}

/// The event's row key (JSON array text, empty for a truncate) and its
/// partition key. `key_text` writes the key of a row, taking values it
/// does not carry from the other row of the event (the old tuple of an
/// update).
fn event_keys<R>(
    rel: &Relation,
    table: &str,
    meta: &ChangeMeta,
    before: Option<R>,
    after: Option<R>,
    key_text: impl FnOnce(R, Option<R>) -> String,
) -> (String, String) {
    let (key_row, other) = match meta.op {
        Op::Delete => (before, None),
        Op::Truncate | Op::ResyncEnd => (None, None),
        _ => (after, before),
    };
    let Some(row) = key_row else {
        return (String::new(), bounded_partition_key(table.to_owned()));
    };
    let key = key_text(row, other);
    // Primary key (or replica identity index): one row, one shard,
    // whatever the replica identity. No such key (FULL only): the
    // table, so the row's events still share a shard.
    let partition = if rel.partition_indices.is_empty() {
        table.to_owned()
    } else {
        let mut partition = String::with_capacity(table.len() + 1 + key.len());
        partition.push_str(table);
        partition.push(':');
        partition.push_str(&key);
        partition
    };
    (key, bounded_partition_key(partition))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::push_json_value;
    use crate::source::pgoutput::TupleValue;
    use serde_json::{json, Value};

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
        assert!(
            !ev.needs_key_order,
            "self-contained: may overtake older events"
        );
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
        assert!(
            ev.needs_key_order,
            "its value comes from the row's older events"
        );

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
            let mut out = Vec::new();
            push_json_value(&mut out, &value);
            assert_eq!(out, serde_json::to_vec(&value).unwrap(), "{value:?}");
        }
    }
}
