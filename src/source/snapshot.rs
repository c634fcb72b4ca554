//! The initial snapshot: create the slot with an exported snapshot, copy every
//! table through that snapshot as `op = "r"` events, and hand back the still
//! idle replication session so streaming starts exactly at the slot's
//! consistent point (see the parent module for why that has no gap).
//!
//! Rows are read with `COPY (SELECT …) TO STDOUT` (text format, the same text
//! output functions pgoutput uses, so one encoder serves both) and streamed
//! row by row into the sink with backpressure: memory does not grow with
//! table size. The last row of the whole snapshot is marked
//! `snapshot = "last"` (one row of look-ahead). Progress (a bar on a
//! terminal, log lines otherwise) is `progress`'s business.

use std::sync::Arc;

use futures_util::StreamExt;
use pgwire_replication::{ReplicationClient, ReplicationConfig};
use serde_json::Value;
use tokio_postgres::Client;

use super::progress::SnapshotProgress;
use super::relation_cache::Relation;
use super::replication::{
    connect_sql, consistent_point, create_slot, done_marker, pg_message, set_snapshot_marker,
    started_marker, SlotUse,
};
use super::{quote_ident, quote_literal};
use crate::config::SourceConfig;
use crate::encode::encode_text_noted;
use crate::event::{
    encode_event, now_ms, report_conversions, ChangeMeta, EventContext, Op, Row, SnapshotMarker,
};
use crate::lsn::Lsn;
use crate::produce::{Delivery, ProduceError};
use crate::shutdown::Shutdown;
use crate::sink::RecordWriter;

/// How often (in rows) the copy checks for shutdown.
pub const SHUTDOWN_CHECK_EVERY_ROWS: u64 = 100_000;

/// A finished snapshot: the gated session (START_REPLICATION not yet sent)
/// and the slot's consistent point.
pub struct Snapshot {
    pub client: ReplicationClient,
    pub consistent_point: Lsn,
    pub rows: u64,
}

