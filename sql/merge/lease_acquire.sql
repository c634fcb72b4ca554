-- Take the merge lease unless another scheduler holds an unexpired one.
-- (Run as one batch; the holder is checked with merge/lease_holder.sql.)
-- LOCK first (ACCESS EXCLUSIVE until the batch commits, r_LOCK.html): two
-- schedulers starting together take turns here, so the second one sees the
-- first one's row and inserts none. Without it each could insert its own
-- row unseen by the other and both would merge at once.
LOCK {{lease}};
DELETE FROM {{lease}} WHERE name = 'merge' AND (expires_at < GETDATE() OR holder = {{holder}});
INSERT INTO {{lease}} (name, holder, expires_at)
SELECT 'merge', {{holder}}, GETDATE() + INTERVAL '{{lease_seconds}} seconds'
WHERE NOT EXISTS (SELECT 1 FROM {{lease}} WHERE name = 'merge');
