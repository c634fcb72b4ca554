CREATE SCHEMA IF NOT EXISTS {{mirror_schema}};
-- The merge's watermark: the newest refresh_time of the events view already
-- merged. Advanced in the same transaction as the mirror tables.
CREATE TABLE IF NOT EXISTS {{checkpoint}} (
    events_view VARCHAR(256) NOT NULL,
    watermark TIMESTAMP NOT NULL,
    merged_at TIMESTAMP NOT NULL
);
INSERT INTO {{checkpoint}} (events_view, watermark, merged_at)
SELECT {{events_view_literal}}, TIMESTAMP '1900-01-01 00:00:00', GETDATE()
WHERE NOT EXISTS (SELECT 1 FROM {{checkpoint}} WHERE events_view = {{events_view_literal}});
-- Per mirror table: the position (commit LSN, LSN) of the newest TRUNCATE
-- merged. Changes ordered before it can never come back.
CREATE TABLE IF NOT EXISTS {{table_state}} (
    mirror_table VARCHAR(256) NOT NULL,
    truncated_commit_lsn BIGINT NOT NULL,
    truncated_lsn BIGINT NOT NULL
);
-- The merge lease: at most one scheduler merges at a time, across processes.
CREATE TABLE IF NOT EXISTS {{lease}} (
    name VARCHAR(64) NOT NULL,
    holder VARCHAR(256) NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
-- The outcome of the newest merge run (ok or failed, and why), for
-- `kinesync status`. Written after each run, outside its transaction.
CREATE TABLE IF NOT EXISTS {{merge_status}} (
    events_view VARCHAR(256) NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    result VARCHAR(16) NOT NULL,
    detail VARCHAR(1024) NOT NULL
);
-- When each events view was last refreshed (GETDATE() at the refresh's
-- start), so a merge can tell that records may have expired from the stream
-- before a refresh read them.
CREATE TABLE IF NOT EXISTS {{refresh_log}} (
    events_view VARCHAR(256) NOT NULL,
    refreshed_at TIMESTAMP NOT NULL
);
