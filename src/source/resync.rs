//! Online re-sync of one table, PostgreSQL's half: the request table, the
//! chunk reads and the marks they leave in the WAL.
//!
//! # Protocol (the DBLog method)
//!
//! A re-sync copies a table in chunks in key order while the stream goes
//! on, without a table lock and without holding WAL for the whole copy:
//!
//! 1. `kinesync resync` writes a request row into the state table
//!    (`source.resync_table`, one row per slot and table) and a
//!    transactional logical message [`RESYNC_PREFIX`] `request`, which wakes
//!    the producer; a producer started later finds the row.
//! 2. The producer writes a mark ([`RESYNC_PREFIX`], `watch:<tag>`: a
//!    transactional logical message, so its commit flushes it to the
//!    walsender at once) and, once its streaming loop has read it, records
//!    the keys of every change to the table (with the transaction's xid)
//!    from there on. The first such mark of a request is its *start*: the
//!    commit LSN of its transaction is stored as `started_lsn`.
//! 3. Each chunk is read in a `REPEATABLE READ` transaction: first its
//!    snapshot (`pg_current_snapshot()`: xmin, xmax, in-progress xids), then
//!    `COPY (SELECT ... WHERE (key) > (last key) ORDER BY key LIMIT n)`.
//!    Then a mark `high:<tag>`. The streaming loop, when it reads that mark,
//!    leaves out of the chunk every key changed by a transaction the
//!    snapshot does not see (such a change is newer than the chunk's row and
//!    reaches the stream as itself), and sends the rest as `op = "r"`,
//!    `snapshot = "incremental"` events at the mark's position (its
//!    transaction's commit LSN, its own LSN). Every change the snapshot
//!    does see committed before the snapshot, hence before the mark, so
//!    its event sorts before the chunk's row; every change it does not see
//!    is either left out of the chunk or commits after the mark. A TRUNCATE of the table
//!    while a chunk is read voids the chunk (it is read again).
//! 4. Once the stream accepted a chunk, `after_key` (the chunk's last key,
//!    as text) is stored: a producer killed mid-resync continues from there.
//! 5. After the last chunk, the loop sends one sweep event (`op = "e"`)
//!    whose position is the start: every row the source still has was sent
//!    again (a chunk) or changed since the start, so a mirror row ordered
//!    before the start is a row the source no longer has, and the merge
//!    drops it (as it does rows ordered before a TRUNCATE).
//!
//! Keys are compared by PostgreSQL only (`(k1, k2) > ('v1', 'v2')` with the
//! untyped literals taking the key columns' types), never by Redshift, so
//! collations and type orderings cannot disagree.

use tokio_postgres::Client;

use super::error::SourceError;
use super::relation_cache::Relation;
use super::snapshot::CopyRow;
use super::{quote_ident, quote_literal};
use crate::lsn::Lsn;
use crate::postgres::pg_message;
use crate::sql::{self, TableName, Template, Values};

/// Prefix of the resync marks and requests in the WAL.
pub const RESYNC_PREFIX: &str = "kinesync_resync";
/// The content of a request's wake-up message.
pub const REQUEST_MESSAGE: &str = "request";

/// One unfinished resync, as the state table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub table: TableName,
    /// The request's identity (its time, as PostgreSQL prints it).
    pub requested_at: String,
    /// The position of its start mark, once the first chunk was accepted.
    pub started: Option<Lsn>,
    /// The last key copied (text values, key column order).
    pub after_key: Option<Vec<String>>,
    pub rows_copied: u64,
}

/// The snapshot a chunk was read with: which transactions it sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkSnapshot {
    xmin: u32,
    xmax: u32,
    in_progress: Vec<u32>,
}

impl ChunkSnapshot {
    /// The snapshot of `pg_current_snapshot()`'s xmin, xmax and xip list.
    pub fn new(xmin: u32, xmax: u32, in_progress: Vec<u32>) -> ChunkSnapshot {
        ChunkSnapshot {
            xmin,
            xmax,
            in_progress,
        }
    }

