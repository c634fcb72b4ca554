-- Attribute names inside the events keep their case (column names do. Mirror
-- identifiers fold to lower case, as Redshift does by default).

SET enable_case_sensitive_super_attribute TO true;
-- Only what arrived since the last merge: the cost of a run follows the new
-- events, not the history in the view.
CREATE TEMP TABLE kinesync_new_events AS
SELECT e.refresh_time, e.payload
FROM {{events_view}} AS e
WHERE e.refresh_time > (SELECT c.watermark FROM {{checkpoint}} AS c WHERE c.events_view = {{events_view_literal}});
