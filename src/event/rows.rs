//! Events from rows of `serde_json::Value`s: the snapshot's path (its
//! `COPY` rows are encoded by `encode::encode_text_noted`), and the
//! reference the tuple path ([`super::encode_change`]) agrees with byte for
//! byte (tests/properties.rs).

use serde_json::Value;

use super::envelope::{write_envelope, ENVELOPE_BYTES};
use super::{event_keys, ChangeMeta, EncodedEvent, EventContext, Op};
use crate::encode::{
    encode_tuple_value_noted, message_key_indices, push_json_value, report, write_json_str,
    Conversion, ShapeMismatch, UNAVAILABLE_VALUE,
};
use crate::source::pgoutput::TupleValue;
use crate::source::relation_cache::Relation;

/// One row's column values, aligned with `Relation::columns`; `None` marks a
/// column the row does not carry (non-key columns of a `K` old tuple).
pub type Row = Vec<Option<Value>>;

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
    let key = key_text(row, None, message_key_indices(rel));
    report(rel, &rel.qualified_name(), &key, notes);
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
    let (key, partition_key) = event_keys(rel, &table, meta, before, after, |row, other| {
        key_text(row, other, message_key_indices(rel))
    });
    let mut out = Vec::with_capacity(ENVELOPE_BYTES + 256);
    out.extend_from_slice(b"{\"before\":");
    write_row(&mut out, rel, before);
    out.extend_from_slice(b",\"after\":");
    write_row(&mut out, rel, after);
    if meta.op == Op::Update {
        out.extend_from_slice(b",\"unchanged_toast\":{");
        for (n, &i) in unchanged.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            write_json_str(&mut out, &rel.columns[i].name);
            out.extend_from_slice(b":true");
        }
        out.push(b'}');
    }
    write_envelope(&mut out, ctx, rel, meta);
    EncodedEvent {
        table,
        key,
        partition_key,
        data: out,
        needs_key_order: meta.op == Op::Update && !unchanged.is_empty(),
    }
}

fn write_row(out: &mut Vec<u8>, rel: &Relation, row: Option<&Row>) {
    let Some(row) = row else {
        out.extend_from_slice(b"null");
        return;
    };
    out.push(b'{');
    let mut first = true;
    for (col, value) in rel.columns.iter().zip(row) {
        let Some(value) = value else { continue };
        if !first {
            out.push(b',');
        }
        first = false;
        write_json_str(out, &col.name);
        out.push(b':');
        push_json_value(out, value);
    }
    out.push(b'}');
}
