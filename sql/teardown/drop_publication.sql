-- kinesync teardown (PostgreSQL): drop the publication (and with it the
-- snapshot marker kept in its comment).
DROP PUBLICATION IF EXISTS {{publication}};
