-- 4. A placeholder nothing resolved (the row's previous version is neither
--    in this run nor in the mirror, e.g. the mirror lost the row) is never
--    written into the mirror: the batch fails with a message naming the
--    table, the key and the column (the cast of that message to INTEGER is
--    the failure; kinesync reports the message, docs/operations.md).
-- {{unresolved_column}}: the name of the first column still holding the
--   placeholder; {{key_text}}: the row's key as text.
SELECT CAST('kinesync-unresolved-toast: table ' || {{table_literal}} || ' key (' || {{key_text}}
            || ') column ' || {{unresolved_column}} AS INTEGER)
FROM {{latest}} AS l
WHERE l._kinesync_action = 'upsert' AND ({{any_placeholder_l}})
LIMIT 1;
