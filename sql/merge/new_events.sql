-- A merge batch's first statements through the executor (after
-- merge/begin.sql).
-- Only what arrived since the last merge: the cost of a run follows the new
-- events, not the history in the view.
-- Each event's table and operation as plain columns, so that each table's
-- statements select its events by comparing them, not by navigating every
-- event's SUPER value once per table (sorted by them for the same reason).
CREATE TEMP TABLE kinesync_new_events SORTKEY (source_table, source_schema) AS
SELECT e.refresh_time, e.payload,
       e.payload."source"."schema"::varchar AS source_schema,
       e.payload."source"."table"::varchar AS source_table,
       e.payload."op"::varchar AS op
FROM {{events_view}} AS e
WHERE e.refresh_time > (SELECT c.watermark FROM {{checkpoint}} AS c WHERE c.events_view = {{events_view_literal}});
-- What each table's merge changed (merge/table.sql step 5's counts), read
-- back by merge/counts.sql at the batch's end for the run summary.
CREATE TEMP TABLE kinesync_merge_counts (
    mirror_table VARCHAR(256) NOT NULL,
    replaced BIGINT NOT NULL,
    deleted BIGINT NOT NULL,
    upserted BIGINT NOT NULL
);
