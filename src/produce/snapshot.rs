//! The initial snapshot, the producer's half: each row `source::snapshot`
//! reads becomes an `op = "r"` event and goes to [`Delivery`].
//!
//! All rows carry `commit_lsn = consistent point, lsn = 0`, so they sort
//! before every streamed change of the same row. The last row of the whole
//! snapshot is marked `snapshot = "last"` (one row of look-ahead). When an
//! earlier snapshot of the slot was cut short, its rows may be in the stream
//! already, including rows deleted since, which this snapshot will not copy
//! and no change event will remove: so this one starts with one truncate
//! event per table at its own position, and the merge drops everything
//! ordered before it. Backpressure: every row waits for room in the sink.

use std::sync::Arc;

use serde_json::Value;

use super::delivery::Delivery;
use super::error::ProduceError;
use super::shapes::push_snapshot_shapes;
use super::SOURCE_CONDITION;
use crate::encode::encode_text_noted;
use crate::event::{
    encode_event, now_ms, report_conversions, ChangeMeta, EventContext, Op, Row, Shape,
    SnapshotMarker,
};
use crate::lsn::Lsn;
use crate::shutdown::Shutdown;
use crate::sink::RecordWriter;
use crate::source::relation_cache::Relation;
use crate::source::snapshot::{CopyRow, SnapshotConsumer};

/// Snapshot rows -> events -> the sink.
pub(super) struct SnapshotEvents<'a, W: RecordWriter> {
    delivery: &'a mut Delivery<W>,
    ctx: &'a EventContext,
    shutdown: &'a Shutdown,
    /// (consistent point, the time the slot was created, Unix ms).
    at: (Lsn, i64),
    /// The previous row, sent when the next one comes (or as the last).
    held: Option<(Arc<Relation>, Row)>,
    /// Each table's shape, put before the snapshot's rows.
    shapes: &'a [Shape],
}

impl<'a, W: RecordWriter> SnapshotEvents<'a, W> {
    pub(super) fn new(
        delivery: &'a mut Delivery<W>,
        ctx: &'a EventContext,
        shutdown: &'a Shutdown,
    ) -> Self {
        SnapshotEvents {
            delivery,
            ctx,
            shutdown,
            at: (Lsn::ZERO, 0),
            held: None,
            shapes: &[],
        }
    }

    /// With a shape record per table before the rows (from the resolver).
    pub(super) fn with_shapes(mut self, shapes: &'a [Shape]) -> Self {
        self.shapes = shapes;
        self
    }

    fn meta(&self, op: Op, snapshot: SnapshotMarker) -> ChangeMeta {
        ChangeMeta {
            op,
            snapshot,
            commit_time_ms: self.at.1,
            txid: None,
            commit_lsn: self.at.0,
            lsn: Lsn::ZERO,
        }
    }
}

impl<W: RecordWriter> SnapshotConsumer for SnapshotEvents<'_, W> {
    type Error = ProduceError;

    async fn begin(
        &mut self,
        consistent_point: Lsn,
        redo: bool,
        tables: &[Relation],
    ) -> Result<(), ProduceError> {
        crate::telemetry::health().set(SOURCE_CONDITION, Ok(()));
        self.at = (consistent_point, now_ms());
        push_snapshot_shapes(self.ctx, self.shapes, self.at.0, self.at.1, self.delivery)?;
        if !redo {
            return Ok(());
        }
        tracing::warn!(
            "an earlier snapshot was cut short: this one starts with a truncate event per table, so the merge drops the rows it sent"
        );
        let truncate = self.meta(Op::Truncate, SnapshotMarker::True);
        for table in tables {
            let ev = encode_event(self.ctx, table, &truncate, None, None);
            self.delivery.push_event(ev)?;
            self.delivery.wait_for_room().await?;
        }
        Ok(())
    }

    async fn row(&mut self, table: &Arc<Relation>, row: CopyRow) -> Result<(), ProduceError> {
        let row = encode_row(table, row);
        if let Some((rel, prev)) = self.held.replace((Arc::clone(table), row)) {
            let meta = self.meta(Op::Read, SnapshotMarker::True);
            let ev = encode_event(self.ctx, &rel, &meta, None, Some(&prev));
            self.delivery.push_event(ev)?;
            self.delivery.wait_for_room().await?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<bool, ProduceError> {
        if let Some((rel, row)) = self.held.take() {
            let meta = self.meta(Op::Read, SnapshotMarker::Last);
            let ev = encode_event(self.ctx, &rel, &meta, None, Some(&row));
            self.delivery.push_event(ev)?;
        }
        self.delivery.drain(self.shutdown, None).await
    }
}

/// One row's COPY text fields -> encoded values (by column type).
pub fn encode_row(rel: &Relation, fields: CopyRow) -> Row {
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
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::snapshot::copy_row;
    use serde_json::json;

    #[test]
    fn copy_row_encodes_by_type() {
        let rel = Relation::keyed_by_first("s", "t", &[("id", 20), ("b", 17), ("j", 3802)]);
        let row = encode_row(
            &rel,
            copy_row(&rel, b"7\t\\\\x00ff\t{\"a\": \"x\\\\ty\"}").unwrap(),
        );
        assert_eq!(
            row,
            vec![
                Some(json!(7)),
                Some(json!("00ff")),
                Some(json!({"a": "x\ty"}))
            ]
        );
    }
}
