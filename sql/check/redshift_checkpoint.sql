-- kinesync check and status (Redshift): the merge's watermark (the newest
-- refresh_time merged), when the last merge committed, and the time now.
SELECT CAST(c.watermark AS VARCHAR) AS watermark,
       CAST(c.merged_at AS VARCHAR) AS merged_at,
       CAST(GETDATE() AS VARCHAR) AS now
FROM {{checkpoint}} AS c
WHERE c.events_view = {{events_view_literal}};
