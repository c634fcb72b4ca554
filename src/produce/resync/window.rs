//! The streaming loop's part of a re-sync: what it was asked to do at
//! which mark, the changed keys of the watched table, and the answers it
//! owes once the sink accepted a step.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Outcome, ToLoop, Wake};
use crate::event::{
    encode_event, encode_shape, now_ms, ChangeMeta, EventContext, Op, Position, Row, SnapshotMarker,
};
use crate::lsn::Lsn;
use crate::produce::delivery::Delivery;
use crate::produce::error::ProduceError;
use crate::sink::RecordWriter;
use crate::source::relation_cache::Relation;
use crate::source::resync::{ChunkSnapshot, REQUEST_MESSAGE};
use crate::sql::TableName;

/// The table being watched: its changed keys since the watch mark.
#[derive(Debug)]
struct Watch {
    tag: String,
    table: TableName,
    /// Answered when the mark is read; `None` once it was.
    seen: Option<oneshot::Sender<Lsn>>,
    /// (xid, key) of every change since the mark, trimmed at each chunk.
    changes: Vec<(u32, String)>,
    /// A TRUNCATE of the table since the last chunk.
    truncated: bool,
}

/// The loop's resync state (idle without a driver).
pub(crate) struct ResyncWindow {
    requests: Option<mpsc::Receiver<ToLoop>>,
    wake: Option<mpsc::UnboundedSender<Wake>>,
    watch: Option<Watch>,
    /// Chunks and sweeps waiting for their mark, by tag.
    at_mark: HashMap<String, ToLoop>,
    /// Answers owed once the slot may be confirmed up to their LSN (the end
    /// of the mark's transaction; `None` until its commit is read).
    owed: Vec<(Option<Lsn>, Outcome, oneshot::Sender<Outcome>)>,
}

impl ResyncWindow {
    /// A window fed by a driver's link.
    pub(crate) fn new(requests: mpsc::Receiver<ToLoop>, wake: mpsc::UnboundedSender<Wake>) -> Self {
        ResyncWindow {
            requests: Some(requests),
            wake: Some(wake),
            ..Self::idle()
        }
    }

    /// No driver (a temporary slot): marks and requests are ignored.
    pub(crate) fn idle() -> Self {
        ResyncWindow {
            requests: None,
            wake: None,
            watch: None,
            at_mark: HashMap::new(),
            owed: Vec::new(),
        }
    }

    /// The driver's next request; pending forever without a driver.
    pub(crate) async fn next_request(&mut self) -> ToLoop {
        loop {
            let Some(requests) = self.requests.as_mut() else {
                return std::future::pending().await;
            };
            match requests.recv().await {
                Some(request) => return request,
                None => self.requests = None,
            }
        }
    }

    /// Keep a request until its mark arrives.
    pub(crate) fn accept(&mut self, request: ToLoop) {
        match request {
            ToLoop::Watch { tag, table, seen } => {
                self.watch = Some(Watch {
                    tag,
                    table,
                    seen: Some(seen),
                    changes: Vec::new(),
                    truncated: false,
                });
            }
            ToLoop::Chunk { ref tag, .. } | ToLoop::Sweep { ref tag, .. } => {
                self.at_mark.insert(tag.clone(), request);
            }
        }
    }

    /// Ask the driver to re-sync `table` (`why`: for its log). Without a
    /// driver (a temporary slot) nothing is asked.
    pub(crate) fn request(&self, table: TableName, why: &'static str) {
        self.wake(Wake::Resync { table, why });
    }

    fn wake(&self, wake: Wake) {
        if let Some(driver) = &self.wake {
            let _ = driver.send(wake);
        }
    }

    /// Whether any table is being recorded (one check per change when not).
    pub(crate) fn is_watching(&self) -> bool {
        self.watch.as_ref().is_some_and(|w| w.seen.is_none())
    }

    /// Whether changes of `rel` are being recorded.
    pub(crate) fn watches(&self, rel: &Relation) -> bool {
        self.is_watching()
            && self
                .watch
                .as_ref()
                .is_some_and(|w| w.table.schema == rel.schema && w.table.name == rel.name)
    }

    /// A change of the watched table by transaction `xid`.
    pub(crate) fn record(&mut self, xid: u32, keys: impl IntoIterator<Item = String>) {
        if let Some(watch) = self.watch.as_mut() {
            watch.changes.extend(keys.into_iter().map(|key| (xid, key)));
        }
    }

    /// The watched table was truncated.
    pub(crate) fn truncated(&mut self) {
        if let Some(watch) = self.watch.as_mut() {
            watch.truncated = true;
        }
    }

