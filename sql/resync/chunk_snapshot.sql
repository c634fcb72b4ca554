-- The producer (PostgreSQL), first statement of a resync chunk's
-- REPEATABLE READ transaction: the snapshot the chunk is read with. A
-- change of a transaction this snapshot does not see (xid in xip, or at or
-- after xmax) is newer than the chunk's rows: its keys are left out.
SELECT pg_snapshot_xmin(s)::text AS xmin,
       pg_snapshot_xmax(s)::text AS xmax,
       ARRAY(SELECT x::text FROM pg_snapshot_xip(s) AS x) AS xip
FROM pg_current_snapshot() AS s;
