//! The initial snapshot, PostgreSQL's half: create the slot with an exported
//! snapshot, read every table through that snapshot, and hand back the
//! still idle replication session so streaming starts exactly at the slot's
//! consistent point (see the parent module for why that has no gap).
//!
//! The protocol, in order:
//! 1. The publication comment says "snapshot started" (unless the slot is
//!    temporary), so a start after a crash knows to redo it.
//! 2. `CREATE_REPLICATION_SLOT ... (SNAPSHOT 'export')` on a gated
//!    replication session: its answer is the consistent point and the name
//!    of the exported snapshot. The session stays idle until streaming.
//! 3. A second, ordinary session runs `BEGIN ISOLATION LEVEL REPEATABLE READ;
//!    SET TRANSACTION SNAPSHOT` and reads each table with `COPY (SELECT ...)
//!    TO STDOUT` (text format: the same text output functions pgoutput uses).
//! 4. Every row goes, as its COPY text fields, to a [`SnapshotConsumer`],
//!    which owns what a row becomes (events, in `produce`) and applies
//!    backpressure: memory does not grow with table size.
//! 5. Once the consumer says everything it was given is delivered, the
//!    marker says "snapshot complete" with the tables it covers. Only then
//!    does a restart resume the slot instead of redoing the snapshot.
//!
//! Progress (a bar on a terminal, log lines otherwise) is `progress`'s business.

use std::sync::Arc;

use futures_util::StreamExt;
use pgwire_replication::{ReplicationClient, ReplicationConfig};
use tokio_postgres::Client;

use super::error::SourceError;
use super::progress::SnapshotProgress;
use super::relation_cache::Relation;
use super::replication::{
    connect_sql, consistent_point, create_slot, done_marker, set_snapshot_marker, started_marker,
    SlotUse,
};
use super::{quote_ident, quote_literal};
use crate::config::SourceConfig;
use crate::lsn::Lsn;
use crate::postgres::pg_message;
use crate::shutdown::Shutdown;

/// How often (in rows) the copy checks for shutdown.
pub const SHUTDOWN_CHECK_EVERY_ROWS: u64 = 100_000;

/// One row of a table as COPY's text format gives it: a field per column,
/// in column order, `None` for NULL.
pub type CopyRow = Vec<Option<String>>;

/// Where the snapshot's rows go. Each call may wait (backpressure); an error
/// ends the snapshot.
#[allow(async_fn_in_trait)] // used generically, never as `dyn`
pub trait SnapshotConsumer {
    type Error: From<SourceError>;
    /// The slot exists; rows as of `consistent_point` follow. `redo`: an
    /// earlier snapshot of this slot was cut short (see [`SlotUse::Redo`]).
    async fn begin(
        &mut self,
        consistent_point: Lsn,
        redo: bool,
        tables: &[Relation],
    ) -> Result<(), Self::Error>;
    /// One row of `table`, its field count already checked.
    async fn row(&mut self, table: &Arc<Relation>, row: CopyRow) -> Result<(), Self::Error>;
    /// Every row was read: deliver them all. `false`: shutdown came first.
    async fn finish(&mut self) -> Result<bool, Self::Error>;
}

/// A finished snapshot: the gated session (START_REPLICATION not yet sent)
/// and the slot's consistent point.
pub struct Snapshot {
    pub client: ReplicationClient,
    pub consistent_point: Lsn,
}

