-- Per source table, its newest shape (columns, types, key) known to the
-- merge: taken from the stream's shape records (op "s", docs/events.md), or
-- read from the source catalog by setup (at position 0/0, older than any
-- record). The merge reads shapes from here and from the new events, never
-- from the source database; it advances a row in the same transaction as
-- the watermark.
CREATE TABLE IF NOT EXISTS {{shapes}} (
    source_schema VARCHAR(256) NOT NULL,
    source_table VARCHAR(256) NOT NULL,
    commit_lsn BIGINT NOT NULL,
    lsn BIGINT NOT NULL,
    shape SUPER NOT NULL
);
