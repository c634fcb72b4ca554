-- In the last merge batch, before the watermark moves: the newest shape
-- record per table among this run's new events replaces the stored shape
-- when it is newer, in the same transaction as the watermark, so a run cut
-- anywhere reads the same shapes again.
CREATE TEMP TABLE kinesync_new_shapes AS
SELECT r.source_schema, r.source_table, r.commit_lsn, r.lsn, r.shape
FROM (
    SELECT n.payload."shape"."schema"::varchar AS source_schema,
           n.payload."shape"."table"::varchar AS source_table,
           n.payload."source"."commit_lsn"::bigint AS commit_lsn,
           n.payload."source"."lsn"::bigint AS lsn,
           n.payload."shape" AS shape,
           ROW_NUMBER() OVER (
               PARTITION BY n.payload."shape"."schema"::varchar, n.payload."shape"."table"::varchar
               ORDER BY n.payload."source"."commit_lsn"::bigint DESC, n.payload."source"."lsn"::bigint DESC
           ) AS _kinesync_rank
    FROM kinesync_new_events AS n
    WHERE n.payload."op"::varchar = 's'
) AS r
WHERE r._kinesync_rank = 1;
DELETE FROM {{shapes}} USING kinesync_new_shapes AS n
WHERE {{shapes}}.source_schema = n.source_schema AND {{shapes}}.source_table = n.source_table
  AND ({{shapes}}.commit_lsn < n.commit_lsn
       OR ({{shapes}}.commit_lsn = n.commit_lsn AND {{shapes}}.lsn < n.lsn));
INSERT INTO {{shapes}} (source_schema, source_table, commit_lsn, lsn, shape)
SELECT n.source_schema, n.source_table, n.commit_lsn, n.lsn, n.shape
FROM kinesync_new_shapes AS n
WHERE NOT EXISTS (
    SELECT 1 FROM {{shapes}} AS s WHERE s.source_schema = n.source_schema AND s.source_table = n.source_table
);
