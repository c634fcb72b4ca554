-- kinesync check and status (Redshift): the objects `kinesync setup`
-- creates, one count per statement. Three statements, not one query:
-- leader-node-only catalog views (SVV_EXTERNAL_SCHEMAS, SVV_MV_INFO) cannot
-- be combined with other relations in one query.
SELECT COUNT(*) AS external_schemas FROM svv_external_schemas WHERE schemaname = {{external_schema_literal}};
SELECT COUNT(*) AS events_views FROM svv_mv_info WHERE schema_name = {{mirror_schema_literal}} AND name = {{events_view_name_literal}};
SELECT COUNT(*) AS checkpoint_tables FROM information_schema.tables WHERE table_schema = {{mirror_schema_literal}} AND table_name = 'kinesync_checkpoint';
