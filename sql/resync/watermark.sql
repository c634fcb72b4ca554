-- The producer (PostgreSQL): a resync mark in the WAL ($1 prefix, $2 its
-- tag). Transactional: its commit flushes it, so the walsender sends it at
-- once (a non-transactional message waits for the next WAL flush), and it
-- arrives in the stream inside its own transaction, at its commit's place.
SELECT pg_logical_emit_message(true, $1, $2)::text;
