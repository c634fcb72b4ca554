-- A column added on the source: added to the mirror before its events merge.
-- Rows merged before keep NULL until their next change.
ALTER TABLE {{mirror_table}} ADD COLUMN {{column}} {{column_type}};
