-- kinesync teardown --redshift, last: the mirror schema, only when nothing
-- is left in it (RESTRICT, the default: a schema holding other objects is
-- kept, and teardown says so).
DROP SCHEMA IF EXISTS {{mirror_schema}} RESTRICT;