/// Create the slot and copy `tables`. `Ok(None)`: shutdown was requested
/// before the snapshot was delivered (the next start redoes it).
///
/// [`SlotUse::Redo`]: an earlier snapshot was cut short (killed, crashed). Its rows may
/// be in the stream already, including rows deleted since, which this
/// snapshot will not copy and no change event will remove. So the snapshot
/// starts with one truncate event per table at its own position (consistent
/// point, 0): the merge drops everything ordered before it and keeps this
/// snapshot's rows, which sort at that same position.
/// [`SlotUse::Temporary`]: the slot is temporary and no marker is written.
#[allow(clippy::too_many_arguments)]
pub async fn take_snapshot<W: RecordWriter>(
    source: &SourceConfig,
    replication: ReplicationConfig,
    admin: &Client,
    tables: &[Relation],
    ctx: &EventContext,
    delivery: &mut Delivery<W>,
    shutdown: &Shutdown,
    slot_use: SlotUse,
) -> Result<Option<Snapshot>, ProduceError> {
    let temporary = slot_use == SlotUse::Temporary;
    let (url, publication) = (source.url.as_str(), source.publication.as_str());
    let slot = replication.slot.clone();
    // A stale marker must never outlive the slot it describes; "started"
    // tells the next start, should this one be cut short, to redo it.
    if !temporary {
        set_snapshot_marker(admin, publication, Some(&started_marker(&slot))).await?;
    }
    let (client, rows) = create_slot(replication, temporary, true).await?;
    let consistent = consistent_point(&rows)?;
    crate::telemetry::health().set(crate::produce::SOURCE_CONDITION, Ok(()));
    let snapshot_name = rows
        .first()
        .and_then(|r| r.get(2).cloned().flatten())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok_or_else(|| ProduceError::Snapshot {
            detail: "CREATE_REPLICATION_SLOT returned no snapshot name".into(),
        })?;
    let started_ms = now_ms();
    tracing::info!(slot, consistent_point = %consistent, tables = tables.len(), "created slot; copying tables");

    let sql = connect_sql(url).await?;
    sql.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
        quote_literal(&snapshot_name)
    ))
    .await
    .map_err(|e| ProduceError::Snapshot {
        detail: format!("cannot use the exported snapshot: {}", pg_message(&e)),
    })?;

    let meta = |snapshot| ChangeMeta {
        op: Op::Read,
        snapshot,
        commit_time_ms: started_ms,
        txid: None,
        commit_lsn: consistent,
        lsn: Lsn::ZERO,
    };
    if slot_use == SlotUse::Redo {
        tracing::warn!(
            "an earlier snapshot was cut short: this one starts with a truncate event per table, so the merge drops the rows it sent"
        );
        for table in tables {
            let truncate = ChangeMeta {
                op: Op::Truncate,
                ..meta(SnapshotMarker::True)
            };
            delivery.push_event(encode_event(ctx, table, &truncate, None, None))?;
            delivery.wait_for_room().await?;
        }
    }
    let mut held: Option<(Arc<Relation>, Row)> = None;
    let mut total = 0u64;
    for table in tables {
        let rel = Arc::new(table.clone());
        let columns: Vec<String> = rel.columns.iter().map(|c| quote_ident(&c.name)).collect();
        let copy = format!(
            "COPY (SELECT {} FROM {}.{}) TO STDOUT",
            columns.join(", "),
            quote_ident(&rel.schema),
            quote_ident(&rel.name)
        );
        let stream = sql
            .copy_out(copy.as_str())
            .await
            .map_err(|e| ProduceError::Snapshot {
                detail: format!(
                    "COPY of {} failed: {}",
                    rel.qualified_name(),
                    pg_message(&e)
                ),
            })?;
        let mut stream = std::pin::pin!(stream);
        let mut buffer: Vec<u8> = Vec::new();
        let estimated = estimated_rows(admin, &rel).await;
        let mut progress = SnapshotProgress::start(&rel.qualified_name(), estimated);
        loop {
            let chunk = stream.next().await;
            let done = chunk.is_none();
            if let Some(chunk) = chunk {
                let chunk = chunk.map_err(|e| ProduceError::Snapshot {
                    detail: format!(
                        "COPY of {} failed: {}",
                        rel.qualified_name(),
                        pg_message(&e)
                    ),
                })?;
                buffer.extend_from_slice(&chunk);
            }
            let mut start = 0;
            while let Some(nl) = buffer[start..].iter().position(|&b| b == b'\n') {
                let line = &buffer[start..start + nl];
                start += nl + 1;
                let row = parse_copy_row(&rel, line)?;
                if let Some((prev_rel, prev_row)) = held.replace((Arc::clone(&rel), row)) {
                    let ev = encode_event(
                        ctx,
                        &prev_rel,
                        &meta(SnapshotMarker::True),
                        None,
                        Some(&prev_row),
                    );
                    delivery.push_event(ev)?;
                    delivery.wait_for_room().await?;
                }
                progress.row();
                total += 1;
                if total.is_multiple_of(SHUTDOWN_CHECK_EVERY_ROWS) && shutdown.is_triggered() {
                    tracing::info!("shutdown during snapshot: it will start over on the next run");
                    return Ok(None);
                }
            }
            buffer.drain(..start);
            if done {
                break;
            }
        }
        if !buffer.is_empty() {
            return Err(ProduceError::Snapshot {
                detail: format!("COPY of {} ended mid-row", rel.qualified_name()),
            });
        }
        progress.finish();
    }
    if let Some((rel, row)) = held.take() {
        let ev = encode_event(ctx, &rel, &meta(SnapshotMarker::Last), None, Some(&row));
        delivery.push_event(ev)?;
    }
    sql.batch_execute("COMMIT")
        .await
        .map_err(|e| ProduceError::sql("ending the snapshot transaction", &e))?;

    if !delivery.drain(shutdown, None).await? {
        tracing::info!(
            "shutdown before the snapshot was delivered: it will start over on the next run"
        );
        return Ok(None);
    }
    let marker = super::coverage::with_tables(
        &done_marker(&slot, consistent),
        &super::coverage::table_names(tables),
    );
    if !temporary {
        set_snapshot_marker(admin, publication, Some(&marker)).await?;
    }
    tracing::info!(rows = total, consistent_point = %consistent, "snapshot delivered");
    Ok(Some(Snapshot {
        client,
        consistent_point: consistent,
        rows: total,
    }))
}

