//! Everything of an event after its rows: `,"op":...,"ts_ms":...,
//! "source":{...}}`, written without `core::fmt`.

use super::{now_ms, ChangeMeta, EventContext};
use crate::encode::{push_i64, push_u64, write_json_str};
use crate::source::relation_cache::Relation;

/// About the bytes [`write_envelope`] takes besides the names it copies.
pub const ENVELOPE_BYTES: usize = 300;

/// `,"op":...,"ts_ms":...,"source":{...}}`: everything after the rows.
pub fn write_envelope(out: &mut Vec<u8>, ctx: &EventContext, rel: &Relation, meta: &ChangeMeta) {
    out.extend_from_slice(b",\"op\":\"");
    out.extend_from_slice(meta.op.code().as_bytes());
    out.extend_from_slice(b"\",\"ts_ms\":");
    push_i64(out, now_ms());
    out.extend_from_slice(
        concat!(
            ",\"source\":{\"version\":\"",
            env!("CARGO_PKG_VERSION"),
            "\",\"connector\":\"postgresql\",\"name\":"
        )
        .as_bytes(),
    );
    write_json_str(out, &ctx.slot);
    out.extend_from_slice(b",\"ts_ms\":");
    push_i64(out, meta.commit_time_ms);
    out.extend_from_slice(b",\"snapshot\":\"");
    out.extend_from_slice(meta.snapshot.as_str().as_bytes());
    out.extend_from_slice(b"\",\"db\":");
    write_json_str(out, &ctx.database);
    out.extend_from_slice(b",\"sequence\":\"[\\\"");
    push_u64(out, meta.commit_lsn.0);
    out.extend_from_slice(b"\\\",\\\"");
    push_u64(out, meta.lsn.0);
    out.extend_from_slice(b"\\\"]\",\"schema\":");
    write_json_str(out, &rel.schema);
    out.extend_from_slice(b",\"table\":");
    write_json_str(out, &rel.name);
    match meta.txid {
        Some(xid) => {
            out.extend_from_slice(b",\"txId\":");
            push_u64(out, u64::from(xid));
        }
        None => out.extend_from_slice(b",\"txId\":null"),
    }
    out.extend_from_slice(b",\"lsn\":");
    push_u64(out, meta.lsn.0);
    out.extend_from_slice(b",\"commit_lsn\":");
    push_u64(out, meta.commit_lsn.0);
    out.extend_from_slice(b",\"xmin\":null}}");
}
