-- kinesync teardown --redshift, with the shared objects: the merge's
-- executor procedure (plan/executor.rs). DROP PROCEDURE has no IF EXISTS
-- (r_DROP_PROCEDURE): teardown runs it alone and takes "does not exist"
-- (a mirror schema set up before the procedure existed) as done.
DROP PROCEDURE {{executor}}({{executor_argument_types}});