    /// A `kinesync_resync` message read from the stream at `at`: its
    /// transaction's commit LSN and its own LSN (marks are transactional, so
    /// their commit flushes them to the walsender at once).
    pub(crate) fn on_message<W: RecordWriter>(
        &mut self,
        content: &[u8],
        at: Position,
        ctx: &EventContext,
        delivery: &mut Delivery<W>,
    ) -> Result<(), ProduceError> {
        let content = String::from_utf8_lossy(content);
        if content == REQUEST_MESSAGE {
            self.wake(Wake::Requested);
            return Ok(());
        }
        if let Some(watch) = self.watch.as_mut().filter(|w| w.tag == content) {
            if let Some(seen) = watch.seen.take() {
                let _ = seen.send(at.commit_lsn);
            }
            return Ok(());
        }
        match self.at_mark.remove(content.as_ref()) {
            Some(ToLoop::Chunk {
                rel,
                shape,
                rows,
                snapshot,
                accepted,
                ..
            }) => {
                if let Some(shape) = shape {
                    // Just before the chunk's rows, which it describes.
                    let before = Position {
                        lsn: Lsn(at.lsn.0.saturating_sub(1)),
                        ..at
                    };
                    delivery.push_event(encode_shape(ctx, &shape, before, None, now_ms()))?;
                }
                if let Some(outcome) = self.emit_chunk(&rel, rows, &snapshot, at, ctx, delivery)? {
                    self.owe(outcome, accepted);
                }
            }
            Some(ToLoop::Sweep {
                rel,
                start,
                accepted,
                ..
            }) => {
                let at = Position {
                    commit_lsn: start,
                    lsn: start,
                };
                delivery.push_event(encode_event(
                    ctx,
                    &rel,
                    &meta(Op::ResyncEnd, at),
                    None,
                    None,
                ))?;
                self.watch = None;
                self.owe(Outcome::Accepted { rows: 0 }, accepted);
            }
            Some(ToLoop::Watch { .. }) | None => {}
        }
        Ok(())
    }

    /// The chunk's rows at `lsn`, without the keys changed by transactions
    /// its snapshot did not see (none at all after a TRUNCATE).
    fn emit_chunk<W: RecordWriter>(
        &mut self,
        rel: &Arc<Relation>,
        rows: Vec<Row>,
        snapshot: &ChunkSnapshot,
        at: Position,
        ctx: &EventContext,
        delivery: &mut Delivery<W>,
    ) -> Result<Option<Outcome>, ProduceError> {
        let Some(watch) = self.watch.as_mut() else {
            // Not watched (cannot happen: a reset drops the chunk too): no
            // answer, so the driver starts the table again from its watch.
            return Ok(None);
        };
        if std::mem::take(&mut watch.truncated) {
            return Ok(Some(Outcome::Void));
        }
        let newer: HashSet<&str> = watch
            .changes
            .iter()
            .filter(|(xid, _)| snapshot.hides(*xid))
            .map(|(_, key)| key.as_str())
            .collect();
        let meta = meta(Op::Read, at);
        let mut sent = 0;
        for row in &rows {
            let event = encode_event(ctx, rel, &meta, None, Some(row));
            if !newer.contains(event.key.as_str()) {
                delivery.push_event(event)?;
                sent += 1;
            }
        }
        // Older transactions are visible to every later chunk's snapshot.
        let xmin = snapshot.xmin();
        watch
            .changes
            .retain(|(xid, _)| xid.wrapping_sub(xmin) as i32 >= 0);
        Ok(Some(Outcome::Accepted { rows: sent }))
    }

    /// Answer once the mark's transaction is confirmable (void at once).
    fn owe(&mut self, outcome: Outcome, answer: oneshot::Sender<Outcome>) {
        if outcome == Outcome::Void {
            let _ = answer.send(outcome);
            return;
        }
        self.owed.push((None, outcome, answer));
    }

    /// The transaction of the marks just read ends at `end_lsn`.
    pub(crate) fn committed(&mut self, end_lsn: Lsn) {
        for (lsn, _, _) in &mut self.owed {
            lsn.get_or_insert(end_lsn);
        }
    }

    /// The slot may be confirmed up to `confirmed`: answer what it covers.
    pub(crate) fn settle(&mut self, confirmed: Lsn) {
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.owed)
            .into_iter()
            .partition(|(lsn, _, _)| lsn.is_some_and(|lsn| lsn <= confirmed));
        self.owed = rest;
        for (_, outcome, answer) in due {
            let _ = answer.send(outcome);
        }
    }

    /// The replication session was lost: forget everything; the driver,
    /// its answers dropped, starts its table again.
    pub(crate) fn reset(&mut self) {
        self.watch = None;
        self.at_mark.clear();
        self.owed.clear();
    }
}

