-- The outcome of this run, replacing the previous one's (one transaction:
-- the Data API runs a batch as one).
DELETE FROM {{merge_status}} WHERE events_view = {{events_view_literal}};
INSERT INTO {{merge_status}} (events_view, finished_at, result, detail)
VALUES ({{events_view_literal}}, GETDATE(), {{result}}, {{detail}});
