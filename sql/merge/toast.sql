-- Unchanged TOAST values: the producer sent '__debezium_unavailable_value'
-- for a column PostgreSQL did not rewrite. The value is the one of the row
-- version this change replaced: walk back through this run's changes (a
-- change's predecessor is the newest earlier upsert of its origin key, which
-- follows primary-key changes) to the nearest version with a real value,
-- else take it from the mirror row at the origin key of the oldest version.
-- A version is named by its position and its key: every snapshot row of a
-- table has the same position (consistent point, 0).

-- 1. Each placeholder-carrying upsert's predecessor in this run.
CREATE TEMP TABLE {{links}} AS
SELECT x.commit_lsn, x.lsn, x.pred_commit_lsn, x.pred_lsn, {{pred_key_names}} FROM (
    SELECT r._kinesync_commit_lsn AS commit_lsn, r._kinesync_lsn AS lsn,
           p._kinesync_commit_lsn AS pred_commit_lsn, p._kinesync_lsn AS pred_lsn,
           {{pred_key_columns}},
           ROW_NUMBER() OVER (PARTITION BY r._kinesync_commit_lsn, r._kinesync_lsn
                              ORDER BY p._kinesync_commit_lsn DESC, p._kinesync_lsn DESC) AS _kinesync_rank
    FROM {{changes}} AS r
    JOIN {{changes}} AS p
      ON {{origin_match_r_p}}
     AND (p._kinesync_commit_lsn < r._kinesync_commit_lsn
          OR (p._kinesync_commit_lsn = r._kinesync_commit_lsn AND p._kinesync_lsn < r._kinesync_lsn))
    WHERE r._kinesync_action = 'upsert' AND p._kinesync_action = 'upsert' AND ({{any_placeholder_r}})
) AS x
WHERE x._kinesync_rank = 1;

-- 2. For each winning upsert with a placeholder, the versions before it.
CREATE TEMP TABLE {{chain}} AS
WITH RECURSIVE walk (start_commit_lsn, start_lsn, at_commit_lsn, at_lsn, depth, {{at_key_names}}) AS (
    SELECT l._kinesync_commit_lsn, l._kinesync_lsn, l._kinesync_commit_lsn, l._kinesync_lsn, 0, {{latest_key_columns}}
    FROM {{latest}} AS l
    WHERE l._kinesync_action = 'upsert' AND ({{any_placeholder_l}})
    UNION ALL
    SELECT w.start_commit_lsn, w.start_lsn, k.pred_commit_lsn, k.pred_lsn, w.depth + 1, {{link_pred_keys}}
    FROM walk AS w
    JOIN {{links}} AS k ON k.commit_lsn = w.at_commit_lsn AND k.lsn = w.at_lsn
)
SELECT w.start_commit_lsn, w.start_lsn, w.depth, c.*
FROM walk AS w
JOIN {{changes}} AS c
  ON c._kinesync_commit_lsn = w.at_commit_lsn AND c._kinesync_lsn = w.at_lsn AND c._kinesync_action = 'upsert'
 AND {{chain_key_match}};
