-- kinesync resync and the producer (PostgreSQL): does the resync table ($1,
-- schema.table in SQL spelling) exist?
SELECT to_regclass($1) IS NOT NULL AS present;
