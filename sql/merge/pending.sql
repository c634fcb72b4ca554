-- What the next merge will see, per table and operation: decides which
-- tables get merge statements at all (runs after the refresh, before the
-- merge batches).
SELECT e.payload."source"."schema"::varchar AS source_schema,
       e.payload."source"."table"::varchar AS source_table,
       e.payload."op"::varchar AS op,
       COUNT(*) AS events
FROM {{events_view}} AS e
WHERE e.refresh_time > (SELECT c.watermark FROM {{checkpoint}} AS c WHERE c.events_view = {{events_view_literal}})
GROUP BY 1, 2, 3;
