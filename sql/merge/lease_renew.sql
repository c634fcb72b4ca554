-- Renew this run's lease (every lease_secs / 3 while the run is in
-- progress). Writes only the lease table, which the merge batches only read
-- (their fence, merge/begin.sql): the two never write the same table, so
-- Redshift's serializable isolation has no conflict to abort. An expired
-- lease is not renewed: it may be taken over at any moment (row count 0:
-- the run has lost its lease).
UPDATE {{lease}} SET expires_at = GETDATE() + INTERVAL '{{lease_seconds}} seconds'
WHERE name = 'merge' AND holder = {{holder}} AND expires_at > GETDATE();
