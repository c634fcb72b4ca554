//! Acknowledgements -> the one LSN PostgreSQL may be told.
//!
//! Every record queued for the sink gets the next sequence number; every
//! commit registers the first number after its transaction together with the
//! transaction's end LSN. The sink accepts records in any order. A commit is
//! confirmable once every number below its bound was accepted, and only the
//! newest confirmable end LSN is confirmed to the slot: a crash replays at
//! most the unconfirmed transactions, never loses one.

use std::collections::{BTreeSet, VecDeque};

use crate::lsn::Lsn;

/// Sequence numbers -> the confirmable LSN.
///
/// Records get consecutive sequence numbers as they are queued; a commit
/// registers (first sequence number after the transaction, end LSN). Acks may
/// arrive in any order; `next_unacked` is the lowest number not yet
/// accepted, and a commit is confirmable once all its numbers are below it.
#[derive(Debug, Default)]
pub struct AckTracker {
    next_seq: u64,
    next_unacked: u64,
    acked_ahead: BTreeSet<u64>,
    /// (first sequence number after the transaction, end LSN, commit time ms).
    commits: VecDeque<(u64, Lsn, Option<i64>)>,
    confirmed: Lsn,
    /// Source commit time of the newest confirmable transaction, if known.
    confirmed_commit_time_ms: Option<i64>,
}

impl AckTracker {
    pub fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    pub fn ack(&mut self, seq: u64) {
        if seq == self.next_unacked {
            self.next_unacked += 1;
            while self.acked_ahead.remove(&self.next_unacked) {
                self.next_unacked += 1;
            }
        } else if seq > self.next_unacked {
            self.acked_ahead.insert(seq);
        }
    }

    /// The transaction ending at `end_lsn` owns every number handed out so far.
    pub fn commit(&mut self, end_lsn: Lsn) {
        self.commit_at(end_lsn, None);
    }

    /// [`commit`](Self::commit), remembering the source commit time (Unix ms).
    pub fn commit_at(&mut self, end_lsn: Lsn, commit_time_ms: Option<i64>) {
        self.commits
            .push_back((self.next_seq, end_lsn, commit_time_ms));
    }

    /// The newest confirmable end LSN, if it moved since the last call.
    pub fn take_confirmable(&mut self) -> Option<Lsn> {
        let mut moved = None;
        while let Some(&(bound, lsn, commit_time_ms)) = self.commits.front() {
            if bound > self.next_unacked {
                break;
            }
            self.commits.pop_front();
            if lsn > self.confirmed {
                self.confirmed = lsn;
                self.confirmed_commit_time_ms = commit_time_ms.or(self.confirmed_commit_time_ms);
                moved = Some(lsn);
            }
        }
        moved
    }

    pub fn confirmed(&self) -> Lsn {
        self.confirmed
    }

    /// Source commit time (Unix ms) of the newest confirmable transaction.
    pub fn confirmed_commit_time_ms(&self) -> Option<i64> {
        self.confirmed_commit_time_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirms_only_fully_acked_transactions_in_order() {
        let mut t = AckTracker::default();
        // txn A: seqs 0,1; txn B: seq 2; txn C (heartbeat): none.
        let (a0, a1) = (t.next_seq(), t.next_seq());
        t.commit(Lsn(100));
        let b0 = t.next_seq();
        t.commit(Lsn(200));
        t.commit(Lsn(300));
        assert_eq!(t.take_confirmable(), None);
        t.ack(b0); // B done, but A is not: nothing confirmable.
        assert_eq!(t.take_confirmable(), None);
        t.ack(a1);
        assert_eq!(t.take_confirmable(), None);
        t.ack(a0); // now A, B and C.
        assert_eq!(t.take_confirmable(), Some(Lsn(300)));
        assert_eq!(t.take_confirmable(), None);
        assert_eq!(t.confirmed(), Lsn(300));
        // An idle heartbeat commit is confirmable at once.
        t.commit(Lsn(400));
        assert_eq!(t.take_confirmable(), Some(Lsn(400)));
    }
}
