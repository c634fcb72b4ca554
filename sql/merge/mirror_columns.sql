-- The mirror tables and their columns as they are now, to add the columns
-- (and tables) the source gained since the last run.
SELECT table_name, column_name, data_type
FROM information_schema.columns
WHERE table_schema = {{mirror_schema_literal}};
