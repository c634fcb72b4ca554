-- After the TOAST step, when this run has TRUNCATEs or re-sync ends (see
-- merge/truncate.sql): mirror rows and tombstones ordered before the
-- table's cut-off go. Plain DELETE, never TRUNCATE: TRUNCATE would commit
-- the batch's transaction half-way. A row this run changes again is then
-- written by step 5 as usual.
DELETE FROM {{mirror_table}} USING {{cutoff}} AS k
WHERE {{mirror_table}}._kinesync_commit_lsn < k._kinesync_commit_lsn
   OR ({{mirror_table}}._kinesync_commit_lsn = k._kinesync_commit_lsn AND {{mirror_table}}._kinesync_lsn < k._kinesync_lsn);
DELETE FROM {{tombstone_table}} USING {{cutoff}} AS k
WHERE {{tombstone_table}}._kinesync_commit_lsn < k._kinesync_commit_lsn
   OR ({{tombstone_table}}._kinesync_commit_lsn = k._kinesync_commit_lsn AND {{tombstone_table}}._kinesync_lsn < k._kinesync_lsn);
