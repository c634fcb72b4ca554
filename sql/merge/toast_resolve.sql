-- 3. Per column (a group of the TOAST-able columns, so that no statement
--    nears the Data API's 100 KB limit): the nearest version with a real
--    value, else the mirror. Built as a temp table first: Redshift's UPDATE
--    may not outer-join its target in FROM (r_UPDATE), and a derived table
--    with outer joins there is not documented either.
-- {{resolved_values}}: one LEFT JOINed subquery per column of the group,
--   plus the oldest version's origin key joined to the mirror.
CREATE TEMP TABLE {{resolved}} AS
{{resolved_values}};
UPDATE {{latest}} SET {{set_resolved}}
FROM {{resolved}} AS p
WHERE {{latest}}._kinesync_commit_lsn = p.start_commit_lsn AND {{latest}}._kinesync_lsn = p.start_lsn;