/// A resync event at `at` (chunk rows: their mark; the sweep: the start).
fn meta(op: Op, at: Position) -> ChangeMeta {
    ChangeMeta {
        op,
        snapshot: SnapshotMarker::Incremental,
        commit_time_ms: now_ms(),
        txid: None,
        commit_lsn: at.commit_lsn,
        lsn: at.lsn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KinesisConfig;
    use crate::event::row_from_tuple;
    use crate::sink::{OutRecord, PutError, RecordResult};
    use crate::source::pgoutput::TupleValue;

    struct Accepting;

    impl RecordWriter for Accepting {
        async fn put_records(&self, records: &[OutRecord]) -> Result<Vec<RecordResult>, PutError> {
            Ok(vec![RecordResult::Accepted; records.len()])
        }
    }

    fn items() -> Arc<Relation> {
        Arc::new(Relation::keyed_by_first(
            "public",
            "items",
            &[("id", 23), ("v", 25)],
        ))
    }

    fn row(id: &str) -> Row {
        let text = |s: &str| TupleValue::Text(bytes::Bytes::copy_from_slice(s.as_bytes()));
        row_from_tuple(&items(), &[text(id), text("v")], false).unwrap()
    }

    fn ctx() -> EventContext {
        EventContext {
            slot: "s".into(),
            database: "d".into(),
        }
    }

    fn at(lsn: u64) -> Position {
        Position {
            commit_lsn: Lsn(lsn),
            lsn: Lsn(lsn),
        }
    }

    /// A window watching public.items since a mark at 100.
    fn watching(delivery: &mut Delivery<Accepting>) -> ResyncWindow {
        let (seen, mut watched) = oneshot::channel();
        let mut window = ResyncWindow::idle();
        window.accept(ToLoop::Watch {
            tag: "watch:t".into(),
            table: TableName::new("public", "items"),
            seen,
        });
        assert!(!window.watches(&items()), "not before its mark");
        window
            .on_message(b"watch:t", at(100), &ctx(), delivery)
            .unwrap();
        assert_eq!(watched.try_recv(), Ok(Lsn(100)));
        assert!(window.watches(&items()));
        window
    }

    fn chunk(window: &mut ResyncWindow, snapshot: ChunkSnapshot) -> oneshot::Receiver<Outcome> {
        let (accepted, answer) = oneshot::channel();
        window.accept(ToLoop::Chunk {
            tag: "high:t:0".into(),
            rel: items(),
            shape: None,
            rows: vec![row("1"), row("2"), row("3")],
            snapshot,
            accepted,
        });
        answer
    }

    #[tokio::test]
    async fn a_chunk_leaves_out_the_keys_changed_by_transactions_its_snapshot_did_not_see() {
        let mut delivery = Delivery::new(Accepting, &KinesisConfig::default(), None);
        let mut window = watching(&mut delivery);
        window.record(90, ["[1]".to_owned()]);
        window.record(105, ["[2]".to_owned()]);
        let snapshot = ChunkSnapshot::new(100, 110, vec![105]);
        let mut answer = chunk(&mut window, snapshot);
        window
            .on_message(b"high:t:0", at(200), &ctx(), &mut delivery)
            .unwrap();
        assert!(
            answer.try_recv().is_err(),
            "no answer before its commit is confirmable"
        );
        window.committed(Lsn(210));
        window.settle(Lsn(209));
        assert!(
            answer.try_recv().is_err(),
            "nor before the slot may pass it"
        );
        window.settle(Lsn(210));
        assert_eq!(
            answer.try_recv(),
            Ok(Outcome::Accepted { rows: 2 }),
            "key 2 was changed by xid 105, in progress for the snapshot: left out"
        );
    }

    #[tokio::test]
    async fn a_truncate_during_a_chunk_voids_it() {
        let mut delivery = Delivery::new(Accepting, &KinesisConfig::default(), None);
        let mut window = watching(&mut delivery);
        window.truncated();
        let mut answer = chunk(&mut window, ChunkSnapshot::default());
        window
            .on_message(b"high:t:0", at(200), &ctx(), &mut delivery)
            .unwrap();
        assert_eq!(answer.try_recv(), Ok(Outcome::Void));
    }

    #[tokio::test]
    async fn a_lost_session_drops_every_answer_so_the_driver_starts_again() {
        let mut delivery = Delivery::new(Accepting, &KinesisConfig::default(), None);
        let mut window = watching(&mut delivery);
        let mut answer = chunk(&mut window, ChunkSnapshot::default());
        window.reset();
        window
            .on_message(b"high:t:0", at(200), &ctx(), &mut delivery)
            .unwrap();
        assert!(matches!(
            answer.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        assert!(!window.watches(&items()));
    }
}
