-- kinesync teardown --redshift: one mirror table's truncate state.
DELETE FROM {{table_state}} WHERE mirror_table = {{mirror_table_literal}};
