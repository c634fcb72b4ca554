-- Record a refresh (run as one batch, after the REFRESH succeeded).
DELETE FROM {{refresh_log}} WHERE events_view = {{events_view_literal}};
INSERT INTO {{refresh_log}} (events_view, refreshed_at) VALUES ({{events_view_literal}}, CAST({{refreshed_at}} AS TIMESTAMP));