    /// Whether the changes of top-level transaction `xid` (32 bits, as
    /// pgoutput sends it) are invisible to this snapshot: in progress when
    /// it was taken, or started after it. Compared modulo 2^32, as
    /// PostgreSQL compares xids.
    pub fn hides(&self, xid: u32) -> bool {
        let follows_or_equals = |a: u32, b: u32| a.wrapping_sub(b) as i32 >= 0;
        follows_or_equals(xid, self.xmax)
            || (follows_or_equals(xid, self.xmin) && self.in_progress.contains(&xid))
    }

    /// The oldest xid the snapshot may not see: changes of older
    /// transactions are visible to it and to every later snapshot.
    pub fn xmin(&self) -> u32 {
        self.xmin
    }
}

/// A chunk as read: its rows (COPY text fields), the snapshot they are
/// from, and the key the next chunk starts after.
#[derive(Debug)]
pub struct Chunk {
    pub rows: Vec<CopyRow>,
    pub snapshot: ChunkSnapshot,
    pub last_key: Option<Vec<String>>,
    /// Fewer rows than asked for: the table ends here.
    pub last: bool,
}

/// A template whose one placeholder is `{{state_table}}`, filled.
pub fn render(template: Template, state_table: &TableName) -> String {
    let values = Values::from([("state_table", state_table.quoted())]);
    template.render_one(&values).unwrap_or_default()
}

/// The server's version, and whether it can carry resync marks (pgoutput
/// sends logical messages from PostgreSQL 14 on).
pub async fn marks_supported(client: &Client) -> Result<(bool, String), SourceError> {
    let row = client
        .query_one(super::version::VERSION_QUERY, &[])
        .await
        .map_err(|e| SourceError::sql("reading server_version_num", &e))?;
    let num: String = row.get(0);
    Ok(super::version::ServerVersion::parse(&num)
        .map_or((false, num), |v| (v.logical_messages(), v.to_string())))
}

/// Why resync cannot run on a server without logical messages.
pub const NEEDS_MESSAGES: &str = "resync needs PostgreSQL 14 or later (it places its chunks in the stream with logical decoding messages, which pgoutput sends from 14 on); on 13, re-sync by dropping and recreating the slot (docs/operations.md, \"Dropping and recreating the slot\")";

/// Whether the state table exists.
pub async fn state_table_exists(
    client: &Client,
    state_table: &TableName,
) -> Result<bool, SourceError> {
    let row = client
        .query_one(&sql::RESYNC_EXISTS.plain(), &[&state_table.quoted()])
        .await
        .map_err(|e| SourceError::sql("looking for the resync table", &e))?;
    Ok(row.get(0))
}

/// The request table could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the request table {table} (source.resync_table): {detail}; have an administrator run: {ddl}")]
pub struct StateTableError {
    pub table: TableName,
    pub detail: String,
    pub ddl: String,
}

/// Create the state table unless it exists.
pub async fn ensure_state_table(
    client: &Client,
    state_table: &TableName,
) -> Result<(), StateTableError> {
    let failed = |detail: String| StateTableError {
        table: state_table.clone(),
        detail,
        ddl: state_table_ddl(state_table),
    };
    if state_table_exists(client, state_table)
        .await
        .map_err(|e| failed(e.to_string()))?
    {
        return Ok(());
    }
    client
        .batch_execute(&render(sql::RESYNC_STATE_TABLE, state_table))
        .await
        .map_err(|e| failed(pg_message(&e)))
}

/// The request table's DDL and grant, for an administrator.
pub fn state_table_ddl(table: &TableName) -> String {
    let create = render(sql::RESYNC_STATE_TABLE, table)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{create}; GRANT SELECT, INSERT, UPDATE ON {} TO <the kinesync role>;",
        table.quoted()
    )
}

