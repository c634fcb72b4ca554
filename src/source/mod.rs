//! The PostgreSQL side: publication and slot administration, the initial
//! snapshot, and decoding of the logical replication stream.
//!
//! # Protocol
//!
//! kinesync reads a logical replication slot with the built-in `pgoutput`
//! plugin, protocol version 1, through `pgwire-replication` (tokio-postgres
//! cannot speak the replication protocol). Version 1 sends only committed
//! transactions, each whole and in commit order: `Begin`, then `Relation`
//! (before the first change of a table on this connection and after each
//! schema change), `Insert`/`Update`/`Delete`/`Truncate`, transactional
//! `Message`s, then `Commit`. Nothing of a transaction arrives before it
//! commits, so memory stays bounded by our own buffers, not by transaction
//! size (the walsender spills large transactions to disk itself).
//!
//! # LSNs and what is safe to confirm
//!
//! Every change message arrives in an XLogData whose `wal_start` is the LSN of
//! that change's WAL record; the transaction's commit record LSN arrives
//! first, in `Begin.final_lsn` (it equals `Commit.commit_lsn`), and its end in
//! `Commit.end_lsn`. Events carry `(commit_lsn, lsn)` as their ordering key:
//! commit LSNs increase from transaction to transaction, and change LSNs
//! increase within one.
//!
//! Confirming LSN `X` to the slot (the flush position of a standby status
//! update) tells Postgres it may discard everything before `X` and start the
//! next session at `X`. We confirm a transaction's `end_lsn` only once the sink
//! has durably accepted **every** event of that transaction and of every
//! earlier one (the pipeline's acknowledgement tracker). A crash therefore
//! replays at most the unconfirmed transactions (at-least-once delivery;
//! duplicates carry identical ordering keys, so the merge drops them).
//! Transactions without published changes (other tables, our heartbeat
//! message) are confirmed the same way, which is what moves the slot when the
//! published tables are quiet.
//!
//! # Snapshot + stream: why there is no gap and no overlap
//!
//! The slot is created with `CREATE_REPLICATION_SLOT … (SNAPSHOT 'export')`
//! (`EXPORT_SNAPSHOT` before PostgreSQL 15: [`version`]) on
//! a replication session that then stays idle. The command returns the slot's
//! *consistent point* and an exported snapshot that sees exactly the
//! transactions committed before that point. A second, ordinary session reads
//! every table inside `REPEATABLE READ` with `SET TRANSACTION SNAPSHOT`, so the
//! copy is one consistent image as of the consistent point; the slot streams
//! exactly the transactions that commit after it. Snapshot rows carry
//! `commit_lsn = consistent point, lsn = 0`, so they sort before every
//! streamed change of the same row.
//!
//! Whether the snapshot finished is recorded durably as the publication's
//! comment ([`replication::SNAPSHOT_DONE_MARKER`]), written only after every
//! snapshot row was accepted by the sink. A slot without that marker is a
//! snapshot cut short (crash, kill): the next start drops the slot and takes
//! the snapshot again. A marker without its slot means the slot was dropped
//! behind our back and changes were lost: that stops with an error instead of
//! silently leaving a gap.

pub mod coverage;
pub mod error;
pub mod pgoutput;
pub mod progress;
pub mod relation_cache;
pub mod replication;
pub mod resync;
pub mod snapshot;
pub mod tables;
pub mod version;

/// Identifiers are quoted the same way for PostgreSQL and Redshift; every
/// identifier that reaches SQL goes through it, names from our own config too.
pub use crate::sql::quote_ident;

/// Quote a PostgreSQL string literal (`'` doubled; standard_conforming_strings,
/// so unlike Redshift's [`crate::sql::quote_literal`] backslashes stay as they are).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("orders"), "\"orders\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
