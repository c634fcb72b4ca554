-- kinesync resync --wait and status (PostgreSQL): every resync of slot $1.
SELECT table_name, requested_at::text AS requested_at, rows_copied,
       finished_at::text AS finished_at
FROM {{state_table}}
WHERE slot = $1
ORDER BY requested_at, table_name;
