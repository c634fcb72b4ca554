-- Who holds the lease (should two have inserted at once, the first by name
-- wins and the other backs off), and the last successful merge.
SELECT l.holder, l.expires_at::varchar, (SELECT MAX(c.merged_at) FROM {{checkpoint}} AS c)::varchar, GETDATE()::varchar
FROM {{lease}} AS l
WHERE l.name = 'merge'
ORDER BY l.holder
LIMIT 1;
