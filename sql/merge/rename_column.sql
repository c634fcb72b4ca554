-- A column renamed on the source (its attnum kept, scheduler/shapes/rename.rs):
-- renamed in the mirror (and, for a key column, the tombstones) before the
-- schema-change step, which would otherwise add the new name as an empty
-- column. Events of this run written before the rename carry the old name:
-- the merge reads them under both.
ALTER TABLE {{table}} RENAME COLUMN {{from}} TO {{to}};
