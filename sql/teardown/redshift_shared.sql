-- kinesync teardown --redshift, when no other pipeline uses the mirror
-- schema: the bookkeeping tables (the table shapes among them) and the
-- external schema on the stream.
-- The mirror schema itself is dropped by redshift_schema.sql, only if empty.
DROP TABLE IF EXISTS {{checkpoint}};
DROP TABLE IF EXISTS {{table_state}};
DROP TABLE IF EXISTS {{lease}};
DROP TABLE IF EXISTS {{merge_status}};
DROP TABLE IF EXISTS {{refresh_log}};
DROP TABLE IF EXISTS {{shapes}};
DROP SCHEMA IF EXISTS {{external_schema}};
