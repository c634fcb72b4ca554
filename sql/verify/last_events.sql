-- kinesync verify: per source table, when its newest event reached the
-- events view (refresh_time) and when PostgreSQL committed it (ts_ms).
SELECT e.payload."source"."schema"::varchar AS source_schema,
       e.payload."source"."table"::varchar AS source_table,
       CAST(MAX(e.refresh_time) AS VARCHAR) AS last_refresh_time,
       MAX(e.payload."source"."ts_ms"::bigint) AS last_commit_ms
FROM {{events_view}} AS e
GROUP BY 1, 2;
