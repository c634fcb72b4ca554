-- Merge of one mirror table. Order of a change = (commit LSN, LSN), from the
-- producer; never arrival order. Every step is idempotent, so a replayed or
-- re-run batch converges to the same mirror.
--
-- {{this_table}}: the event's source_schema/source_table (merge/new_events.sql) are this table.
-- {{after_columns}}: raw values from e.payload."after" (varchar or SUPER for
--   TOAST-able columns, final types otherwise), named like the columns.
-- {{before_key_columns}}: the key from e.payload."before", other columns NULL.
-- {{temp_distribution}}: DISTKEY(<first key column>) when the mirror has one
--   (plan::setup::temp_distribution), so that the joins on the key are local.
-- {{origin_columns}}: _kinesync_origin_<n>, the key the row had before this
--   change (the "before" key of a key change, else the key itself); used to
--   find the row version an unchanged TOAST value comes from.

-- 1. Every change of this table in the new events, as one row per key it
--    touches: upserts from "after"; deletes from "before" (a delete, or the
--    old key of an update that carries one, e.g. a primary-key change;
--    IS_OBJECT, since a JSON null in SUPER need not be SQL NULL).
CREATE TEMP TABLE {{changes}} {{temp_distribution}}AS
SELECT CAST('upsert' AS VARCHAR(6)) AS _kinesync_action,
       e.payload."source"."commit_lsn"::bigint AS _kinesync_commit_lsn,
       e.payload."source"."lsn"::bigint AS _kinesync_lsn,
       e.payload."source"."ts_ms"::bigint AS _kinesync_ts_ms,
       {{after_columns}},
       {{origin_columns}}
FROM kinesync_new_events AS e
WHERE {{this_table}} AND e.op IN ('c', 'u', 'r')
UNION ALL
SELECT CAST('delete' AS VARCHAR(6)),
       e.payload."source"."commit_lsn"::bigint,
       e.payload."source"."lsn"::bigint,
       e.payload."source"."ts_ms"::bigint,
       {{before_key_columns}},
       {{null_origin_columns}}
FROM kinesync_new_events AS e
WHERE {{this_table}}
  AND (e.op = 'd' OR (e.op = 'u' AND IS_OBJECT(e.payload."before")));

-- 2. The newest change per key (an upsert wins a tie with its own old key).
CREATE TEMP TABLE {{latest}} {{temp_distribution}}AS
SELECT * FROM (
    SELECT c.*, ROW_NUMBER() OVER (
               PARTITION BY {{key_list}}
               ORDER BY c._kinesync_commit_lsn DESC, c._kinesync_lsn DESC, c._kinesync_action DESC
           ) AS _kinesync_rank
    FROM {{changes}} AS c
) AS ranked
WHERE _kinesync_rank = 1;

-- 3. Truncates: the newest TRUNCATE merged before cuts off every change
--    ordered before it ({{truncate_statements}} adds this run's truncates
--    first, when there are any: see merge/truncate.sql).
{{truncate_statements}}
DELETE FROM {{latest}} USING {{table_state}} AS k
WHERE k.mirror_table = {{mirror_table_literal}}
  AND ({{latest}}._kinesync_commit_lsn < k.truncated_commit_lsn
       OR ({{latest}}._kinesync_commit_lsn = k.truncated_commit_lsn AND {{latest}}._kinesync_lsn < k.truncated_lsn));

-- 4. Stale changes: the mirror row or the tombstone of a key is already at
--    or past this change (a duplicate, or a late arrival from another shard).
DELETE FROM {{latest}} USING {{mirror_table}} AS m
WHERE {{key_match_latest_m}}
  AND (m._kinesync_commit_lsn > {{latest}}._kinesync_commit_lsn
       OR (m._kinesync_commit_lsn = {{latest}}._kinesync_commit_lsn AND m._kinesync_lsn >= {{latest}}._kinesync_lsn));
DELETE FROM {{latest}} USING {{tombstone_table}} AS m
WHERE {{key_match_latest_m}}
  AND (m._kinesync_commit_lsn > {{latest}}._kinesync_commit_lsn
       OR (m._kinesync_commit_lsn = {{latest}}._kinesync_commit_lsn AND m._kinesync_lsn >= {{latest}}._kinesync_lsn));
{{toast_statements}}
{{truncate_row_statements}}
-- 5. Delete then insert: the mirror takes the newest state of each key,
--    counted first for the run summary (mirror rows replaced, deleted, and
--    rows written; by query, since the statements run inside the executor
--    procedure, whose row counts the Data API does not report).
INSERT INTO kinesync_merge_counts (mirror_table, replaced, deleted, upserted)
SELECT {{mirror_table_literal}},
       (SELECT COUNT(*) FROM {{latest}} JOIN {{mirror_table}} ON {{key_match_mirror_latest}} WHERE {{latest}}._kinesync_action = 'upsert'),
       (SELECT COUNT(*) FROM {{latest}} JOIN {{mirror_table}} ON {{key_match_mirror_latest}} WHERE {{latest}}._kinesync_action = 'delete'),
       (SELECT COUNT(*) FROM {{latest}} WHERE {{latest}}._kinesync_action = 'upsert');
DELETE FROM {{mirror_table}} USING {{latest}}
WHERE {{key_match_mirror_latest}} AND {{latest}}._kinesync_action = 'upsert';
DELETE FROM {{mirror_table}} USING {{latest}}
WHERE {{key_match_mirror_latest}} AND {{latest}}._kinesync_action = 'delete';
INSERT INTO {{mirror_table}} ({{column_list}}, _kinesync_commit_lsn, _kinesync_lsn, _kinesync_op_ts)
SELECT {{converted_columns}}, l._kinesync_commit_lsn, l._kinesync_lsn,
       TIMESTAMP 'epoch' + (l._kinesync_ts_ms / 1000) * INTERVAL '1 second'
FROM {{latest}} AS l
WHERE l._kinesync_action = 'upsert';
DELETE FROM {{tombstone_table}} USING {{latest}}
WHERE {{key_match_tombstone_latest}};
INSERT INTO {{tombstone_table}} ({{key_column_list}}, _kinesync_commit_lsn, _kinesync_lsn)
SELECT {{latest_key_columns}}, l._kinesync_commit_lsn, l._kinesync_lsn
FROM {{latest}} AS l
WHERE l._kinesync_action = 'delete';
