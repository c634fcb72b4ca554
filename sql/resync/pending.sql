-- The producer (PostgreSQL): the unfinished resyncs of slot $1, oldest
-- request first. requested_at is the request's identity: a progress update
-- of an older request of the same table changes nothing.
SELECT table_name, requested_at::text AS requested_at, started_lsn::text AS started_lsn,
       after_key, rows_copied
FROM {{state_table}}
WHERE slot = $1 AND finished_at IS NULL
ORDER BY requested_at, table_name;
