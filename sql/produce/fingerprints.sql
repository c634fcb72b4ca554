-- The producer (PostgreSQL), probing shapes: per table of $1 (schema
-- names) and $2 (table names), pairwise, a fingerprint of every catalog
-- fact its shape record is made of: the table's OID and replica identity,
-- its primary key and replica identity index, and per column its number,
-- name, type and modifier, generated kind, default, identity and kept
-- default. Two equal fingerprints read at two times mean that no schema
-- change of the table committed in between.
SELECT n.nspname::text, c.relname::text,
       md5(concat_ws('|', c.oid::text, c.relreplident::text,
           (SELECT string_agg(i.indkey::text || ':' || i.indisprimary::text
                              || ':' || i.indisreplident::text, ',' ORDER BY i.indexrelid)
            FROM pg_catalog.pg_index i
            WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident)),
           (SELECT string_agg(concat_ws(':', a.attnum::text, a.attname::text,
                                        a.atttypid::text, a.atttypmod::text,
                                        a.attgenerated::text, a.atthasdef::text,
                                        a.attidentity::text, a.atthasmissing::text,
                                        a.attmissingval::text), ',' ORDER BY a.attnum)
            FROM pg_catalog.pg_attribute a
            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)))
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN unnest($1::text[], $2::text[]) AS t (schema_name, table_name)
  ON n.nspname = t.schema_name AND c.relname = t.table_name
ORDER BY 1, 2;
