-- The producer (PostgreSQL), every heartbeat interval: the leaf partitions
-- of each configured table that is partitioned ($1: the tables, as
-- schema.table in SQL spelling). A partition attached or detached since
-- the last look changes the root's rows without a change event (an
-- attached table's rows were never streamed; a detached one's are still in
-- the mirror), so the root is re-synced.
SELECT r.name AS root, p.relid::regclass::text AS leaf
FROM unnest($1::text[]) AS r(name)
CROSS JOIN LATERAL pg_partition_tree(to_regclass(r.name)) AS p
WHERE p.level > 0 AND p.isleaf;
