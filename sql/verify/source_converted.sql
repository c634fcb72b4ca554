-- kinesync verify, source side (PostgreSQL): how many rows hold a value the
-- mirror keeps through a documented conversion (docs/redshift.md, "Edge
-- values"); they are compared as converted and reported apart.
SELECT COUNT(*)
FROM {{table}}
WHERE {{converted}};
