-- The mirror tables and their columns as they are now, with their widths:
-- to add the columns (and tables) the source gained since the last run, and
-- to widen a column whose newest shape holds larger values (integer ->
-- bigint, varchar(10) -> varchar(50)) before the events written with that
-- shape merge. Part of the lease batch.
SELECT table_name, column_name, data_type, character_maximum_length AS max_length
FROM information_schema.columns
WHERE table_schema = {{mirror_schema_literal}};
