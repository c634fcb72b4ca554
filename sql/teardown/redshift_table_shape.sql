-- kinesync teardown --redshift and --table: one source table's stored shape
-- (kinesync_shapes, scheduler/shapes.rs), when the shapes table exists.
DELETE FROM {{shapes}} WHERE source_schema = {{source_schema_literal}} AND source_table = {{source_table_literal}};
