-- kinesync verify, mirror side (Redshift): the numbers of
-- source_buckets.sql for the mirror table. STRTOL(hex, 16) reads a slice
-- of the MD5 as a number.
SELECT SUBSTRING(MD5(k.key_text), 1, 2) AS bucket,
       CAST(COUNT(*) AS VARCHAR) AS row_count,
       CAST(SUM(STRTOL(SUBSTRING(MD5(k.row_text), 1, 8), 16)) AS VARCHAR) AS hash_high,
       CAST(SUM(STRTOL(SUBSTRING(MD5(k.row_text), 9, 8), 16)) AS VARCHAR) AS hash_low
FROM (SELECT {{key_text}} AS key_text, {{row_text}} AS row_text FROM {{table}}) AS k
GROUP BY 1;
