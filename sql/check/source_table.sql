-- kinesync check (PostgreSQL): what the role may do with one table ($1
-- schema, $2 name), and its generated columns (not replicated:
-- docs/postgres-versions.md). Whether its changes can be keyed is the table
-- resolver's answer (src/source/tables.rs), as for produce and merge.
SELECT has_schema_privilege(n.oid, 'USAGE') AS schema_usage,
       has_table_privilege(c.oid, 'SELECT') AS can_select,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> ''
             ORDER BY a.attnum) AS generated_columns
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p');
