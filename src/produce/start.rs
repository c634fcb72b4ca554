//! Start-up decisions: which slot to read and from where.
//!
//! The configured slot is resumed from its confirmed LSN when the snapshot
//! marker says its snapshot was delivered; otherwise it is created (again)
//! with the snapshot the mode asks for, or without one (`snapshot = never`).
//! A table the marker records but the publication no longer publishes stops
//! the start: its changes since were lost. `--sink stdout` reads a
//! temporary slot of its own and changes nothing of the configured one.
//! The answer is a [`StreamStart`]: the session to stream from (still gated
//! after a slot created now) and the LSN to confirm from.

use pgwire_replication::ReplicationClient;

use super::delivery::Delivery;
use super::error::ProduceError;
use super::snapshot::SnapshotEvents;
use crate::config::{Config, SnapshotMode};
use crate::event::EventContext;
use crate::lsn::Lsn;
use crate::shutdown::Shutdown;
use crate::sink::RecordWriter;
use crate::source::coverage;
use crate::source::error::SourceError;
use crate::source::relation_cache::Relation;
use crate::source::replication::SlotInfo;
use crate::source::replication::{
    create_slot_without_snapshot, drop_slot, ensure_publication, marker_says_ready,
    marker_says_started, publication_exists, retire_from_publication, set_snapshot_marker,
    skipped_marker, slot_info, snapshot_marker, SlotUse,
};
use crate::source::resync;
use crate::source::snapshot::take_snapshot;
use crate::sql::display_ident;
use crate::sql::TableName;

/// Records (snapshot mode `never`) that the slot streams `configured`
/// without an initial snapshot.
async fn mark_snapshot_skipped(
    admin: &tokio_postgres::Client,
    source: &crate::config::SourceConfig,
    configured: &[coverage::TableName],
) -> Result<(), ProduceError> {
    let marker = coverage::with_tables(&skipped_marker(&source.slot), configured);
    set_snapshot_marker(admin, &source.publication, Some(&marker)).await?;
    Ok(())
}

/// Where streaming starts: the session (still gated after a snapshot or a
/// slot created now) and the LSN to confirm from. `None`: nothing to
/// stream (the snapshot was all, or shutdown came first).
pub(super) type StreamStart = Option<(Option<ReplicationClient>, Lsn)>;

/// What the start-up steps share.
pub(super) struct Start<'a> {
    pub(super) config: &'a Config,
    pub(super) admin: &'a tokio_postgres::Client,
    pub(super) tables: &'a [Relation],
    pub(super) configured: Vec<coverage::TableName>,
    pub(super) ctx: &'a EventContext,
    pub(super) shutdown: &'a Shutdown,
    /// Each table's shape from the resolver, for the snapshot's shape records.
    pub(super) shapes: &'a [crate::event::Shape],
}

