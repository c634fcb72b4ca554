-- kinesync teardown --redshift: this pipeline's bookkeeping rows.
DELETE FROM {{checkpoint}} WHERE events_view = {{events_view_literal}};
DELETE FROM {{merge_status}} WHERE events_view = {{events_view_literal}};
DELETE FROM {{refresh_log}} WHERE events_view = {{events_view_literal}};
