-- kinesync teardown (PostgreSQL): this slot's ($1) resync requests, when
-- the request table exists. The table stays (other pipelines may use it).
DELETE FROM {{state_table}} WHERE slot = $1;
