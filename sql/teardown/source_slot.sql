-- kinesync teardown (PostgreSQL): does the slot ($1) exist, and is a
-- process (a running producer) streaming from it?
SELECT s.active, s.active_pid
FROM pg_replication_slots s
WHERE s.slot_name = $1;
