-- The producer (PostgreSQL): every chunk of resync ($1 slot, $2 table,
-- $3 its requested_at) and its closing sweep were accepted by the stream.
UPDATE {{state_table}}
SET finished_at = clock_timestamp()
WHERE slot = $1 AND table_name = $2 AND requested_at::text = $3 AND finished_at IS NULL;
