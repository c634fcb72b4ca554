-- kinesync resync (PostgreSQL): the table that holds resync requests and
-- their progress, one row per (slot, table). `kinesync resync` creates it
-- when missing (or an administrator does, docs/security.md). Never in the
-- publication: the producer reads it by SQL, not from the stream; its
-- comment keeps `schema.*` entries of source.tables from selecting it.
CREATE TABLE IF NOT EXISTS {{state_table}} (
    slot text NOT NULL,
    table_name text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_lsn pg_lsn,
    after_key text,
    rows_copied bigint NOT NULL DEFAULT 0,
    finished_at timestamptz,
    PRIMARY KEY (slot, table_name)
);
COMMENT ON TABLE {{state_table}} IS 'kinesync: resync requests (source.resync_table); never mirrored';
