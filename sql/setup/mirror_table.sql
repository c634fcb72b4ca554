-- The mirror: the source's columns with mapped types, plus the position of
-- the change that wrote each row (to drop stale replays) and its commit time.
-- {{table_attributes}}: distributed on the first key column and sorted by the
-- key (the merge joins on it), or DISTSTYLE AUTO SORTKEY AUTO without a
-- usable key (plan::setup::table_attributes; docs/redshift.md).
CREATE TABLE IF NOT EXISTS {{mirror_table}} (
{{column_definitions}},
    _kinesync_commit_lsn BIGINT NOT NULL,
    _kinesync_lsn BIGINT NOT NULL,
    _kinesync_op_ts TIMESTAMP
){{table_attributes}};
-- Tombstones: the position of the newest delete of each key, so that an old
-- duplicate replayed later cannot resurrect a deleted row.
CREATE TABLE IF NOT EXISTS {{tombstone_table}} (
{{key_definitions}},
    _kinesync_commit_lsn BIGINT NOT NULL,
    _kinesync_lsn BIGINT NOT NULL
){{table_attributes}};
