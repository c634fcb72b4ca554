//! The bookkeeping statements around a merge run: the lease, the refresh
//! of the streaming view, what is pending per table, and the recorded
//! status.

use std::collections::BTreeMap;

use crate::sql::{self, quote_literal, SqlError, TableName};

use super::{Objects, Pending};

/// The merge lease's statements (see [`crate::scheduler::lease`]).
#[derive(Debug, Clone)]
pub struct LeaseStatements {
    /// Takes the lease unless another holder's is unexpired.
    pub acquire: Vec<String>,
    /// Who holds it, with the times a run needs to begin (one row).
    pub holder: String,
    /// Extends this holder's unexpired lease (row count 0: lost).
    pub renew: String,
    /// Drops this holder's lease.
    pub release: String,
}

/// The merge lease of `holder`, lasting `lease_seconds` from each renewal.
pub fn lease_statements(
    objects: &Objects,
    holder: &str,
    lease_seconds: u64,
) -> Result<LeaseStatements, SqlError> {
    let mut values = objects.values();
    values.insert("holder", quote_literal(holder));
    values.insert("lease_seconds", lease_seconds.to_string());
    Ok(LeaseStatements {
        acquire: sql::MERGE_LEASE_ACQUIRE.render(&values)?,
        holder: sql::MERGE_LEASE_HOLDER.render_one(&values)?,
        renew: sql::MERGE_LEASE_RENEW.render_one(&values)?,
        release: sql::MERGE_LEASE_RELEASE.render_one(&values)?,
    })
}

/// The batch recording a run's outcome (`ok` or `failed`) for `kinesync status`.
pub fn record_status_statements(
    objects: &Objects,
    result: &str,
    detail: &str,
) -> Result<Vec<String>, SqlError> {
    let mut values = objects.values();
    values.insert("result", quote_literal(result));
    values.insert(
        "detail",
        quote_literal(truncate_bytes(detail, MAX_DETAIL_BYTES)),
    );
    sql::MERGE_RECORD_STATUS.render(&values)
}

/// The merge status detail column is VARCHAR(1024): Redshift counts bytes.
pub(super) const MAX_DETAIL_BYTES: usize = 1024;

/// The longest prefix of `text` of whole characters in at most `max` bytes.
pub fn truncate_bytes(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The statement dropping the lease of `stale_holder` (a scheduler known to be gone).
pub fn lease_break_statement(objects: &Objects, stale_holder: &str) -> Result<String, SqlError> {
    let mut values = objects.values();
    values.insert("stale_holder", quote_literal(stale_holder));
    sql::MERGE_LEASE_BREAK.render_one(&values)
}

/// The batch recording a refresh that started at `refreshed_at` (Redshift's clock, as text).
pub fn refresh_done_statements(
    objects: &Objects,
    refreshed_at: &str,
) -> Result<Vec<String>, SqlError> {
    let mut values = objects.values();
    values.insert("refreshed_at", quote_literal(refreshed_at));
    sql::MERGE_REFRESH_DONE.render(&values)
}

/// The statement that counts pending events per table and operation.
pub fn pending_statement(objects: &Objects) -> Result<String, SqlError> {
    sql::MERGE_PENDING.render_one(&objects.values())
}

/// The statement that pulls new records from the stream into the view.
pub fn refresh_statement(objects: &Objects) -> Result<String, SqlError> {
    sql::MERGE_REFRESH.render_one(&objects.values())
}

/// Pending counts per table, from the rows of `pending_statement`.
pub fn pending_by_table(rows: &[(String, String, String, u64)]) -> BTreeMap<TableName, Pending> {
    let mut pending: BTreeMap<TableName, Pending> = BTreeMap::new();
    for (schema, table, op, events) in rows {
        let entry = pending.entry(TableName::new(schema, table)).or_default();
        entry.events += events;
        match op.as_str() {
            // A re-sync's end (its sweep) cuts off older rows as a truncate does.
            "t" | "e" => entry.truncates += events,
            "u" => entry.updates += events,
            _ => {}
        }
    }
    pending
}
