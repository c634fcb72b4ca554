-- kinesync check (PostgreSQL): the server settings and role attributes
-- logical replication needs.
SELECT current_user::text AS role_name,
       current_setting('wal_level') AS wal_level,
       r.rolsuper AS superuser,
       r.rolreplication AS replication,
       EXISTS (SELECT 1 FROM pg_roles g
               WHERE g.rolname = 'rds_replication' AND pg_has_role(current_user, g.oid, 'member')) AS rds_replication,
       current_setting('max_slot_wal_keep_size') AS max_slot_wal_keep_size,
       current_setting('max_replication_slots')::int AS max_replication_slots,
       (SELECT count(*)::int FROM pg_replication_slots) AS replication_slots,
       current_setting('server_version') AS server_version,
       current_setting('server_version_num') AS server_version_num,
       COALESCE((SELECT s.ssl FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()), false) AS ssl
FROM pg_roles r
WHERE r.rolname = current_user;
