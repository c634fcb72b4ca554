//! The streaming loop: replication messages in, events out, confirmations
//! back, in one task.
//!
//! One `select!` with fixed priorities (shutdown, the publication check,
//! sink completions, a due retry, new data while there is room, an idle
//! beat) drives everything, which suits a current-thread runtime. Each
//! transaction's events are pushed to [`Delivery`] as they arrive; its
//! commit registers its end LSN, which is confirmed to the slot only once
//! the sink accepted every event up to it (see `ack`). A lost session is
//! reopened from the confirmed LSN after a growing delay; transactions
//! already queued before the loss are skipped when the server sends them
//! again. A graceful stop drains what is queued (bounded by
//! [`DRAIN_TIMEOUT`]), confirms it and waits for the server to hear it.

use std::collections::HashSet;
use std::time::Duration;

use pgwire_replication::{ReplicationClient, ReplicationEvent};
use tokio::time::Instant;

use super::delivery::{lsn_gauge, Delivery};
use super::error::ProduceError;
use super::probe::ShapeProbe;
use super::resync::ResyncWindow;
use super::shapes::StreamShapes;
use super::{
    DRAIN_TIMEOUT, HEARTBEAT_PREFIX, RECONNECT_BASE_DELAY, RECONNECT_MAX_DELAY, SLOT_BUSY_WAIT,
    SOURCE_CONDITION,
};
use crate::encode::{PlanCache, RelationPlan};
use crate::event::{
    encode_change, pg_micros_to_unix_ms, ChangeMeta, EventContext, Op, SnapshotMarker, Tuple,
};
use crate::lsn::Lsn;
use crate::shutdown::Shutdown;
use crate::sink::RecordWriter;
use crate::source::coverage::PublicationWatch;
use crate::source::error::{Retry, SourceError};
use crate::source::pgoutput::{decode, LogicalMessage, RelationBody};
use crate::source::relation_cache::RelationCache;
use crate::source::replication::start_stream;
use crate::source::resync::RESYNC_PREFIX;
use crate::sql::TableName;
use crate::telemetry::{health, metrics};

/// How often an idle streaming loop still tells [`health()`] it is alive.
const BEAT_INTERVAL: Duration = Duration::from_secs(1);

/// The transaction being received.
#[derive(Debug, Clone, Copy)]
pub(super) struct Txn {
    commit_lsn: Lsn,
    xid: u32,
    commit_time_ms: i64,
}

/// Streaming state for one run (survives reconnects).
pub(super) struct Streamer {
    /// The publication still covers every configured table.
    pub(super) watch: PublicationWatch,
    pub(super) check_every: Duration,
    pub(super) ctx: EventContext,
    /// Configured tables (a pre-existing publication may publish more).
    pub(super) wanted: HashSet<TableName>,
    pub(super) cache: RelationCache,
    /// The encoder plan of each relation in `cache`.
    pub(super) plans: PlanCache,
    pub(super) wanted_ids: HashSet<u32>,
    pub(super) txn: Option<Txn>,
    /// Inside a transaction already queued before a reconnect.
    pub(super) skipping: bool,
    /// Commit LSN of the newest transaction whose events are queued.
    pub(super) last_enqueued_commit: Lsn,
    /// The shape records to put before the changes (see `shapes`).
    pub(super) shapes: StreamShapes,
    /// The streaming loop's part of a re-sync (see `resync`).
    pub(super) resync: ResyncWindow,
    /// Shape records for schema changes no row change follows (see
    /// `probe`); none on a temporary slot.
    pub(super) probe: Option<ShapeProbe>,
}

