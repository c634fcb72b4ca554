-- kinesync verify, both sides: the rows of the buckets that differ, as
-- (readable key, MD5 of the row), to name the keys that differ.
SELECT k.key_display, MD5(k.row_text) AS row_hash
FROM (SELECT {{key_text}} AS key_text, {{key_display}} AS key_display, {{row_text}} AS row_text FROM {{table}}) AS k
WHERE SUBSTRING(MD5(k.key_text), 1, 2) IN ({{buckets}});
