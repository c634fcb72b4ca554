-- A column renamed on the source (its attnum kept, scheduler/shapes/rename.rs):
-- renamed in the mirror (and, for a key column, the tombstones) before the
-- schema-change step, which would otherwise add the new name as an empty
-- column. Every renamed column of a table goes through a temporary name
-- first (names may swap), all of a table's in one batch. Events of this run
-- written before the rename carry the old name: the merge reads each under
-- the name its position had.
ALTER TABLE {{table}} RENAME COLUMN {{from}} TO {{to}};
