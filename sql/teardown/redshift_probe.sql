-- kinesync teardown --redshift: what is there to drop? The mirror schema,
-- its bookkeeping tables and its shapes table (all gone after an earlier
-- teardown; the shapes table also missing where setup predates it). Two
-- catalog views only: Redshift runs them on the leader node.
SELECT (SELECT COUNT(*) FROM information_schema.schemata
        WHERE schema_name = {{mirror_schema_literal}}) AS schemas,
       (SELECT COUNT(*) FROM information_schema.tables
        WHERE table_schema = {{mirror_schema_literal}} AND table_name = 'kinesync_checkpoint') AS bookkeeping,
       (SELECT COUNT(*) FROM information_schema.tables
        WHERE table_schema = {{mirror_schema_literal}} AND table_name = 'kinesync_shapes') AS shapes;
