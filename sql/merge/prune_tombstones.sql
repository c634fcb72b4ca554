-- kinesync merge --once --prune-tombstones: drop the tombstones no event
-- can still need. {{confirmed_lsn}} is the slot's confirmed LSN, read before
-- this run's refresh: every event below it was accepted by Kinesis before
-- that (the producer confirms only then), so the run has merged it, and a
-- producer restart re-sends only from the confirmed LSN on.
DELETE FROM {{tombstones}} WHERE _kinesync_commit_lsn < {{confirmed_lsn}};
