-- Unchanged TOAST values: the producer sent '__debezium_unavailable_value'
-- for a column PostgreSQL did not rewrite. Take the value from the newest
-- earlier change of the same key in these events, else from the mirror.
--
-- {{newest_real_values}}: per TOAST-able column, a subquery picking the
--   newest non-placeholder value per key from {{changes}}, LEFT JOINed on the key.
-- {{set_from_batch}} / {{set_from_mirror}}: "col" = CASE WHEN <placeholder>
--   THEN <that value> ELSE "col" END, for each TOAST-able column.
UPDATE {{latest}} SET {{set_from_batch}}
FROM ({{newest_real_values}}) AS p
WHERE {{key_match_latest_p}};
UPDATE {{latest}} SET {{set_from_mirror}}
FROM {{mirror_table}} AS m
WHERE {{key_match_latest_m}};