/// The planner's row estimate of `rel` (`pg_class.reltuples`); `None` when
/// unknown (never vacuumed or analyzed) or unreadable.
async fn estimated_rows(admin: &Client, rel: &Relation) -> Option<u64> {
    let row = admin
        .query_opt(
            "SELECT c.reltuples::float8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
            &[&rel.schema, &rel.name],
        )
        .await
        .ok()??;
    let estimate: f64 = row.try_get(0).ok()?;
    (estimate >= 0.0).then_some(estimate as u64)
}

/// One COPY text-format line -> a row of encoded values.
pub fn parse_copy_row(rel: &Relation, line: &[u8]) -> Result<Row, ProduceError> {
    let fields = split_copy_line(line);
    if fields.len() != rel.columns.len() {
        return Err(ProduceError::Snapshot {
            detail: format!(
                "COPY of {} returned {} fields for {} columns",
                rel.qualified_name(),
                fields.len(),
                rel.columns.len()
            ),
        });
    }
    let mut notes = Vec::new();
    let row: Row = rel
        .columns
        .iter()
        .zip(fields)
        .enumerate()
        .map(|(i, (col, field))| {
            Some(match field {
                None => Value::Null,
                Some(text) => {
                    let (value, note) = encode_text_noted(col.type_oid, &text);
                    notes.extend(note.map(|n| (i, n)));
                    value
                }
            })
        })
        .collect();
    report_conversions(rel, &row, &notes);
    Ok(row)
}

/// Split a COPY text line on tabs and undo its escapes; `\N` is NULL.
pub fn split_copy_line(line: &[u8]) -> Vec<Option<String>> {
    let mut fields = Vec::new();
    for raw in line.split(|&b| b == b'\t') {
        if raw == b"\\N" {
            fields.push(None);
            continue;
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'\\' && i + 1 < raw.len() {
                let c = raw[i + 1];
                i += 2;
                match c {
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'v' => out.push(11),
                    b'0'..=b'7' => {
                        let mut value = u32::from(c - b'0');
                        let mut digits = 1;
                        while digits < 3 && i < raw.len() && (b'0'..=b'7').contains(&raw[i]) {
                            value = value * 8 + u32::from(raw[i] - b'0');
                            i += 1;
                            digits += 1;
                        }
                        out.push(value as u8);
                    }
                    b'x' if i < raw.len() && raw[i].is_ascii_hexdigit() => {
                        let mut value = 0u32;
                        let mut digits = 0;
                        while digits < 2 && i < raw.len() && raw[i].is_ascii_hexdigit() {
                            value = value * 16 + (raw[i] as char).to_digit(16).unwrap_or(0);
                            i += 1;
                            digits += 1;
                        }
                        out.push(value as u8);
                    }
                    other => out.push(other),
                }
            } else {
                out.push(raw[i]);
                i += 1;
            }
        }
        fields.push(Some(String::from_utf8_lossy(&out).into_owned()));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::pgoutput::ReplicaIdentity;
    use crate::source::relation_cache::Column;
    use serde_json::json;

    #[test]
    fn copy_line_escapes_and_nulls() {
        let fields = split_copy_line(b"1\t\\N\ta\\tb\\nc\\\\d\t");
        assert_eq!(
            fields,
            vec![
                Some("1".into()),
                None,
                Some("a\tb\nc\\d".into()),
                Some(String::new())
            ]
        );
        assert_eq!(split_copy_line(b"\\x41\\101"), vec![Some("AA".into())]);
    }

    #[test]
    fn copy_row_encodes_by_type() {
        let rel = Relation {
            id: 1,
            schema: "s".into(),
            name: "t".into(),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![
                Column {
                    name: "id".into(),
                    type_oid: 20,
                },
                Column {
                    name: "b".into(),
                    type_oid: 17,
                },
                Column {
                    name: "j".into(),
                    type_oid: 3802,
                },
            ],
            key_indices: vec![0],
            partition_indices: vec![0],
        };
        let row = parse_copy_row(&rel, b"7\t\\\\x00ff\t{\"a\": \"x\\\\ty\"}").unwrap();
        assert_eq!(
            row,
            vec![
                Some(json!(7)),
                Some(json!("00ff")),
                Some(json!({"a": "x\ty"}))
            ]
        );
        assert!(parse_copy_row(&rel, b"7").is_err());
    }
}
