-- Every table's shape for this run (after the refresh): the stored one and
-- the shape records among the events not merged yet. The merge takes the
-- newest per table by (commit_lsn, lsn), whatever shard a record came from.
-- origin tells the stored shape (what the mirror was merged with) from this
-- run's records (what changed since: columns added with a default).
SELECT s.source_schema, s.source_table, s.commit_lsn, s.lsn, s.shape, 'stored'::varchar(6) AS origin
FROM {{shapes}} AS s
UNION ALL
SELECT e.payload."shape"."schema"::varchar, e.payload."shape"."table"::varchar,
       e.payload."source"."commit_lsn"::bigint, e.payload."source"."lsn"::bigint,
       e.payload."shape", 'stream'::varchar(6) AS origin
FROM {{events_view}} AS e
WHERE e.refresh_time > (SELECT c.watermark FROM {{checkpoint}} AS c WHERE c.events_view = {{events_view_literal}})
  AND e.payload."op"::varchar = 's';
