-- kinesync check (PostgreSQL): the publication ($1): owner, what it
-- publishes, and which tables it covers (one row per table; none if it
-- covers no table).
SELECT pg_get_userbyid(p.pubowner)::text AS owner,
       p.pubowner = (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user) AS owned,
       p.pubinsert AND p.pubupdate AND p.pubdelete AND p.pubtruncate AS publishes_all,
       t.schemaname::text AS table_schema,
       t.tablename::text AS table_name
FROM pg_publication p
LEFT JOIN pg_publication_tables t ON t.pubname = p.pubname
WHERE p.pubname = $1;
