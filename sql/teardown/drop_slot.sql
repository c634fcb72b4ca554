-- kinesync teardown (PostgreSQL): drop the slot ($1); it stops holding WAL.
SELECT pg_drop_replication_slot($1);