/// Ask the producer of `slot` to re-sync `tables`, in one transaction with
/// the message that wakes it.
pub async fn request(
    client: &Client,
    state_table: &TableName,
    slot: &str,
    tables: &[TableName],
) -> Result<(), SourceError> {
    let failed = |e: tokio_postgres::Error| SourceError::sql("requesting the resync", &e);
    client.batch_execute("BEGIN").await.map_err(failed)?;
    let insert = render(sql::RESYNC_REQUEST, state_table);
    let mut result = Ok(0);
    for table in tables {
        result = client.execute(&insert, &[&slot, &table.to_string()]).await;
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = client
            .execute(
                &sql::RESYNC_WATERMARK.plain(),
                &[&RESYNC_PREFIX, &REQUEST_MESSAGE],
            )
            .await;
    }
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = client.batch_execute(end).await;
    result.map_err(failed)?;
    ended.map_err(failed)
}

/// Why a request could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    StateTable(#[from] StateTableError),
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// [`request`], the state table created first when missing.
pub async fn request_creating_table(
    client: &Client,
    state_table: &TableName,
    slot: &str,
    tables: &[TableName],
) -> Result<(), RequestError> {
    ensure_state_table(client, state_table).await?;
    Ok(request(client, state_table, slot, tables).await?)
}

/// The tables among `tables` with a column a rewrite filled without change
/// events since (perhaps) the position `slot` resumes from, each with those
/// columns (see sql/produce/rewritten.sql).
pub async fn rewritten_since_slot(
    client: &Client,
    slot: &str,
    tables: &[TableName],
) -> Result<Vec<(TableName, Vec<String>)>, SourceError> {
    let (schemas, names) = TableName::columns_of(tables);
    let rows = client
        .query(&sql::PRODUCE_REWRITTEN.plain(), &[&slot, &schemas, &names])
        .await
        .map_err(|e| SourceError::sql("looking for columns added while stopped", &e))?;
    let mut found: Vec<(TableName, Vec<String>)> = Vec::new();
    for row in &rows {
        let table = TableName::new(row.get::<_, &str>(0), row.get::<_, &str>(1));
        let column: String = row.get(2);
        match found.last_mut() {
            Some((last, columns)) if *last == table => columns.push(column),
            _ => found.push((table, vec![column])),
        }
    }
    Ok(found)
}

/// The unfinished resyncs of `slot`, oldest first (none without the table).
pub async fn pending(
    client: &Client,
    state_table: &TableName,
    slot: &str,
) -> Result<Vec<Request>, SourceError> {
    if !state_table_exists(client, state_table).await? {
        return Ok(Vec::new());
    }
    let rows = client
        .query(&render(sql::RESYNC_PENDING, state_table), &[&slot])
        .await
        .map_err(|e| SourceError::sql("reading the resync requests", &e))?;
    rows.iter().map(request_of_row).collect()
}

fn request_of_row(row: &tokio_postgres::Row) -> Result<Request, SourceError> {
    let bad = |detail: String| SourceError::Snapshot { detail };
    let name: String = row.get("table_name");
    let entry = sql::parse_table_entry(&name).map_err(|e| bad(e.to_string()))?;
    let table = TableName {
        schema: entry.schema,
        name: entry
            .table
            .ok_or_else(|| bad(format!("resync request names no table: {name}")))?,
    };
    let started = row
        .get::<_, Option<String>>("started_lsn")
        .map(|text| text.parse::<Lsn>())
        .transpose()
        .map_err(|e| bad(format!("resync of {table}: started_lsn: {e}")))?;
    let after_key = row
        .get::<_, Option<String>>("after_key")
        .map(|text| serde_json::from_str::<Vec<String>>(&text))
        .transpose()
        .map_err(|e| bad(format!("resync of {table}: after_key: {e}")))?;
    Ok(Request {
        table,
        requested_at: row.get("requested_at"),
        started,
        after_key,
        rows_copied: u64::try_from(row.get::<_, i64>("rows_copied")).unwrap_or(0),
    })
}

