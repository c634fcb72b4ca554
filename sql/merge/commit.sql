-- The watermark moves in the same transaction as the last tables merged.
UPDATE {{checkpoint}}
SET watermark = n.newest, merged_at = GETDATE()
FROM (SELECT MAX(refresh_time) AS newest FROM kinesync_new_events) AS n
WHERE {{checkpoint}}.events_view = {{events_view_literal}} AND n.newest IS NOT NULL;
