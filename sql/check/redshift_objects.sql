-- kinesync check and status (Redshift): the objects `kinesync setup`
-- creates, and the merge's checkpoint. One row.
SELECT (SELECT COUNT(*) FROM svv_external_schemas WHERE schemaname = {{external_schema_literal}}) AS external_schemas,
       (SELECT COUNT(*) FROM svv_mv_info WHERE schema_name = {{mirror_schema_literal}} AND name = {{events_view_name_literal}}) AS events_views,
       (SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = {{mirror_schema_literal}} AND table_name = 'kinesync_checkpoint') AS checkpoint_tables;
