-- The producer (PostgreSQL): a chunk of resync ($1 slot, $2 table, $3 its
-- requested_at) was accepted by the stream: where the next one starts.
UPDATE {{state_table}}
SET started_lsn = $4::text::pg_lsn, after_key = $5, rows_copied = $6
WHERE slot = $1 AND table_name = $2 AND requested_at::text = $3 AND finished_at IS NULL;
