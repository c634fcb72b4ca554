-- A column widened on the source (smallint -> integer -> bigint, real ->
-- double precision, a longer VARCHAR): copied into a new column of the
-- wider type that takes its name, in one transaction (a batch). Redshift
-- alters only VARCHAR widths in place, and not inside a transaction block. The column moves to the end of the table;
-- every statement kinesync writes names its columns.
ALTER TABLE {{mirror_table}} ADD COLUMN {{widened}} {{column_type}};
UPDATE {{mirror_table}} SET {{widened}} = {{column}};
ALTER TABLE {{mirror_table}} DROP COLUMN {{column}};
ALTER TABLE {{mirror_table}} RENAME COLUMN {{widened}} TO {{column}};
