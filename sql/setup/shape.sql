-- One table's shape as setup read it from the source catalog, for a table
-- the stream has not described yet (a producer older than shape records):
-- at position 0/0, so any shape record of the stream replaces it. It
-- replaces an earlier setup's, never a shape taken from the stream. The
-- JSON's backslashes travel as CHR(1) (which JSON text never holds raw):
-- string literals treat backslashes differently across SQL dialects.
DELETE FROM {{shapes}}
WHERE source_schema = {{schema_literal}} AND source_table = {{table_literal}} AND commit_lsn = 0 AND lsn = 0;
INSERT INTO {{shapes}} (source_schema, source_table, commit_lsn, lsn, shape)
SELECT {{schema_literal}}, {{table_literal}}, 0, 0, JSON_PARSE(REPLACE({{shape_literal}}, CHR(1), CHR(92)))
WHERE NOT EXISTS (
    SELECT 1 FROM {{shapes}} AS s WHERE s.source_schema = {{schema_literal}} AND s.source_table = {{table_literal}}
);
