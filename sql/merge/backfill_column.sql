-- Columns added on the source with a constant DEFAULT: the rows written
-- before their first shape record (unchanged since the ALTER TABLE) have
-- the default on the source, which no change event carried
-- (scheduler/shapes/backfill.rs). In the last merge batch, after every
-- table's merge, with the store of the shapes. The defaults are read like
-- the events' values, by navigating a SUPER column ({{defaults}}.doc),
-- so they convert exactly as those do; backslashes travel as CHR(1).
-- (A SUPER table filled by INSERT ... JSON_PARSE, as parse_json.html shows,
-- rather than a CREATE TABLE AS of a SELECT without FROM.)
DROP TABLE IF EXISTS {{defaults}};
CREATE TEMP TABLE {{defaults}} (doc SUPER);
INSERT INTO {{defaults}} VALUES (JSON_PARSE(REPLACE({{defaults_literal}}, CHR(1), CHR(92))));
UPDATE {{mirror_table}} SET {{assignments}}
FROM {{defaults}}
WHERE {{mirror_table}}._kinesync_commit_lsn < {{commit_lsn}}
   OR ({{mirror_table}}._kinesync_commit_lsn = {{commit_lsn}} AND {{mirror_table}}._kinesync_lsn < {{lsn}});
