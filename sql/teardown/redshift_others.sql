-- kinesync teardown --redshift: pipelines left in the mirror schema (their
-- checkpoint rows) once this one's rows are gone.
SELECT COUNT(*) AS pipelines FROM {{checkpoint}};
