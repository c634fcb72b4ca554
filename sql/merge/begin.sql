-- A merge batch's plain statements (before its CALLs of the executor,
-- plan/executor.rs): the lease fence and the session settings.
--
-- The lease fence: this batch (one transaction) fails as a whole, before it
-- changes anything, unless this run still holds an unexpired merge lease
-- (1 / 0 otherwise: "division by zero"; kinesync reports it as a lost lease).
-- Read-only on the lease table, which only the lease's own statements write.
SELECT 1 / COUNT(*) AS kinesync_lease_fence
FROM {{lease}}
WHERE name = 'merge' AND holder = {{holder}} AND expires_at > GETDATE();
-- Attribute names inside the events keep their case (column names do).
-- Which setting keeps the case of a quoted name in SUPER navigation
-- (e.payload."after"."LineNo") is read two ways (super-configurations,
-- r_names): both are set. Every other identifier kinesync sends is already
-- spelled as Redshift stores it (ASCII letters in lower case), so the same
-- objects are found with and without enable_case_sensitive_identifier.
SET enable_case_sensitive_super_attribute TO true;
SET enable_case_sensitive_identifier TO true;