/// Store the progress of `request` (after a chunk the stream accepted).
/// `false`: the request was replaced or finished meanwhile.
pub async fn record_progress(
    client: &Client,
    state_table: &TableName,
    slot: &str,
    request: &Request,
) -> Result<bool, SourceError> {
    let after_key = request
        .after_key
        .as_ref()
        .map(|key| serde_json::to_string(key).unwrap_or_default());
    let started = request.started.map(|lsn| lsn.to_string());
    let rows = i64::try_from(request.rows_copied).unwrap_or(i64::MAX);
    let updated = client
        .execute(
            &render(sql::RESYNC_PROGRESS, state_table),
            &[
                &slot,
                &request.table.to_string(),
                &request.requested_at,
                &started,
                &after_key,
                &rows,
            ],
        )
        .await
        .map_err(|e| SourceError::sql("recording resync progress", &e))?;
    Ok(updated == 1)
}

/// Mark `request` finished.
pub async fn record_finished(
    client: &Client,
    state_table: &TableName,
    slot: &str,
    request: &Request,
) -> Result<(), SourceError> {
    client
        .execute(
            &render(sql::RESYNC_FINISH, state_table),
            &[&slot, &request.table.to_string(), &request.requested_at],
        )
        .await
        .map_err(|e| SourceError::sql("recording a finished resync", &e))?;
    Ok(())
}

/// Make the driver's session commit synchronously whatever the server's
/// default: a mark reaches the walsender only once its commit is flushed,
/// and under `synchronous_commit = off` that waits for the WAL writer.
pub async fn prepare_session(client: &Client) -> Result<(), SourceError> {
    client
        .batch_execute("SET synchronous_commit = on")
        .await
        .map_err(|e| SourceError::sql("preparing the resync session", &e))
}

/// Write a resync mark into the WAL, in a transaction of its own.
pub async fn write_mark(client: &Client, content: &str) -> Result<(), SourceError> {
    client
        .execute(&sql::RESYNC_WATERMARK.plain(), &[&RESYNC_PREFIX, &content])
        .await
        .map_err(|e| SourceError::sql("writing a resync mark", &e))?;
    Ok(())
}

/// Which chunk to read: of `rel`, the rows after `after` (from the start:
/// `None`), at most `max_rows`, stopping early past `max_bytes` of row text.
#[derive(Debug, Clone, Copy)]
pub struct ChunkSpec<'a> {
    pub rel: &'a Relation,
    pub after: Option<&'a [String]>,
    pub max_rows: u64,
    pub max_bytes: usize,
}

/// Read one chunk, in a `REPEATABLE READ` transaction of its own.
pub async fn read_chunk(client: &Client, spec: ChunkSpec<'_>) -> Result<Chunk, SourceError> {
    let rel = spec.rel;
    let failed = |e: tokio_postgres::Error| SourceError::Snapshot {
        detail: format!(
            "resync chunk of {} failed: {}",
            rel.qualified_name(),
            pg_message(&e)
        ),
    };
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(failed)?;
    let result = read_in_transaction(client, spec).await;
    // READ ONLY: ending it either way loses nothing.
    let end = client.batch_execute("ROLLBACK").await.map_err(failed);
    let chunk = result?;
    end?;
    Ok(chunk)
}

async fn read_in_transaction(client: &Client, spec: ChunkSpec<'_>) -> Result<Chunk, SourceError> {
    let ChunkSpec {
        rel,
        after,
        max_rows,
        max_bytes,
    } = spec;
    let snapshot = chunk_snapshot(client).await?;
    let copy = chunk_copy_statement(rel, after, max_rows);
    let (rows, cut) = super::snapshot::copy_lines(client, &copy, rel, max_bytes).await?;
    let last_key = rows
        .last()
        .map(|row| key_of(rel, row))
        .or(after.map(<[String]>::to_vec));
    let last = !cut && (rows.len() as u64) < max_rows;
    Ok(Chunk {
        rows,
        snapshot,
        last_key,
        last,
    })
}

