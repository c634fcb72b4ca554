-- The previous refresh of the events view (else the last merge, for a
-- mirror set up before the refresh log existed; NULL before the first
-- merge) and the time now, both by Redshift's clock.
SELECT COALESCE(
           (SELECT MAX(r.refreshed_at) FROM {{refresh_log}} AS r WHERE r.events_view = {{events_view_literal}}),
           (SELECT MAX(c.merged_at) FROM {{checkpoint}} AS c
            WHERE c.events_view = {{events_view_literal}} AND c.watermark > TIMESTAMP '1900-01-01 00:00:00'))::varchar AS previous,
       GETDATE()::varchar AS now;
