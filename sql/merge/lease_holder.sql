-- Who holds the lease (should two have inserted at once, the first by name
-- wins and the other backs off), and the last successful merge.
SELECT l.holder AS holder, l.expires_at::varchar AS expires_at,
       (SELECT MAX(c.merged_at) FROM {{checkpoint}} AS c)::varchar AS last_merged_at, GETDATE()::varchar AS now
FROM {{lease}} AS l
WHERE l.name = 'merge'
ORDER BY l.holder
LIMIT 1;