impl Streamer {
    pub(super) async fn run<W: RecordWriter>(
        &mut self,
        config: pgwire_replication::ReplicationConfig,
        gated: Option<ReplicationClient>,
        ack: Lsn,
        delivery: &mut Delivery<W>,
        shutdown: &Shutdown,
    ) -> Result<(), ProduceError> {
        let mut client = open_session(&config, gated, ack).await?;
        tracing::info!(slot = config.slot, from = %ack, "streaming changes");
        health().set(SOURCE_CONDITION, Ok(()));
        metrics().confirmed_lsn.set(lsn_gauge(ack));
        let mut confirmed = ack;
        let mut failures: u32 = 0;
        let (mut beat, mut watch_timer) = (ticker(BEAT_INTERVAL), ticker(self.check_every));
        loop {
            health().beat();
            let retry_at = delivery.next_retry();
            let event = tokio::select! {
                biased;
                // 1. Shutdown: stop reading, drain, confirm.
                _ = shutdown.wait() => break,
                // The publication must still cover every configured table.
                _ = watch_timer.tick() => {
                    self.on_interval().await?;
                    continue;
                }
                // 2. Sink completions: acks become confirmable LSNs.
                r = delivery.completion(), if delivery.has_in_flight() => {
                    r?;
                    self.confirm(&client, delivery, &mut confirmed);
                    continue;
                }
                // A re-sync step, to take at its mark (see `resync`).
                request = self.resync.next_request() => {
                    self.resync.accept(request);
                    continue;
                }
                // 3. A failed record's retry time came.
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    delivery.step().await?;
                    continue;
                }
                // 4. New data, while there is room for it.
                ev = client.recv(), if delivery.has_room() => ev,
                // 5. Nothing happened for a while: still alive.
                _ = beat.tick() => continue,
            };
            match event {
                Ok(Some(ev)) => {
                    failures = 0;
                    self.on_event(ev, &client, delivery, &mut confirmed).await?;
                }
                Ok(None) => {
                    return Err(SourceError::Replication {
                        detail: "the server ended the replication stream".into(),
                        code: None,
                    }
                    .into())
                }
                Err(e) => {
                    let e = SourceError::from_replication(&config, e);
                    if e.retry() == Retry::Stop {
                        return Err(e.into());
                    }
                    let Some(reopened) = self
                        .reconnect(&config, e, confirmed, &mut failures, shutdown)
                        .await?
                    else {
                        return finish(None, delivery, confirmed, shutdown).await;
                    };
                    client = reopened;
                    tracing::info!(from = %confirmed, "replication reconnected");
                    health().set(SOURCE_CONDITION, Ok(()));
                }
            }
        }
        finish(Some(client), delivery, confirmed, shutdown).await
    }

    /// Every check interval: the publication, then a shape probe.
    async fn on_interval(&mut self) -> Result<(), ProduceError> {
        self.check_publication().await?;
        if let Some(probe) = self.probe.as_mut() {
            probe.tick().await;
        }
        Ok(())
    }

    /// The publication still covers every table; a partitioned table whose
    /// partitions changed is re-synced; a table created under a `schema.*`
    /// entry is streamed from now on and back-filled by a resync.
    async fn check_publication(&mut self) -> Result<(), ProduceError> {
        let news = self.watch.check().await?;
        for root in news.repartitioned {
            self.resync
                .request(root, "a partition was attached or detached");
        }
        for table in news.created {
            let rel = table.relation();
            self.wanted.insert(table.name.clone());
            self.cache
                .add_partition_key(table.name.clone(), rel.partition_columns());
            self.shapes.add_table(&table);
            if let Some(probe) = self.probe.as_mut() {
                probe.add_table(table.name.clone());
            }
            self.resync
                .request(table.name, "a table was created under a schema.* entry");
        }
        Ok(())
    }

    /// One replication event: a Relation message's types looked up for its
    /// shape record (see `shapes`), the event handled, then whatever became
    /// confirmable is confirmed.
    async fn on_event<W: RecordWriter>(
        &mut self,
        ev: ReplicationEvent,
        client: &ReplicationClient,
        delivery: &mut Delivery<W>,
        confirmed: &mut Lsn,
    ) -> Result<(), ProduceError> {
        self.shapes.prepare(&ev).await?;
        self.place_probed(&ev, delivery).await?;
        let idle_at = self.idle_position(&ev, delivery, *confirmed);
        self.handle(ev, delivery)?;
        for table in self.shapes.take_rewritten() {
            self.resync.request(
                table,
                "a column added with a volatile default rewrote the table",
            );
        }
        // A transaction without events for the sink (a heartbeat,
        // or changes of unpublished tables) is confirmable at once.
        self.confirm(client, delivery, confirmed);
        if let Some(lsn) = idle_at {
            client.update_applied_lsn(lsn.into());
            metrics().confirmed_lsn.set(lsn_gauge(lsn));
            *confirmed = lsn;
            self.resync.settle(lsn);
        }
        Ok(())
    }

    /// A probe's message came back: the shapes it read that held until
    /// now are placed at it (see `probe`).
    async fn place_probed<W: RecordWriter>(
        &mut self,
        ev: &ReplicationEvent,
        delivery: &mut Delivery<W>,
    ) -> Result<(), ProduceError> {
        let ReplicationEvent::Message {
            prefix,
            content,
            lsn,
            ..
        } = ev
        else {
            return Ok(());
        };
        let (Some(probe), Some(txn), false) = (self.probe.as_mut(), self.txn, self.skipping) else {
            return Ok(());
        };
        if !ShapeProbe::is_probe(prefix) {
            return Ok(());
        }
        let at = crate::event::Position {
            commit_lsn: txn.commit_lsn,
            lsn: Lsn::from(*lsn),
        };
        for probed in probe.settle(content).await {
            let txn = (at, Some(txn.xid), txn.commit_time_ms);
            self.shapes.place(&self.ctx, probed, txn, delivery)?;
        }
        Ok(())
    }

    /// Confirm what became confirmable, and answer the re-sync steps it covers.
    fn confirm<W: RecordWriter>(
        &mut self,
        client: &ReplicationClient,
        delivery: &mut Delivery<W>,
        confirmed: &mut Lsn,
    ) {
        if let Some(lsn) = delivery.take_confirmable() {
            client.update_applied_lsn(lsn.into());
            *confirmed = lsn;
            self.resync.settle(lsn);
        }
    }

    /// A transient loss: wait, then reopen the session from `confirmed`
    /// (again while the failure stays transient). `None`: shutdown came first.
    async fn reconnect(
        &mut self,
        config: &pgwire_replication::ReplicationConfig,
        e: SourceError,
        confirmed: Lsn,
        failures: &mut u32,
        shutdown: &Shutdown,
    ) -> Result<Option<ReplicationClient>, ProduceError> {
        *failures += 1;
        let delay = reconnect_delay(*failures);
        tracing::warn!(error = %e, retry_in = ?delay, "replication connection lost; reconnecting");
        health().set(
            SOURCE_CONDITION,
            Err(format!("replication connection lost, reconnecting: {e}")),
        );
        self.reset_for_reconnect();
        loop {
            health().beat();
            tokio::select! {
                _ = shutdown.wait() => return Ok(None),
                _ = tokio::time::sleep(delay) => {}
            }
            match start_stream(config.clone(), confirmed).await {
                Ok(c) => return Ok(Some(c)),
                // Down, starting up, or still holding the old
                // session's slot: wait and try again.
                Err(error) if error.retry() != Retry::Stop => {
                    *failures += 1;
                    tracing::warn!(%error, "reconnect failed; retrying");
                }
                Err(other) => return Err(other.into()),
            }
        }
    }

    /// The server's position from a keepalive, when it may be confirmed:
    /// outside a transaction, with every event delivered, nothing before
    /// it is still owed to the sink (WAL since our last commit decodes to
    /// nothing for us). A fast server shutdown waits until its walsenders'
    /// clients confirm exactly this position, and its last WAL record is
    /// often no commit of ours (an abort, a checkpoint): confirming it at
    /// once lets the server stop. Mid-transaction the position may already
    /// be past the commit whose events are still arriving: never then.
    fn idle_position<W: RecordWriter>(
        &self,
        ev: &ReplicationEvent,
        delivery: &Delivery<W>,
        confirmed: Lsn,
    ) -> Option<Lsn> {
        let ReplicationEvent::KeepAlive { wal_end, .. } = ev else {
            return None;
        };
        let at = Lsn::from(*wal_end);
        (at > confirmed && self.txn.is_none() && delivery.is_idle()).then_some(at)
    }

    fn reset_for_reconnect(&mut self) {
        self.cache.clear();
        self.plans.clear();
        self.shapes.new_session();
        self.wanted_ids.clear();
        self.txn = None;
        self.skipping = false;
        self.resync.reset();
    }

    fn handle<W: RecordWriter>(
        &mut self,
        ev: ReplicationEvent,
        delivery: &mut Delivery<W>,
    ) -> Result<(), ProduceError> {
        match ev {
            ReplicationEvent::Begin {
                final_lsn,
                xid,
                commit_time_micros,
            } => {
                let commit_lsn = Lsn::from(final_lsn);
                self.skipping = commit_lsn <= self.last_enqueued_commit;
                self.txn = Some(Txn {
                    commit_lsn,
                    xid,
                    commit_time_ms: pg_micros_to_unix_ms(commit_time_micros),
                });
            }
            ReplicationEvent::Commit { lsn, end_lsn, .. } => {
                if !std::mem::take(&mut self.skipping) {
                    delivery.commit(end_lsn.into(), self.txn.map(|t| t.commit_time_ms));
                    self.last_enqueued_commit = lsn.into();
                    self.resync.committed(end_lsn.into());
                }
                self.txn = None;
            }
            ReplicationEvent::XLogData {
                wal_start, data, ..
            } => {
                let message = decode(data)?;
                self.change(message, wal_start.into(), delivery)?;
            }
            ReplicationEvent::Message {
                prefix,
                content,
                lsn,
                ..
            } => {
                if prefix == RESYNC_PREFIX && !self.skipping {
                    let lsn = Lsn::from(lsn);
                    let at = crate::event::Position {
                        commit_lsn: self.txn.map_or(lsn, |t| t.commit_lsn),
                        lsn,
                    };
                    self.resync.on_message(&content, at, &self.ctx, delivery)?;
                } else if prefix != HEARTBEAT_PREFIX && !ShapeProbe::is_probe(&prefix) {
                    tracing::debug!(prefix, "ignoring logical decoding message");
                }
            }
            ReplicationEvent::KeepAlive { .. } | ReplicationEvent::StoppedAt { .. } => {}
        }
        Ok(())
    }

    /// A Relation message: remember its shape, and whether it is configured.
    /// A configured table that comes back under a name not configured was
    /// renamed: its changes would silently stop reaching the mirror, so the
    /// producer stops and says what to do.
    fn track_relation(&mut self, body: RelationBody) -> Result<(), ProduceError> {
        let name = TableName::new(&body.schema, &body.name);
        if let Some(before) = self.cache.get(body.id) {
            let from = TableName::new(&before.schema, &before.name);
            if from != name && self.wanted.contains(&from) && !self.wanted.contains(&name) {
                return Err(SourceError::TableRenamed {
                    from: from.to_string(),
                    to: name.to_string(),
                }
                .into());
            }
        }
        if self.wanted.contains(&name) {
            self.wanted_ids.insert(body.id);
        } else {
            self.wanted_ids.remove(&body.id);
        }
        let rel = self.cache.insert(body);
        self.plans.insert(rel);
        Ok(())
    }

    /// Whether a row change is of a configured table (other messages pass).
    fn wanted_change(&self, message: &LogicalMessage) -> bool {
        match message {
            LogicalMessage::Insert { relation_id, .. }
            | LogicalMessage::Update { relation_id, .. }
            | LogicalMessage::Delete { relation_id, .. } => self.wanted_ids.contains(relation_id),
            _ => true,
        }
    }

    /// The shape record of a configured table's Relation message, at its
    /// place in the transaction (before the changes that follow it).
    fn emit_shape<W: RecordWriter>(
        &mut self,
        id: u32,
        lsn: Lsn,
        delivery: &mut Delivery<W>,
    ) -> Result<(), ProduceError> {
        let (Some(rel), true) = (self.cache.get(id), self.wanted_ids.contains(&id)) else {
            return Ok(());
        };
        let (commit_lsn, txid, time) = self.txn.map_or((lsn, None, 0), |t| {
            (t.commit_lsn, Some(t.xid), t.commit_time_ms)
        });
        let at = crate::event::Position { commit_lsn, lsn };
        self.shapes
            .emit(&self.ctx, &rel, (at, txid, time), delivery)
    }

    fn plan(&self, id: u32) -> Result<&RelationPlan, ProduceError> {
        self.plans
            .get(id)
            .ok_or(ProduceError::UnknownRelation { id })
    }

    fn change<W: RecordWriter>(
        &mut self,
        message: LogicalMessage,
        lsn: Lsn,
        delivery: &mut Delivery<W>,
    ) -> Result<(), ProduceError> {
        if let LogicalMessage::Relation(body) = message {
            let id = body.id;
            self.track_relation(body)?;
            return self.emit_shape(id, lsn, delivery);
        }
        if self.skipping || !self.wanted_change(&message) {
            return Ok(());
        }
        let Some(txn) = self.txn else {
            return match message {
                LogicalMessage::Type { .. }
                | LogicalMessage::Origin { .. }
                | LogicalMessage::Other(_) => Ok(()),
                _ => Err(SourceError::Replication {
                    detail: "a change arrived outside a transaction".into(),
                    code: None,
                }
                .into()),
            };
        };
        self.note_resync(&message, txn.xid)?;
        self.emit(message, txn, lsn, delivery)
    }

    /// A change of the table being re-synced: its keys (both, for an
    /// update that changed the key), for the chunk read meanwhile.
    fn note_resync(&mut self, message: &LogicalMessage, xid: u32) -> Result<(), ProduceError> {
        if !self.resync.is_watching() {
            return Ok(());
        }
        let (id, before, after) = match message {
            LogicalMessage::Insert { relation_id, new } => {
                (*relation_id, None, Some(Tuple::new(new)))
            }
            LogicalMessage::Update {
                relation_id,
                old,
                new,
            } => (
                *relation_id,
                old.as_ref().map(Tuple::old),
                Some(Tuple::new(new)),
            ),
            LogicalMessage::Delete { relation_id, old } => {
                (*relation_id, Some(Tuple::old(old)), None)
            }
            LogicalMessage::Truncate { relation_ids, .. } => {
                for id in relation_ids {
                    if self
                        .plans
                        .get(*id)
                        .is_some_and(|p| self.resync.watches(&p.relation))
                    {
                        self.resync.truncated();
                    }
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        let plan = self.plan(id)?;
        if !self.resync.watches(&plan.relation) {
            return Ok(());
        }
        let keys: Vec<String> = [
            after.map(|a| plan.key_text(a, before)),
            before.map(|b| plan.key_text(b, None)),
        ]
        .into_iter()
        .flatten()
        .collect();
        self.resync.record(xid, keys);
        Ok(())
    }

    /// A change of a configured table, inside transaction `txn`, as events.
    fn emit<W: RecordWriter>(
        &self,
        message: LogicalMessage,
        txn: Txn,
        lsn: Lsn,
        delivery: &mut Delivery<W>,
    ) -> Result<(), ProduceError> {
        let meta = |op| change_meta(txn, lsn, op);
        let mut push = |plan: &RelationPlan, op, before, after| {
            let event = encode_change(&self.ctx, plan, &meta(op), before, after)?;
            delivery.push_event(event)
        };
        match message {
            LogicalMessage::Insert {
                relation_id,
                new: values,
            } => {
                push(
                    self.plan(relation_id)?,
                    Op::Create,
                    None,
                    Some(Tuple::new(&values)),
                )?;
            }
            LogicalMessage::Update {
                relation_id,
                old: before,
                new: values,
            } => {
                let before = before.as_ref().map(Tuple::old);
                push(
                    self.plan(relation_id)?,
                    Op::Update,
                    before,
                    Some(Tuple::new(&values)),
                )?;
            }
            LogicalMessage::Delete {
                relation_id,
                old: before,
            } => {
                push(
                    self.plan(relation_id)?,
                    Op::Delete,
                    Some(Tuple::old(&before)),
                    None,
                )?;
            }
            LogicalMessage::Truncate { relation_ids, .. } => {
                for id in relation_ids {
                    if self.wanted_ids.contains(&id) {
                        push(self.plan(id)?, Op::Truncate, None, None)?;
                    }
                }
            }
            LogicalMessage::Relation(_)
            | LogicalMessage::Type { .. }
            | LogicalMessage::Origin { .. }
            | LogicalMessage::Other(_) => {}
        }
        Ok(())
    }
}

/// Graceful end: deliver what is queued (bounded by [`DRAIN_TIMEOUT`]),
/// confirm it, make sure the server heard, close the session.
async fn finish<W: RecordWriter>(
    client: Option<ReplicationClient>,
    delivery: &mut Delivery<W>,
    mut confirmed: Lsn,
    shutdown: &Shutdown,
) -> Result<(), ProduceError> {
    tracing::info!("stopping: delivering in-flight events");
    let drained = delivery
        .drain(shutdown, Some(Instant::now() + DRAIN_TIMEOUT))
        .await?;
    if !drained {
        tracing::warn!("gave up waiting for the sink; undelivered events were not confirmed and will be re-sent on the next start");
    }
    if let Some(lsn) = delivery.take_confirmable() {
        confirmed = lsn;
    }
    if let Some(mut client) = client {
        if !confirmed.is_zero() {
            client.update_applied_lsn(confirmed.into());
            let metrics = client.metrics();
            let deadline = Instant::now()
                + crate::source::replication::STATUS_INTERVAL * 2
                + Duration::from_secs(1);
            while Lsn::from(metrics.last_applied_lsn()) < confirmed
                && Instant::now() < deadline
                && client.is_running()
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), client.shutdown()).await;
    }
    tracing::info!(confirmed = %confirmed, "producer stopped");
    Ok(())
}

/// The metadata of a streamed change at `lsn` in `txn`.
fn change_meta(txn: Txn, lsn: Lsn, op: Op) -> ChangeMeta {
    ChangeMeta {
        op,
        snapshot: SnapshotMarker::False,
        commit_time_ms: txn.commit_time_ms,
        txid: Some(txn.xid),
        commit_lsn: txn.commit_lsn,
        lsn,
    }
}

/// The replication session to stream from: the gated one of a slot created
/// now (START_REPLICATION sent here), else a new one from `ack`.
async fn open_session(
    config: &pgwire_replication::ReplicationConfig,
    gated: Option<ReplicationClient>,
    ack: Lsn,
) -> Result<ReplicationClient, ProduceError> {
    let Some(mut client) = gated else {
        return start_with_busy_wait(config.clone(), ack).await;
    };
    let lost = |e| SourceError::from_replication(config, e);
    client.start().await.map_err(lost)?;
    client.wait_started().await.map_err(lost)?;
    Ok(client)
}

/// Start streaming, waiting (bounded) for a slot a previous session still holds.
async fn start_with_busy_wait(
    config: pgwire_replication::ReplicationConfig,
    ack: Lsn,
) -> Result<ReplicationClient, ProduceError> {
    let give_up = Instant::now() + SLOT_BUSY_WAIT;
    let mut attempt = 0;
    loop {
        match start_stream(config.clone(), ack).await {
            Err(e) if e.retry() == Retry::WaitForSlot && Instant::now() < give_up => {
                attempt += 1;
                tracing::warn!("replication slot still held by a previous session; waiting");
                tokio::time::sleep(reconnect_delay(attempt)).await;
            }
            other => return Ok(other?),
        }
    }
}

/// An interval that, when late, delays its next tick instead of bursting.
fn ticker(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

fn reconnect_delay(failures: u32) -> Duration {
    RECONNECT_BASE_DELAY
        .saturating_mul(1 << failures.saturating_sub(1).min(8))
        .min(RECONNECT_MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delay_caps() {
        assert_eq!(reconnect_delay(1), RECONNECT_BASE_DELAY);
        assert_eq!(reconnect_delay(100), RECONNECT_MAX_DELAY);
    }
}