impl Start<'_> {
    /// `--sink stdout`: a temporary slot (with its own snapshot unless
    /// `snapshot = never`); the configured slot and the snapshot marker are
    /// not touched, and the publication is only created if missing.
    pub(super) async fn on_temporary_slot<W: RecordWriter>(
        &self,
        repl_config: pgwire_replication::ReplicationConfig,
        delivery: &mut Delivery<W>,
    ) -> Result<StreamStart, ProduceError> {
        let source = &self.config.source;
        if publication_exists(self.admin, &source.publication).await? {
            if let Some(table) =
                coverage::first_missing(self.admin, &source.publication, &self.configured).await?
            {
                return Err(ProduceError::PreviewPublicationLacksTable {
                    publication: display_ident(&source.publication),
                    table: table.to_string(),
                });
            }
        } else {
            ensure_publication(self.admin, &source.publication, self.tables).await?;
        }
        tracing::info!(slot = %repl_config.slot, "--sink stdout reads a temporary slot: source.slot, its snapshot marker and the publication are left as they are");
        if source.snapshot == SnapshotMode::Never {
            let (client, point) = create_slot_without_snapshot(repl_config, true).await?;
            return Ok(Some((Some(client), point)));
        }
        let snapshot = take_snapshot(
            source,
            repl_config,
            self.admin,
            self.tables,
            &mut SnapshotEvents::new(delivery, self.ctx, self.shutdown).with_shapes(self.shapes),
            self.shutdown,
            SlotUse::Temporary,
        )
        .await?;
        Ok(snapshot
            .filter(|_| source.snapshot != SnapshotMode::InitialOnly)
            .map(|s| (Some(s.client), s.consistent_point)))
    }

    /// The configured slot: created (with the snapshot the mode asks for)
    /// or resumed from its confirmed LSN, the snapshot marker kept.
    pub(super) async fn on_configured_slot<W: RecordWriter>(
        &self,
        repl_config: pgwire_replication::ReplicationConfig,
        delivery: &mut Delivery<W>,
    ) -> Result<StreamStart, ProduceError> {
        let (source, admin, configured) = (&self.config.source, self.admin, &self.configured);
        let recorded = self.recorded_still_published().await?;
        let added = ensure_publication(admin, &source.publication, self.tables).await?;
        let slot = self.usable_slot().await?;
        let marker = snapshot_marker(admin, &source.publication).await?;
        let ready = marker_says_ready(marker.as_deref(), &source.slot);
        let mode = source.snapshot;
        let ack = slot.as_ref().map(|s| s.confirmed_flush).unwrap_or_default();
        match (&slot, ready, mode) {
            (Some(_), true, SnapshotMode::InitialOnly) => {
                tracing::info!(
                    "snapshot already delivered for this slot; nothing to do (snapshot = initial_only)"
                );
                Ok(None)
            }
            (Some(_), true, _) => {
                let new = self.resume(marker.as_deref(), &recorded, &added).await?;
                self.resync_rewritten(&new).await;
                Ok(Some((None, ack)))
            }
            (Some(_), false, SnapshotMode::Never) => {
                mark_snapshot_skipped(admin, source, configured).await?;
                self.resync_rewritten(&[]).await;
                Ok(Some((None, ack)))
            }
            (None, true, _) => Err(SourceError::SlotMissing {
                slot: source.slot.clone(),
                detail: format!(
                    "it was dropped after the snapshot completed, so changes since then are lost. To re-sync from scratch, run COMMENT ON PUBLICATION {} IS NULL and restart (a new snapshot is taken)",
                    source.publication
                ),
            }.into()),
            (None, false, SnapshotMode::Never) => {
                let (_, point) = create_slot_without_snapshot(repl_config, false).await?;
                mark_snapshot_skipped(admin, source, configured).await?;
                tracing::info!(slot = %source.slot, consistent_point = %point, "created slot without snapshot");
                Ok(Some((None, point)))
            }
            (existing, false, _) => {
                let redo =
                    existing.is_some() || marker_says_started(marker.as_deref(), &source.slot);
                if let Some(info) = existing {
                    if let Some(pid) = info.active_pid {
                        return Err(SourceError::SlotInUse {
                            slot: source.slot.clone(),
                            pid: Some(pid),
                        }.into());
                    }
                    tracing::warn!(slot = %source.slot, "the previous snapshot did not finish: dropping the slot and starting over");
                    drop_slot(admin, &source.slot).await?;
                }
                let slot_use = if redo { SlotUse::Redo } else { SlotUse::Fresh };
                let snapshot = take_snapshot(
                    source,
                    repl_config,
                    admin,
                    self.tables,
                    &mut SnapshotEvents::new(delivery, self.ctx, self.shutdown).with_shapes(self.shapes),
            self.shutdown,
                    slot_use,
                )
                .await?;
                Ok(snapshot
                    .filter(|_| mode != SnapshotMode::InitialOnly)
                    .map(|s| (Some(s.client), s.consistent_point)))
            }
        }
    }

    /// Tables the snapshot marker says are streamed must still be published:
    /// never silently add a dropped one back (its changes since are lost).
    /// Returns the tables the marker records.
    async fn recorded_still_published(&self) -> Result<Vec<TableName>, ProduceError> {
        let (source, admin, configured) = (&self.config.source, self.admin, &self.configured);
        let recorded = snapshot_marker(admin, &source.publication)
            .await?
            .filter(|m| marker_says_ready(Some(m), &source.slot))
            .map(|m| coverage::recorded_tables(&m))
            .unwrap_or_default();
        let streamed: Vec<_> = configured
            .iter()
            .filter(|t| recorded.contains(t))
            .cloned()
            .collect();
        if let Some(table) = coverage::first_missing(admin, &source.publication, &streamed).await? {
            return Err(coverage::dropped(&source.publication, &table).into());
        }
        Ok(recorded)
    }

    /// Tables removed from `source.tables`: their changes are no longer
    /// streamed, so the marker no longer records them (were one configured
    /// again, it would count as new: never as streamed all along, which
    /// would hide the gap), and they leave the publication. A publication
    /// kinesync may not alter only costs decoding: warned, not fatal.
    async fn retire(&self, removed: &[TableName]) {
        if removed.is_empty() {
            return;
        }
        let publication = &self.config.source.publication;
        let names: Vec<String> = removed.iter().map(TableName::to_string).collect();
        match retire_from_publication(self.admin, publication, removed).await {
            Ok(_) => tracing::info!(
                tables = ?names,
                "tables removed from source.tables are no longer streamed and left the publication; their mirrors are kept (drop them with kinesync teardown --table)"
            ),
            Err(error) => tracing::warn!(
                tables = ?names,
                "tables removed from source.tables are no longer streamed, but could not leave the publication: {error}"
            ),
        }
    }

    /// The configured slot, if it exists, provided it is ours to use.
    async fn usable_slot(&self) -> Result<Option<SlotInfo>, ProduceError> {
        let (source, admin) = (&self.config.source, self.admin);
        let slot = slot_info(admin, &source.slot).await?;
        if let Some(info) = &slot {
            if info.plugin.as_deref() != Some("pgoutput")
                || info.database.as_deref() != Some(self.ctx.database.as_str())
            {
                return Err(SourceError::SlotUnusable {
                    slot: source.slot.clone(),
                    detail: format!(
                        "it uses plugin {:?} on database {:?}; kinesync needs pgoutput on {:?} (choose another source.slot)",
                        info.plugin, info.database, self.ctx.database
                    ),
                }.into());
            }
        }
        Ok(slot)
    }

    /// Resuming a slot whose snapshot was delivered: the marker records
    /// exactly the configured tables (a newly configured one is streamed from
    /// now on; one removed from `source.tables` is retired, see
    /// [`Self::retire`]), and tables just added to the publication are named
    /// (their existing rows are not copied). Returns the tables configured
    /// since the snapshot (copied by a resync).
    async fn resume(
        &self,
        marker: Option<&str>,
        recorded: &[TableName],
        added: &[String],
    ) -> Result<Vec<TableName>, ProduceError> {
        let (source, admin, configured) = (&self.config.source, self.admin, &self.configured);
        let mut new = Vec::new();
        if let Some(text) = marker {
            if coverage::records_tables(text) {
                new = configured
                    .iter()
                    .filter(|t| !recorded.contains(t))
                    .cloned()
                    .collect();
            }
            let removed: Vec<TableName> = recorded
                .iter()
                .filter(|t| !configured.contains(t))
                .cloned()
                .collect();
            if configured.iter().any(|t| !recorded.contains(t)) || !removed.is_empty() {
                set_snapshot_marker(
                    admin,
                    &source.publication,
                    Some(&coverage::with_tables(text, configured)),
                )
                .await?;
            }
            self.retire(&removed).await;
        }
        if !new.is_empty() {
            self.copy_while_streaming(&new, CopyReason::Added).await;
        } else if !added.is_empty() {
            tracing::warn!(
                tables = ?added,
                "tables were added to the publication after the initial snapshot: only their changes from now on are streamed, existing rows are not copied (kinesync resync copies them)"
            );
        }
        Ok(new)
    }

    /// Tables with a column added while the producer was stopped that
    /// rewrote them without change events (a volatile default, a serial, an
    /// identity): re-synced while streaming, unless `copied` already are or
    /// a resync of theirs is pending. A failed look is warned about: the
    /// stream itself is unharmed.
    async fn resync_rewritten(&self, copied: &[TableName]) {
        let source = &self.config.source;
        let pending = match resync::pending(self.admin, &source.resync_table(), &source.slot).await
        {
            Ok(requests) => requests.into_iter().map(|r| r.table).collect(),
            Err(_) => Vec::new(),
        };
        let candidates: Vec<TableName> = self
            .configured
            .iter()
            .filter(|t| !copied.contains(t) && !pending.contains(t))
            .cloned()
            .collect();
        if candidates.is_empty() {
            return;
        }
        match resync::rewritten_since_slot(self.admin, &source.slot, &candidates).await {
            Ok(found) if found.is_empty() => {}
            Ok(found) => {
                for (table, columns) in &found {
                    tracing::info!(%table, ?columns, "columns that may have been added while the producer was stopped rewrote the table without change events");
                }
                let tables: Vec<TableName> = found.into_iter().map(|(t, _)| t).collect();
                self.copy_while_streaming(&tables, CopyReason::Rewritten)
                    .await;
            }
            Err(error) => {
                tracing::warn!(%error, "could not look for columns added while the producer was stopped (a table rewritten by one needs kinesync resync)")
            }
        }
    }

    /// `tables`' existing rows are copied by a resync while streaming
    /// (requested here, taken by the driver), for the reason `why`.
    async fn copy_while_streaming(&self, tables: &[TableName], why: CopyReason) {
        let source = &self.config.source;
        let names: Vec<String> = tables.iter().map(TableName::to_string).collect();
        let keyed: Vec<TableName> = tables
            .iter()
            .filter(|t| {
                self.tables.iter().any(|r| {
                    r.schema == t.schema && r.name == t.name && !r.partition_indices.is_empty()
                })
            })
            .cloned()
            .collect();
        let requested = match resync::marks_supported(self.admin).await {
            Ok((true, _)) if keyed.len() == tables.len() => {
                let state_table = source.resync_table();
                resync::request_creating_table(self.admin, &state_table, &source.slot, &keyed)
                    .await
                    .map_err(|e| e.to_string())
            }
            Ok((true, _)) => Err("a table without a key cannot be copied in key order".into()),
            Ok((false, version)) => {
                Err(format!("PostgreSQL {version}: {}", resync::NEEDS_MESSAGES))
            }
            Err(e) => Err(e.to_string()),
        };
        match requested {
            Ok(()) => {
                tracing::info!(tables = ?names, "{}: their existing rows are copied by a resync while streaming", why.what())
            }
            Err(reason) => {
                tracing::warn!(tables = ?names, "{}: {} ({reason})", why.what(), why.otherwise())
            }
        }
    }
}

/// Why the producer copies tables' rows while streaming, for its log.
#[derive(Debug, Clone, Copy)]
enum CopyReason {
    /// Configured since the snapshot.
    Added,
    /// A column added while the producer was stopped rewrote them.
    Rewritten,
}

impl CopyReason {
    fn what(self) -> &'static str {
        match self {
            CopyReason::Added => "tables added since the snapshot",
            CopyReason::Rewritten => {
                "a column added with a volatile default while the producer was stopped rewrote the tables"
            }
        }
    }

    fn otherwise(self) -> &'static str {
        match self {
            CopyReason::Added => "only their changes from now on are streamed, existing rows are not copied",
            CopyReason::Rewritten => {
                "rows not changed since keep a NULL in the new column in the mirror until kinesync resync copies them"
            }
        }
    }
}