async fn chunk_snapshot(client: &Client) -> Result<ChunkSnapshot, SourceError> {
    let row = client
        .query_one(&sql::RESYNC_CHUNK_SNAPSHOT.plain(), &[])
        .await
        .map_err(|e| SourceError::sql("reading a resync chunk's snapshot", &e))?;
    // xid8 values: the low 32 bits are the xid pgoutput sends.
    let xid = |text: &str| text.parse::<u64>().map(|x| x as u32).unwrap_or(0);
    let xip: Vec<String> = row.get("xip");
    Ok(ChunkSnapshot::new(
        xid(row.get("xmin")),
        xid(row.get("xmax")),
        xip.iter().map(|x| xid(x)).collect(),
    ))
}

/// `COPY (SELECT <columns> FROM t WHERE (<key>) > (<last key>) ORDER BY
/// <key> LIMIT n) TO STDOUT`.
fn chunk_copy_statement(rel: &Relation, after: Option<&[String]>, max_rows: u64) -> String {
    let columns: Vec<String> = rel.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let key: Vec<String> = rel
        .partition_indices
        .iter()
        .map(|&i| quote_ident(&rel.columns[i].name))
        .collect();
    let key = key.join(", ");
    let filter = after.map_or_else(String::new, |values| {
        let literals: Vec<String> = values.iter().map(|v| quote_literal(v)).collect();
        format!(" WHERE ({key}) > ({})", literals.join(", "))
    });
    format!(
        "COPY (SELECT {} FROM {}.{}{filter} ORDER BY {key} LIMIT {max_rows}) TO STDOUT",
        columns.join(", "),
        quote_ident(&rel.schema),
        quote_ident(&rel.name),
    )
}

/// The key of a COPY row, as text in key column order.
fn key_of(rel: &Relation, row: &CopyRow) -> Vec<String> {
    rel.partition_indices
        .iter()
        .map(|&i| row.get(i).cloned().flatten().unwrap_or_default())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Relation {
        Relation::keyed_by_first("public", "Odd", &[("id", 23), ("note", 25)])
    }

    #[test]
    fn chunks_follow_the_key_with_literals_postgres_types() {
        assert_eq!(
            chunk_copy_statement(&table(), None, 100),
            "COPY (SELECT \"id\", \"note\" FROM \"public\".\"Odd\" ORDER BY \"id\" LIMIT 100) TO STDOUT"
        );
        let after = ["it's".to_owned()];
        assert!(chunk_copy_statement(&table(), Some(&after), 5)
            .contains(" WHERE (\"id\") > ('it''s') ORDER BY \"id\" LIMIT 5)"));
    }

    #[test]
    fn a_snapshot_hides_the_transactions_it_did_not_see() {
        let snapshot = ChunkSnapshot {
            xmin: 100,
            xmax: 110,
            in_progress: vec![103],
        };
        assert!(!snapshot.hides(99), "committed before xmin");
        assert!(!snapshot.hides(104), "finished before the snapshot");
        assert!(snapshot.hides(103), "in progress");
        assert!(snapshot.hides(110) && snapshot.hides(4000), "started after");
        let wrapped = ChunkSnapshot {
            xmin: u32::MAX - 1,
            xmax: 5,
            in_progress: vec![u32::MAX],
        };
        assert!(wrapped.hides(u32::MAX) && wrapped.hides(7));
        assert!(!wrapped.hides(2) && !wrapped.hides(u32::MAX - 1));
    }

    #[test]
    fn the_last_key_is_the_key_columns_text() {
        let row = vec![Some("7".to_owned()), Some("x".to_owned())];
        assert_eq!(key_of(&table(), &row), vec!["7".to_owned()]);
    }
}
