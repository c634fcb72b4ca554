-- Who holds the lease (should two have inserted at once, the first by name
-- wins and the other backs off), the last successful merge, the previous
-- refresh of the events view (else the last merge, for a mirror set up
-- before the refresh log existed; NULL before the first merge) and the time
-- now, by Redshift's clock. Part of the lease batch (after
-- merge/lease_acquire.sql), so that taking the lease and reading what the
-- run needs to begin cost one batch.
SELECT l.holder AS holder, l.expires_at::varchar AS expires_at,
       (SELECT MAX(c.merged_at) FROM {{checkpoint}} AS c)::varchar AS last_merged_at,
       COALESCE(
           (SELECT MAX(r.refreshed_at) FROM {{refresh_log}} AS r WHERE r.events_view = {{events_view_literal}}),
           (SELECT MAX(c.merged_at) FROM {{checkpoint}} AS c
            WHERE c.events_view = {{events_view_literal}} AND c.watermark > TIMESTAMP '1900-01-01 00:00:00'))::varchar AS previous,
       GETDATE()::varchar AS now
FROM {{lease}} AS l
WHERE l.name = 'merge'
ORDER BY l.holder
LIMIT 1;
