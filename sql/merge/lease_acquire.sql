-- Take the merge lease unless another scheduler holds an unexpired one.
-- (Run as one batch; the holder is checked with merge/lease_holder.sql.)
DELETE FROM {{lease}} WHERE name = 'merge' AND (expires_at < GETDATE() OR holder = {{holder}});
INSERT INTO {{lease}} (name, holder, expires_at)
SELECT 'merge', {{holder}}, GETDATE() + INTERVAL '{{lease_seconds}} seconds'
WHERE NOT EXISTS (SELECT 1 FROM {{lease}} WHERE name = 'merge');
