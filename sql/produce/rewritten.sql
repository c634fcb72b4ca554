-- The producer (PostgreSQL), resuming slot $1: the columns of the tables
-- $2 (schema names) and $3 (table names), pairwise, that a rewrite filled
-- without change events and that may be newer than the slot's position.
--
-- A column with a default (or an identity) but no kept value
-- (atthasmissing) was added with a volatile default, a serial, an identity
-- or a stored generated expression: PostgreSQL rewrote the table with a
-- value per row and pgoutput sent none of them. While streaming, the
-- producer sees such a column appear between two Relation messages; this
-- query finds the ones added while it was stopped. A column's catalog row
-- written by a transaction older than the slot's catalog_xmin existed
-- before every change the slot still has to send (catalog_xmin is the
-- oldest transaction still running where decoding restarts); a newer row
-- may be a column added since. age() compares transaction ids within the
-- wraparound window (a frozen row's age is the largest). A newer row can
-- also be an older column changed since (renamed, a default set): that
-- only costs a re-sync that was not needed.
SELECT n.nspname::text, c.relname::text, a.attname::text
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN unnest($2::text[], $3::text[]) AS t (schema_name, table_name)
  ON n.nspname = t.schema_name AND c.relname = t.table_name
JOIN pg_catalog.pg_replication_slots s ON s.slot_name = $1
WHERE a.attnum > 0
  AND NOT a.attisdropped
  AND (a.atthasdef OR a.attidentity <> '')
  AND NOT a.atthasmissing
  AND age(a.xmin) <= age(s.catalog_xmin)
ORDER BY 1, 2, a.attnum;
