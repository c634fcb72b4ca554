-- This run's TRUNCATEs of the table, and the sweeps that end its re-syncs
-- (op 'e', positioned at the re-sync's start: every row the source still
-- has was sent again after it): the newest one (or the one merged before,
-- if newer) becomes the table's cut-off; changes ordered before it are
-- dropped (merge/table.sql step 3), mirror rows and tombstones ordered
-- before it go later (merge/truncate_rows.sql, after the TOAST step, which
-- may need a row's older version: after a re-sync's end the rows it sent
-- again can still be updated with an unchanged TOAST value).
CREATE TEMP TABLE {{cutoff}} AS
SELECT t._kinesync_commit_lsn, t._kinesync_lsn FROM (
    SELECT e.payload."source"."commit_lsn"::bigint AS _kinesync_commit_lsn,
           e.payload."source"."lsn"::bigint AS _kinesync_lsn
    FROM kinesync_new_events AS e
    WHERE {{this_table}} AND e.op IN ('t', 'e')
    UNION ALL
    SELECT s.truncated_commit_lsn, s.truncated_lsn
    FROM {{table_state}} AS s
    WHERE s.mirror_table = {{mirror_table_literal}}
) AS t
ORDER BY t._kinesync_commit_lsn DESC, t._kinesync_lsn DESC
LIMIT 1;
DELETE FROM {{table_state}} WHERE mirror_table = {{mirror_table_literal}};
INSERT INTO {{table_state}} (mirror_table, truncated_commit_lsn, truncated_lsn)
SELECT {{mirror_table_literal}}, k._kinesync_commit_lsn, k._kinesync_lsn FROM {{cutoff}} AS k;
