-- A merge batch's first statements through the executor (after
-- merge/begin.sql).
-- Only what arrived since the last merge: the cost of a run follows the new
-- events, not the history in the view.
CREATE TEMP TABLE kinesync_new_events AS
SELECT e.refresh_time, e.payload
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