/// Create the slot and copy `tables` into `consumer`. `Ok(None)`: shutdown
/// was requested before the snapshot was delivered (the next start redoes it).
/// [`SlotUse::Temporary`]: the slot is temporary and no marker is written.
pub async fn take_snapshot<C: SnapshotConsumer>(
    source: &SourceConfig,
    replication: ReplicationConfig,
    admin: &Client,
    tables: &[Relation],
    consumer: &mut C,
    shutdown: &Shutdown,
    slot_use: SlotUse,
) -> Result<Option<Snapshot>, C::Error> {
    let temporary = slot_use == SlotUse::Temporary;
    let publication = source.publication.as_str();
    let slot = replication.slot.clone();
    // A stale marker must never outlive the slot it describes; "started"
    // tells the next start, should this one be cut short, to redo it.
    if !temporary {
        set_snapshot_marker(admin, publication, Some(&started_marker(&slot))).await?;
    }
    let (client, consistent, sql) = export(source, replication, temporary).await?;
    tracing::info!(slot, consistent_point = %consistent, tables = tables.len(), "created slot; copying tables");
    consumer
        .begin(consistent, slot_use == SlotUse::Redo, tables)
        .await?;
    let mut total = 0u64;
    for table in tables {
        let rel = Arc::new(table.clone());
        if !copy_table(&sql, admin, &rel, consumer, shutdown, &mut total).await? {
            tracing::info!("shutdown during snapshot: it will start over on the next run");
            return Ok(None);
        }
    }
    sql.batch_execute("COMMIT")
        .await
        .map_err(|e| SourceError::sql("ending the snapshot transaction", &e))?;
    if !consumer.finish().await? {
        tracing::info!(
            "shutdown before the snapshot was delivered: it will start over on the next run"
        );
        return Ok(None);
    }
    if !temporary {
        let marker = super::coverage::with_tables(
            &done_marker(&slot, consistent),
            &super::coverage::table_names(tables),
        );
        set_snapshot_marker(admin, publication, Some(&marker)).await?;
    }
    tracing::info!(rows = total, consistent_point = %consistent, "snapshot delivered");
    Ok(Some(Snapshot {
        client,
        consistent_point: consistent,
    }))
}

/// Steps 2 and 3: the slot with its exported snapshot, and an SQL session
/// inside a transaction that sees exactly that snapshot.
async fn export(
    source: &SourceConfig,
    replication: ReplicationConfig,
    temporary: bool,
) -> Result<(ReplicationClient, Lsn, Client), SourceError> {
    let (client, rows) = create_slot(replication, temporary, true).await?;
    let consistent = consistent_point(&rows)?;
    let snapshot_name = rows
        .first()
        .and_then(|r| r.get(2).cloned().flatten())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok_or_else(|| SourceError::Snapshot {
            detail: "CREATE_REPLICATION_SLOT returned no snapshot name".into(),
        })?;
    let sql = connect_sql(&source.url).await?;
    sql.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
        quote_literal(&snapshot_name)
    ))
    .await
    .map_err(|e| SourceError::Snapshot {
        detail: format!("cannot use the exported snapshot: {}", pg_message(&e)),
    })?;
    Ok((client, consistent, sql))
}

/// Step 4 for one table. `Ok(false)`: shutdown was requested.
async fn copy_table<C: SnapshotConsumer>(
    sql: &Client,
    admin: &Client,
    rel: &Arc<Relation>,
    consumer: &mut C,
    shutdown: &Shutdown,
    total: &mut u64,
) -> Result<bool, C::Error> {
    let columns: Vec<String> = rel.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let copy = format!(
        "COPY (SELECT {} FROM {}.{}) TO STDOUT",
        columns.join(", "),
        quote_ident(&rel.schema),
        quote_ident(&rel.name)
    );
    let failed = |e: tokio_postgres::Error| copy_failed(rel, &e);
    let stream = sql.copy_out(copy.as_str()).await.map_err(failed)?;
    let mut stream = std::pin::pin!(stream);
    let mut lines = CopyLines::default();
    let estimated = estimated_rows(admin, rel).await;
    let mut progress = SnapshotProgress::start(&rel.qualified_name(), estimated);
    while let Some(data) = stream.next().await {
        lines.extend(&data.map_err(failed)?);
        while let Some(row) = lines.next_row(rel) {
            consumer.row(rel, row?).await?;
            progress.row();
            *total += 1;
            if total.is_multiple_of(SHUTDOWN_CHECK_EVERY_ROWS) && shutdown.is_triggered() {
                return Ok(false);
            }
        }
    }
    lines.finish(rel)?;
    progress.finish();
    Ok(true)
}

