-- kinesync verify, source side (PostgreSQL): one row per bucket of keys.
-- A row's bucket is the first two hex digits of the MD5 of its key; per
-- bucket, the row count and two sums of 32-bit slices of each row's MD5.
-- mirror_buckets.sql computes the same numbers in Redshift.
SELECT SUBSTRING(MD5(k.key_text), 1, 2) AS bucket,
       CAST(COUNT(*) AS VARCHAR) AS row_count,
       CAST(SUM(('x' || LPAD(SUBSTRING(MD5(k.row_text), 1, 8), 16, '0'))::bit(64)::bigint) AS VARCHAR) AS hash_high,
       CAST(SUM(('x' || LPAD(SUBSTRING(MD5(k.row_text), 9, 8), 16, '0'))::bit(64)::bigint) AS VARCHAR) AS hash_low
FROM (SELECT {{key_text}} AS key_text, {{row_text}} AS row_text FROM {{table}}) AS k
GROUP BY 1;
