-- kinesync status (Redshift): the outcome of the newest merge run.
SELECT CAST(s.finished_at AS VARCHAR) AS finished_at, s.result AS result, s.detail AS detail
FROM {{merge_status}} AS s
WHERE s.events_view = {{events_view_literal}};
