-- kinesync check (PostgreSQL): what the role may do with one table ($1
-- schema, $2 name), and its generated columns that are not replicated
-- (all before PostgreSQL 18, virtual ones on 18: docs/postgres-versions.md). Whether its changes can be keyed is the table
-- resolver's answer (src/source/tables.rs), as for produce and merge.
SELECT has_schema_privilege(n.oid, 'USAGE') AS schema_usage,
       has_table_privilege(c.oid, 'SELECT') AS can_select,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> ''
               AND NOT (a.attgenerated = 's' AND current_setting('server_version_num')::int >= 180000)
             ORDER BY a.attnum) AS generated_columns
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p');
