-- Does the streaming view exist? (Redshift has no CREATE MATERIALIZED VIEW
-- IF NOT EXISTS.) Names as Redshift stores them. SVV_MV_INFO is a
-- leader-node-only view: alone in its query.
SELECT name FROM svv_mv_info WHERE schema_name = {{mirror_schema_literal}} AND name = {{events_view_name_literal}};
