-- kinesync teardown --redshift: one mirror table and its tombstones.
DROP TABLE IF EXISTS {{mirror_table}};
DROP TABLE IF EXISTS {{tombstone_table}};
