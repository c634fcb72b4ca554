-- kinesync teardown --redshift, first: this pipeline's streaming view (it
-- depends on the external schema, dropped later if no pipeline is left).
DROP MATERIALIZED VIEW IF EXISTS {{events_view}};
