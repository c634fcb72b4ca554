-- kinesync check and status (PostgreSQL): the replication slot ($1).
SELECT s.plugin::text AS plugin,
       s.database::text = current_database() AS this_database,
       s.active,
       COALESCE(s.wal_status, 'unknown') AS wal_status,
       s.confirmed_flush_lsn::text AS confirmed_lsn,
       (pg_current_wal_lsn() - s.confirmed_flush_lsn)::bigint AS lag_bytes,
       (pg_current_wal_lsn() - s.restart_lsn)::bigint AS retained_bytes,
       EXTRACT(EPOCH FROM r.flush_lag)::float8 AS flush_lag_seconds,
       EXTRACT(EPOCH FROM (now() - r.reply_time))::float8 AS seconds_since_reply
FROM pg_replication_slots s
LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
WHERE s.slot_name = $1;
