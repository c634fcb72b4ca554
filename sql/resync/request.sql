-- kinesync resync (PostgreSQL): ask for a resync of one table ($2, the
-- table as schema.table) by the producer of slot $1; a request already
-- there starts over.
INSERT INTO {{state_table}} (slot, table_name)
VALUES ($1, $2)
ON CONFLICT (slot, table_name) DO UPDATE
SET requested_at = clock_timestamp(), started_lsn = NULL, after_key = NULL,
    rows_copied = 0, finished_at = NULL;