/// Rows of `statement` (a `COPY ... TO STDOUT` of `rel`'s columns), kept
/// until their text passes `max_bytes`; `true` when rows past that were
/// left out (read and dropped, so the session stays usable).
pub async fn copy_lines(
    sql: &Client,
    statement: &str,
    rel: &Relation,
    max_bytes: usize,
) -> Result<(Vec<CopyRow>, bool), SourceError> {
    let failed = |e: tokio_postgres::Error| copy_failed(rel, &e);
    let stream = sql.copy_out(statement).await.map_err(failed)?;
    let mut stream = std::pin::pin!(stream);
    let (mut rows, mut bytes, mut cut) = (Vec::new(), 0usize, false);
    let mut lines = CopyLines::default();
    while let Some(data) = stream.next().await {
        let data = data.map_err(failed)?;
        if cut {
            continue;
        }
        lines.extend(&data);
        while let Some(row) = lines.next_row(rel) {
            let row = row?;
            bytes += row.iter().flatten().map(String::len).sum::<usize>();
            rows.push(row);
            if bytes >= max_bytes {
                cut = true;
                break;
            }
        }
    }
    if !cut {
        lines.finish(rel)?;
    }
    Ok((rows, cut))
}

fn copy_failed(rel: &Relation, e: &tokio_postgres::Error) -> SourceError {
    SourceError::Snapshot {
        detail: format!("COPY of {} failed: {}", rel.qualified_name(), pg_message(e)),
    }
}

/// COPY's text output, split into rows as its pieces arrive.
#[derive(Default)]
struct CopyLines {
    buffer: Vec<u8>,
    /// Where the next row starts in `buffer`.
    start: usize,
}

impl CopyLines {
    fn extend(&mut self, data: &[u8]) {
        self.buffer.drain(..self.start);
        self.start = 0;
        self.buffer.extend_from_slice(data);
    }

    fn next_row(&mut self, rel: &Relation) -> Option<Result<CopyRow, SourceError>> {
        let rest = &self.buffer[self.start..];
        let nl = rest.iter().position(|&b| b == b'\n')?;
        let row = copy_row(rel, &rest[..nl]);
        self.start += nl + 1;
        Some(row)
    }

    /// The output ended: nothing may be left of a row.
    fn finish(&self, rel: &Relation) -> Result<(), SourceError> {
        if self.start == self.buffer.len() {
            return Ok(());
        }
        Err(SourceError::Snapshot {
            detail: format!("COPY of {} ended mid-row", rel.qualified_name()),
        })
    }
}

/// The planner's row estimate of `rel` (`pg_class.reltuples`); `None` when
/// unknown (never vacuumed or analyzed) or unreadable.
pub async fn estimated_rows(admin: &Client, rel: &Relation) -> Option<u64> {
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

/// One COPY text-format line of `rel`, split into its fields.
pub fn copy_row(rel: &Relation, line: &[u8]) -> Result<CopyRow, SourceError> {
    let fields = split_copy_line(line);
    if fields.len() != rel.columns.len() {
        return Err(SourceError::Snapshot {
            detail: format!(
                "COPY of {} returned {} fields for {} columns",
                rel.qualified_name(),
                fields.len(),
                rel.columns.len()
            ),
        });
    }
    Ok(fields)
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
    fn a_row_with_the_wrong_field_count_is_refused() {
        let rel = Relation::keyed_by_first("s", "t", &[("id", 20), ("b", 17)]);
        assert_eq!(
            copy_row(&rel, b"7\t\\N").unwrap(),
            vec![Some("7".into()), None]
        );
        let error = copy_row(&rel, b"7").unwrap_err().to_string();
        assert!(error.contains("1 fields for 2 columns"), "{error}");
    }
}
