-- setup
CREATE EXTERNAL SCHEMA IF NOT EXISTS "kinesync_stream"
FROM KINESIS
IAM_ROLE 'arn:aws:iam::123456789012:role/r';

CREATE SCHEMA IF NOT EXISTS "mirror";

CREATE TABLE IF NOT EXISTS "mirror"."kinesync_checkpoint" (
    events_view VARCHAR(256) NOT NULL,
    watermark TIMESTAMP NOT NULL,
    merged_at TIMESTAMP NOT NULL
);

INSERT INTO "mirror"."kinesync_checkpoint" (events_view, watermark, merged_at)
SELECT 'kinesync_events', TIMESTAMP '1900-01-01 00:00:00', GETDATE()
WHERE NOT EXISTS (SELECT 1 FROM "mirror"."kinesync_checkpoint" WHERE events_view = 'kinesync_events');

CREATE TABLE IF NOT EXISTS "mirror"."kinesync_table_state" (
    mirror_table VARCHAR(256) NOT NULL,
    truncated_commit_lsn BIGINT NOT NULL,
    truncated_lsn BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS "mirror"."kinesync_lease" (
    name VARCHAR(64) NOT NULL,
    holder VARCHAR(256) NOT NULL,
    expires_at TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS "mirror"."kinesync_merge_status" (
    events_view VARCHAR(256) NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    result VARCHAR(16) NOT NULL,
    detail VARCHAR(1024) NOT NULL
);

CREATE TABLE IF NOT EXISTS "mirror"."kinesync_refresh_log" (
    events_view VARCHAR(256) NOT NULL,
    refreshed_at TIMESTAMP NOT NULL
);

CREATE OR REPLACE PROCEDURE "mirror"."sp_kinesync_execute"(s1 VARCHAR(65535), s2 VARCHAR(65535), s3 VARCHAR(65535), s4 VARCHAR(65535), s5 VARCHAR(65535), s6 VARCHAR(65535), s7 VARCHAR(65535), s8 VARCHAR(65535), s9 VARCHAR(65535), s10 VARCHAR(65535), s11 VARCHAR(65535), s12 VARCHAR(65535), s13 VARCHAR(65535), s14 VARCHAR(65535), s15 VARCHAR(65535), s16 VARCHAR(65535), s17 VARCHAR(65535), s18 VARCHAR(65535), s19 VARCHAR(65535), s20 VARCHAR(65535), s21 VARCHAR(65535), s22 VARCHAR(65535), s23 VARCHAR(65535), s24 VARCHAR(65535), s25 VARCHAR(65535), s26 VARCHAR(65535), s27 VARCHAR(65535), s28 VARCHAR(65535), s29 VARCHAR(65535), s30 VARCHAR(65535), s31 VARCHAR(65535), s32 VARCHAR(65535))
AS $$
BEGIN
    IF s1 IS NOT NULL THEN
        EXECUTE REPLACE(s1, CHR(1), CHR(92));
    END IF;
    IF s2 IS NOT NULL THEN
        EXECUTE REPLACE(s2, CHR(1), CHR(92));
    END IF;
    IF s3 IS NOT NULL THEN
        EXECUTE REPLACE(s3, CHR(1), CHR(92));
    END IF;
    IF s4 IS NOT NULL THEN
        EXECUTE REPLACE(s4, CHR(1), CHR(92));
    END IF;
    IF s5 IS NOT NULL THEN
        EXECUTE REPLACE(s5, CHR(1), CHR(92));
    END IF;
    IF s6 IS NOT NULL THEN
        EXECUTE REPLACE(s6, CHR(1), CHR(92));
    END IF;
    IF s7 IS NOT NULL THEN
        EXECUTE REPLACE(s7, CHR(1), CHR(92));
    END IF;
    IF s8 IS NOT NULL THEN
        EXECUTE REPLACE(s8, CHR(1), CHR(92));
    END IF;
    IF s9 IS NOT NULL THEN
        EXECUTE REPLACE(s9, CHR(1), CHR(92));
    END IF;
    IF s10 IS NOT NULL THEN
        EXECUTE REPLACE(s10, CHR(1), CHR(92));
    END IF;
    IF s11 IS NOT NULL THEN
        EXECUTE REPLACE(s11, CHR(1), CHR(92));
    END IF;
    IF s12 IS NOT NULL THEN
        EXECUTE REPLACE(s12, CHR(1), CHR(92));
    END IF;
    IF s13 IS NOT NULL THEN
        EXECUTE REPLACE(s13, CHR(1), CHR(92));
    END IF;
    IF s14 IS NOT NULL THEN
        EXECUTE REPLACE(s14, CHR(1), CHR(92));
    END IF;
    IF s15 IS NOT NULL THEN
        EXECUTE REPLACE(s15, CHR(1), CHR(92));
    END IF;
    IF s16 IS NOT NULL THEN
        EXECUTE REPLACE(s16, CHR(1), CHR(92));
    END IF;
    IF s17 IS NOT NULL THEN
        EXECUTE REPLACE(s17, CHR(1), CHR(92));
    END IF;
    IF s18 IS NOT NULL THEN
        EXECUTE REPLACE(s18, CHR(1), CHR(92));
    END IF;
    IF s19 IS NOT NULL THEN
        EXECUTE REPLACE(s19, CHR(1), CHR(92));
    END IF;
    IF s20 IS NOT NULL THEN
        EXECUTE REPLACE(s20, CHR(1), CHR(92));
    END IF;
    IF s21 IS NOT NULL THEN
        EXECUTE REPLACE(s21, CHR(1), CHR(92));
    END IF;
    IF s22 IS NOT NULL THEN
        EXECUTE REPLACE(s22, CHR(1), CHR(92));
    END IF;
    IF s23 IS NOT NULL THEN
        EXECUTE REPLACE(s23, CHR(1), CHR(92));
    END IF;
    IF s24 IS NOT NULL THEN
        EXECUTE REPLACE(s24, CHR(1), CHR(92));
    END IF;
    IF s25 IS NOT NULL THEN
        EXECUTE REPLACE(s25, CHR(1), CHR(92));
    END IF;
    IF s26 IS NOT NULL THEN
        EXECUTE REPLACE(s26, CHR(1), CHR(92));
    END IF;
    IF s27 IS NOT NULL THEN
        EXECUTE REPLACE(s27, CHR(1), CHR(92));
    END IF;
    IF s28 IS NOT NULL THEN
        EXECUTE REPLACE(s28, CHR(1), CHR(92));
    END IF;
    IF s29 IS NOT NULL THEN
        EXECUTE REPLACE(s29, CHR(1), CHR(92));
    END IF;
    IF s30 IS NOT NULL THEN
        EXECUTE REPLACE(s30, CHR(1), CHR(92));
    END IF;
    IF s31 IS NOT NULL THEN
        EXECUTE REPLACE(s31, CHR(1), CHR(92));
    END IF;
    IF s32 IS NOT NULL THEN
        EXECUTE REPLACE(s32, CHR(1), CHR(92));
    END IF;
END;
$$ LANGUAGE plpgsql;

CREATE TABLE IF NOT EXISTS "mirror"."orders" (
    "id" BIGINT,
    "amount" DECIMAL(12,2),
    "note" VARCHAR(65535),
    "doc" SUPER,
    "at" TIMESTAMPTZ,
    _kinesync_commit_lsn BIGINT NOT NULL,
    _kinesync_lsn BIGINT NOT NULL,
    _kinesync_op_ts TIMESTAMP
)
DISTSTYLE KEY DISTKEY("id") COMPOUND SORTKEY("id");

CREATE TABLE IF NOT EXISTS "mirror"."kinesync_tombstones__orders" (
    "id" BIGINT,
    _kinesync_commit_lsn BIGINT NOT NULL,
    _kinesync_lsn BIGINT NOT NULL
)
DISTSTYLE KEY DISTKEY("id") COMPOUND SORTKEY("id");

CREATE TABLE IF NOT EXISTS "mirror"."sales__line items" (
    "order_id" BIGINT,
    "line""no" INTEGER,
    "data" VARBYTE(1024000),
    _kinesync_commit_lsn BIGINT NOT NULL,
    _kinesync_lsn BIGINT NOT NULL,
    _kinesync_op_ts TIMESTAMP
)
DISTSTYLE KEY DISTKEY("order_id") COMPOUND SORTKEY("order_id", "line""no");

CREATE TABLE IF NOT EXISTS "mirror"."kinesync_tombstones__sales__line items" (
    "order_id" BIGINT,
    "line""no" INTEGER,
    _kinesync_commit_lsn BIGINT NOT NULL,
    _kinesync_lsn BIGINT NOT NULL
)
DISTSTYLE KEY DISTKEY("order_id") COMPOUND SORTKEY("order_id", "line""no");

CREATE MATERIALIZED VIEW "mirror"."kinesync_events" SORTKEY (refresh_time) AUTO REFRESH NO AS
SELECT approximate_arrival_timestamp,
       refresh_time,
       shard_id,
       sequence_number,
       partition_key,
       JSON_PARSE(kinesis_data) AS payload
FROM "kinesync_stream"."kinesync-cdc";

-- refresh
REFRESH MATERIALIZED VIEW "mirror"."kinesync_events";

-- pending
SELECT e.payload."source"."schema"::varchar AS source_schema,
       e.payload."source"."table"::varchar AS source_table,
       e.payload."op"::varchar AS op,
       COUNT(*) AS events
FROM "mirror"."kinesync_events" AS e
WHERE e.refresh_time > (SELECT c.watermark FROM "mirror"."kinesync_checkpoint" AS c WHERE c.events_view = 'kinesync_events')
GROUP BY 1, 2, 3;

-- lease (acquire, holder, renew, release)
LOCK "mirror"."kinesync_lease";

DELETE FROM "mirror"."kinesync_lease" WHERE name = 'merge' AND (expires_at < GETDATE() OR holder = 'golden-host:1:00000000');

INSERT INTO "mirror"."kinesync_lease" (name, holder, expires_at)
SELECT 'merge', 'golden-host:1:00000000', GETDATE() + INTERVAL '30 seconds'
WHERE NOT EXISTS (SELECT 1 FROM "mirror"."kinesync_lease" WHERE name = 'merge');

SELECT l.holder AS holder, l.expires_at::varchar AS expires_at,
       (SELECT MAX(c.merged_at) FROM "mirror"."kinesync_checkpoint" AS c)::varchar AS last_merged_at,
       COALESCE(
           (SELECT MAX(r.refreshed_at) FROM "mirror"."kinesync_refresh_log" AS r WHERE r.events_view = 'kinesync_events'),
           (SELECT MAX(c.merged_at) FROM "mirror"."kinesync_checkpoint" AS c
            WHERE c.events_view = 'kinesync_events' AND c.watermark > TIMESTAMP '1900-01-01 00:00:00'))::varchar AS previous,
       GETDATE()::varchar AS now
FROM "mirror"."kinesync_lease" AS l
WHERE l.name = 'merge'
ORDER BY l.holder
LIMIT 1;

UPDATE "mirror"."kinesync_lease" SET expires_at = GETDATE() + INTERVAL '30 seconds'
WHERE name = 'merge' AND holder = 'golden-host:1:00000000' AND expires_at > GETDATE();

DELETE FROM "mirror"."kinesync_lease" WHERE name = 'merge' AND holder = 'golden-host:1:00000000';

-- merge batch 1
SELECT 1 / COUNT(*) AS kinesync_lease_fence
FROM "mirror"."kinesync_lease"
WHERE name = 'merge' AND holder = 'golden-host:1:00000000' AND expires_at > GETDATE();

SET enable_case_sensitive_super_attribute TO true;

SET enable_case_sensitive_identifier TO true;

CALL "mirror"."sp_kinesync_execute"('CREATE TEMP TABLE kinesync_new_events SORTKEY (source_table, source_schema) AS
SELECT e.refresh_time, e.payload,
       e.payload."source"."schema"::varchar AS source_schema,
       e.payload."source"."table"::varchar AS source_table,
       e.payload."op"::varchar AS op
FROM "mirror"."kinesync_events" AS e
WHERE e.refresh_time > (SELECT c.watermark FROM "mirror"."kinesync_checkpoint" AS c WHERE c.events_view = ''kinesync_events'')',
'CREATE TEMP TABLE kinesync_merge_counts (
    mirror_table VARCHAR(256) NOT NULL,
    replaced BIGINT NOT NULL,
    deleted BIGINT NOT NULL,
    upserted BIGINT NOT NULL
)',
'CREATE TEMP TABLE kinesync_changes_1 DISTKEY("id") AS
SELECT CAST(''upsert'' AS VARCHAR(6)) AS _kinesync_action,
       e.payload."source"."commit_lsn"::bigint AS _kinesync_commit_lsn,
       e.payload."source"."lsn"::bigint AS _kinesync_lsn,
       e.payload."source"."ts_ms"::bigint AS _kinesync_ts_ms,
       e.payload."after"."id"::bigint AS "id",
       CASE WHEN e.payload."after"."amount"::varchar = ''NaN'' THEN NULL ELSE e.payload."after"."amount"::varchar::decimal(12,2) END AS "amount",
       e.payload."after"."note"::varchar AS "note",
       CASE WHEN JSON_TYPEOF(e.payload."after"."doc") = ''null'' THEN NULL ELSE e.payload."after"."doc" END AS "doc",
       CASE WHEN e.payload."after"."at"::varchar IN (''infinity'', ''-infinity'') OR e.payload."after"."at"::varchar LIKE ''% BC'' OR POSITION(''-'' IN e.payload."after"."at"::varchar) > 5 THEN NULL ELSE e.payload."after"."at"::varchar::timestamptz END AS "at",
       COALESCE(e.payload."before"."id"::bigint, e.payload."after"."id"::bigint) AS _kinesync_origin_1,
       e.payload."unchanged_toast"."note"::boolean AS _kinesync_unchanged_1,
       e.payload."unchanged_toast"."doc"::boolean AS _kinesync_unchanged_2,
       (e.op = ''u'' AND e.payload."unchanged_toast" IS NULL) AS _kinesync_legacy
FROM kinesync_new_events AS e
WHERE e.source_table = ''orders'' AND e.source_schema = ''public'' AND e.op IN (''c'', ''u'', ''r'')
UNION ALL
SELECT CAST(''delete'' AS VARCHAR(6)),
       e.payload."source"."commit_lsn"::bigint,
       e.payload."source"."lsn"::bigint,
       e.payload."source"."ts_ms"::bigint,
       e.payload."before"."id"::bigint,
       CAST(NULL AS DECIMAL(12,2)),
       CAST(NULL AS VARCHAR(65535)),
       CAST(NULL AS SUPER),
       CAST(NULL AS TIMESTAMPTZ),
       CAST(NULL AS BIGINT),
       CAST(NULL AS BOOLEAN) AS _kinesync_unchanged_1,
       CAST(NULL AS BOOLEAN) AS _kinesync_unchanged_2,
       false AS _kinesync_legacy
FROM kinesync_new_events AS e
WHERE e.source_table = ''orders'' AND e.source_schema = ''public''
  AND (e.op = ''d'' OR (e.op = ''u'' AND IS_OBJECT(e.payload."before")))',
'CREATE TEMP TABLE kinesync_latest_1 DISTKEY("id") AS
SELECT * FROM (
    SELECT c.*, ROW_NUMBER() OVER (
               PARTITION BY "id"
               ORDER BY c._kinesync_commit_lsn DESC, c._kinesync_lsn DESC, c._kinesync_action DESC
           ) AS _kinesync_rank
    FROM kinesync_changes_1 AS c
) AS ranked
WHERE _kinesync_rank = 1',
'CREATE TEMP TABLE kinesync_cutoff_1 AS
SELECT t._kinesync_commit_lsn, t._kinesync_lsn FROM (
    SELECT e.payload."source"."commit_lsn"::bigint AS _kinesync_commit_lsn,
           e.payload."source"."lsn"::bigint AS _kinesync_lsn
    FROM kinesync_new_events AS e
    WHERE e.source_table = ''orders'' AND e.source_schema = ''public'' AND e.op IN (''t'', ''e'')
    UNION ALL
    SELECT s.truncated_commit_lsn, s.truncated_lsn
    FROM "mirror"."kinesync_table_state" AS s
    WHERE s.mirror_table = ''orders''
) AS t
ORDER BY t._kinesync_commit_lsn DESC, t._kinesync_lsn DESC
LIMIT 1',
'DELETE FROM "mirror"."kinesync_table_state" WHERE mirror_table = ''orders''',
'INSERT INTO "mirror"."kinesync_table_state" (mirror_table, truncated_commit_lsn, truncated_lsn)
SELECT ''orders'', k._kinesync_commit_lsn, k._kinesync_lsn FROM kinesync_cutoff_1 AS k',
'DELETE FROM kinesync_latest_1 USING "mirror"."kinesync_table_state" AS k
WHERE k.mirror_table = ''orders''
  AND (kinesync_latest_1._kinesync_commit_lsn < k.truncated_commit_lsn
       OR (kinesync_latest_1._kinesync_commit_lsn = k.truncated_commit_lsn AND kinesync_latest_1._kinesync_lsn < k.truncated_lsn))',
'DELETE FROM kinesync_latest_1 USING "mirror"."orders" AS m
WHERE kinesync_latest_1."id" = m."id"
  AND (m._kinesync_commit_lsn > kinesync_latest_1._kinesync_commit_lsn
       OR (m._kinesync_commit_lsn = kinesync_latest_1._kinesync_commit_lsn AND m._kinesync_lsn >= kinesync_latest_1._kinesync_lsn))',
'DELETE FROM kinesync_latest_1 USING "mirror"."kinesync_tombstones__orders" AS m
WHERE kinesync_latest_1."id" = m."id"
  AND (m._kinesync_commit_lsn > kinesync_latest_1._kinesync_commit_lsn
       OR (m._kinesync_commit_lsn = kinesync_latest_1._kinesync_commit_lsn AND m._kinesync_lsn >= kinesync_latest_1._kinesync_lsn))',
'UPDATE kinesync_changes_1 SET _kinesync_unchanged_1 = CASE WHEN _kinesync_legacy THEN COALESCE("note" = ''__debezium_unavailable_value'', false) ELSE COALESCE(_kinesync_unchanged_1, false) END,
    _kinesync_unchanged_2 = CASE WHEN _kinesync_legacy THEN COALESCE(IS_VARCHAR("doc") AND "doc"::varchar = ''__debezium_unavailable_value'', false) ELSE COALESCE(_kinesync_unchanged_2, false) END',
'UPDATE kinesync_latest_1 SET _kinesync_unchanged_1 = CASE WHEN _kinesync_legacy THEN COALESCE("note" = ''__debezium_unavailable_value'', false) ELSE COALESCE(_kinesync_unchanged_1, false) END,
    _kinesync_unchanged_2 = CASE WHEN _kinesync_legacy THEN COALESCE(IS_VARCHAR("doc") AND "doc"::varchar = ''__debezium_unavailable_value'', false) ELSE COALESCE(_kinesync_unchanged_2, false) END',
'CREATE TEMP TABLE kinesync_links_1 AS
SELECT x.commit_lsn, x.lsn, x.pred_commit_lsn, x.pred_lsn, x._kinesync_pred_1 FROM (
    SELECT r._kinesync_commit_lsn AS commit_lsn, r._kinesync_lsn AS lsn,
           p._kinesync_commit_lsn AS pred_commit_lsn, p._kinesync_lsn AS pred_lsn,
           p."id" AS _kinesync_pred_1,
           ROW_NUMBER() OVER (PARTITION BY r._kinesync_commit_lsn, r._kinesync_lsn
                              ORDER BY p._kinesync_commit_lsn DESC, p._kinesync_lsn DESC) AS _kinesync_rank
    FROM kinesync_changes_1 AS r
    JOIN kinesync_changes_1 AS p
      ON p."id" = r._kinesync_origin_1
     AND (p._kinesync_commit_lsn < r._kinesync_commit_lsn
          OR (p._kinesync_commit_lsn = r._kinesync_commit_lsn AND p._kinesync_lsn < r._kinesync_lsn))
    WHERE r._kinesync_action = ''upsert'' AND p._kinesync_action = ''upsert'' AND (r._kinesync_unchanged_1 OR r._kinesync_unchanged_2)
) AS x
WHERE x._kinesync_rank = 1',
'CREATE TEMP TABLE kinesync_chain_1 AS
WITH RECURSIVE walk (start_commit_lsn, start_lsn, at_commit_lsn, at_lsn, depth, _kinesync_at_1) AS (
    SELECT l._kinesync_commit_lsn, l._kinesync_lsn, l._kinesync_commit_lsn, l._kinesync_lsn, 0, l."id"
    FROM kinesync_latest_1 AS l
    WHERE l._kinesync_action = ''upsert'' AND (l._kinesync_unchanged_1 OR l._kinesync_unchanged_2)
    UNION ALL
    SELECT w.start_commit_lsn, w.start_lsn, k.pred_commit_lsn, k.pred_lsn, w.depth + 1, k._kinesync_pred_1
    FROM walk AS w
    JOIN kinesync_links_1 AS k ON k.commit_lsn = w.at_commit_lsn AND k.lsn = w.at_lsn
)
SELECT w.start_commit_lsn, w.start_lsn, w.depth, c.*
FROM walk AS w
JOIN kinesync_changes_1 AS c
  ON c._kinesync_commit_lsn = w.at_commit_lsn AND c._kinesync_lsn = w.at_lsn AND c._kinesync_action = ''upsert''
 AND c."id" = w._kinesync_at_1',
'CREATE TEMP TABLE kinesync_resolved_1_1 AS
SELECT s.start_commit_lsn, s.start_lsn, m."id" IS NOT NULL AS _kinesync_in_mirror, v0."note" AS _kinesync_value_0, v0._kinesync_rank AS _kinesync_found_0, m."note" AS _kinesync_mirror_0, v1."doc" AS _kinesync_value_1, v1._kinesync_rank AS _kinesync_found_1, m."doc" AS _kinesync_mirror_1 FROM (SELECT DISTINCT start_commit_lsn, start_lsn FROM kinesync_chain_1) AS s
    LEFT JOIN (SELECT start_commit_lsn, start_lsn, c."note", ROW_NUMBER() OVER (PARTITION BY start_commit_lsn, start_lsn ORDER BY c.depth) AS _kinesync_rank FROM kinesync_chain_1 AS c WHERE NOT c._kinesync_unchanged_1) AS v0 ON v0._kinesync_rank = 1 AND v0.start_commit_lsn = s.start_commit_lsn AND v0.start_lsn = s.start_lsn
    LEFT JOIN (SELECT start_commit_lsn, start_lsn, c."doc", ROW_NUMBER() OVER (PARTITION BY start_commit_lsn, start_lsn ORDER BY c.depth) AS _kinesync_rank FROM kinesync_chain_1 AS c WHERE NOT c._kinesync_unchanged_2) AS v1 ON v1._kinesync_rank = 1 AND v1.start_commit_lsn = s.start_commit_lsn AND v1.start_lsn = s.start_lsn
    LEFT JOIN (SELECT start_commit_lsn, start_lsn, _kinesync_origin_1, ROW_NUMBER() OVER (PARTITION BY start_commit_lsn, start_lsn ORDER BY c.depth DESC) AS _kinesync_rank FROM kinesync_chain_1 AS c) AS oldest ON oldest._kinesync_rank = 1 AND oldest.start_commit_lsn = s.start_commit_lsn AND oldest.start_lsn = s.start_lsn
    LEFT JOIN "mirror"."orders" AS m ON m."id" = oldest._kinesync_origin_1',
'UPDATE kinesync_latest_1 SET "note" = CASE WHEN NOT kinesync_latest_1._kinesync_unchanged_1 THEN kinesync_latest_1."note" WHEN p._kinesync_found_0 IS NOT NULL THEN p._kinesync_value_0 WHEN p._kinesync_in_mirror THEN p._kinesync_mirror_0 ELSE kinesync_latest_1."note" END,
    _kinesync_unchanged_1 = kinesync_latest_1._kinesync_unchanged_1 AND p._kinesync_found_0 IS NULL AND NOT p._kinesync_in_mirror,
    "doc" = CASE WHEN NOT kinesync_latest_1._kinesync_unchanged_2 THEN kinesync_latest_1."doc" WHEN p._kinesync_found_1 IS NOT NULL THEN p._kinesync_value_1 WHEN p._kinesync_in_mirror THEN p._kinesync_mirror_1 ELSE kinesync_latest_1."doc" END,
    _kinesync_unchanged_2 = kinesync_latest_1._kinesync_unchanged_2 AND p._kinesync_found_1 IS NULL AND NOT p._kinesync_in_mirror
FROM kinesync_resolved_1_1 AS p
WHERE kinesync_latest_1._kinesync_commit_lsn = p.start_commit_lsn AND kinesync_latest_1._kinesync_lsn = p.start_lsn',
'SELECT CAST(''kinesync-unresolved-toast: table '' || ''public.orders'' || '' key ('' || COALESCE(CAST(l."id" AS VARCHAR), ''NULL'')
            || '') column '' || CASE WHEN l._kinesync_unchanged_1 THEN ''note'' WHEN l._kinesync_unchanged_2 THEN ''doc'' END AS INTEGER)
FROM kinesync_latest_1 AS l
WHERE l._kinesync_action = ''upsert'' AND (l._kinesync_unchanged_1 OR l._kinesync_unchanged_2)
LIMIT 1',
'DELETE FROM "mirror"."orders" USING kinesync_cutoff_1 AS k
WHERE "mirror"."orders"._kinesync_commit_lsn < k._kinesync_commit_lsn
   OR ("mirror"."orders"._kinesync_commit_lsn = k._kinesync_commit_lsn AND "mirror"."orders"._kinesync_lsn < k._kinesync_lsn)',
'DELETE FROM "mirror"."kinesync_tombstones__orders" USING kinesync_cutoff_1 AS k
WHERE "mirror"."kinesync_tombstones__orders"._kinesync_commit_lsn < k._kinesync_commit_lsn
   OR ("mirror"."kinesync_tombstones__orders"._kinesync_commit_lsn = k._kinesync_commit_lsn AND "mirror"."kinesync_tombstones__orders"._kinesync_lsn < k._kinesync_lsn)',
'INSERT INTO kinesync_merge_counts (mirror_table, replaced, deleted, upserted)
SELECT ''orders'',
       (SELECT COUNT(*) FROM kinesync_latest_1 JOIN "mirror"."orders" ON "mirror"."orders"."id" = kinesync_latest_1."id" WHERE kinesync_latest_1._kinesync_action = ''upsert''),
       (SELECT COUNT(*) FROM kinesync_latest_1 JOIN "mirror"."orders" ON "mirror"."orders"."id" = kinesync_latest_1."id" WHERE kinesync_latest_1._kinesync_action = ''delete''),
       (SELECT COUNT(*) FROM kinesync_latest_1 WHERE kinesync_latest_1._kinesync_action = ''upsert'')',
'DELETE FROM "mirror"."orders" USING kinesync_latest_1
WHERE "mirror"."orders"."id" = kinesync_latest_1."id" AND kinesync_latest_1._kinesync_action = ''upsert''',
'DELETE FROM "mirror"."orders" USING kinesync_latest_1
WHERE "mirror"."orders"."id" = kinesync_latest_1."id" AND kinesync_latest_1._kinesync_action = ''delete''',
'INSERT INTO "mirror"."orders" ("id", "amount", "note", "doc", "at", _kinesync_commit_lsn, _kinesync_lsn, _kinesync_op_ts)
SELECT l."id", l."amount", l."note", l."doc", l."at", l._kinesync_commit_lsn, l._kinesync_lsn,
       TIMESTAMP ''epoch'' + (l._kinesync_ts_ms / 1000) * INTERVAL ''1 second''
FROM kinesync_latest_1 AS l
WHERE l._kinesync_action = ''upsert''',
'DELETE FROM "mirror"."kinesync_tombstones__orders" USING kinesync_latest_1
WHERE "mirror"."kinesync_tombstones__orders"."id" = kinesync_latest_1."id"',
'INSERT INTO "mirror"."kinesync_tombstones__orders" ("id", _kinesync_commit_lsn, _kinesync_lsn)
SELECT l."id", l._kinesync_commit_lsn, l._kinesync_lsn
FROM kinesync_latest_1 AS l
WHERE l._kinesync_action = ''delete''',
'CREATE TEMP TABLE kinesync_changes_2 DISTKEY("order_id") AS
SELECT CAST(''upsert'' AS VARCHAR(6)) AS _kinesync_action,
       e.payload."source"."commit_lsn"::bigint AS _kinesync_commit_lsn,
       e.payload."source"."lsn"::bigint AS _kinesync_lsn,
       e.payload."source"."ts_ms"::bigint AS _kinesync_ts_ms,
       e.payload."after"."order_id"::bigint AS "order_id",
       e.payload."after"."Line""No"::integer AS "line""no",
       e.payload."after"."data"::varchar AS "data",
       COALESCE(e.payload."before"."order_id"::bigint, e.payload."after"."order_id"::bigint) AS _kinesync_origin_1,
       COALESCE(e.payload."before"."Line""No"::integer, e.payload."after"."Line""No"::integer) AS _kinesync_origin_2,
       e.payload."unchanged_toast"."data"::boolean AS _kinesync_unchanged_1,
       (e.op = ''u'' AND e.payload."unchanged_toast" IS NULL) AS _kinesync_legacy
FROM kinesync_new_events AS e
WHERE e.source_table = ''Line Items'' AND e.source_schema = ''sales'' AND e.op IN (''c'', ''u'', ''r'')
UNION ALL
SELECT CAST(''delete'' AS VARCHAR(6)),
       e.payload."source"."commit_lsn"::bigint,
       e.payload."source"."lsn"::bigint,
       e.payload."source"."ts_ms"::bigint,
       e.payload."before"."order_id"::bigint,
       e.payload."before"."Line""No"::integer,
       CAST(NULL AS VARCHAR(65535)),
       CAST(NULL AS BIGINT),
       CAST(NULL AS INTEGER),
       CAST(NULL AS BOOLEAN) AS _kinesync_unchanged_1,
       false AS _kinesync_legacy
FROM kinesync_new_events AS e
WHERE e.source_table = ''Line Items'' AND e.source_schema = ''sales''
  AND (e.op = ''d'' OR (e.op = ''u'' AND IS_OBJECT(e.payload."before")))',
'CREATE TEMP TABLE kinesync_latest_2 DISTKEY("order_id") AS
SELECT * FROM (
    SELECT c.*, ROW_NUMBER() OVER (
               PARTITION BY "order_id", "line""no"
               ORDER BY c._kinesync_commit_lsn DESC, c._kinesync_lsn DESC, c._kinesync_action DESC
           ) AS _kinesync_rank
    FROM kinesync_changes_2 AS c
) AS ranked
WHERE _kinesync_rank = 1',
'CREATE TEMP TABLE kinesync_cutoff_2 AS
SELECT t._kinesync_commit_lsn, t._kinesync_lsn FROM (
    SELECT e.payload."source"."commit_lsn"::bigint AS _kinesync_commit_lsn,
           e.payload."source"."lsn"::bigint AS _kinesync_lsn
    FROM kinesync_new_events AS e
    WHERE e.source_table = ''Line Items'' AND e.source_schema = ''sales'' AND e.op IN (''t'', ''e'')
    UNION ALL
    SELECT s.truncated_commit_lsn, s.truncated_lsn
    FROM "mirror"."kinesync_table_state" AS s
    WHERE s.mirror_table = ''sales__line items''
) AS t
ORDER BY t._kinesync_commit_lsn DESC, t._kinesync_lsn DESC
LIMIT 1',
'DELETE FROM "mirror"."kinesync_table_state" WHERE mirror_table = ''sales__line items''',
'INSERT INTO "mirror"."kinesync_table_state" (mirror_table, truncated_commit_lsn, truncated_lsn)
SELECT ''sales__line items'', k._kinesync_commit_lsn, k._kinesync_lsn FROM kinesync_cutoff_2 AS k',
'DELETE FROM kinesync_latest_2 USING "mirror"."kinesync_table_state" AS k
WHERE k.mirror_table = ''sales__line items''
  AND (kinesync_latest_2._kinesync_commit_lsn < k.truncated_commit_lsn
       OR (kinesync_latest_2._kinesync_commit_lsn = k.truncated_commit_lsn AND kinesync_latest_2._kinesync_lsn < k.truncated_lsn))',
'DELETE FROM kinesync_latest_2 USING "mirror"."sales__line items" AS m
WHERE kinesync_latest_2."order_id" = m."order_id" AND kinesync_latest_2."line""no" = m."line""no"
  AND (m._kinesync_commit_lsn > kinesync_latest_2._kinesync_commit_lsn
       OR (m._kinesync_commit_lsn = kinesync_latest_2._kinesync_commit_lsn AND m._kinesync_lsn >= kinesync_latest_2._kinesync_lsn))');

CALL "mirror"."sp_kinesync_execute"('DELETE FROM kinesync_latest_2 USING "mirror"."kinesync_tombstones__sales__line items" AS m
WHERE kinesync_latest_2."order_id" = m."order_id" AND kinesync_latest_2."line""no" = m."line""no"
  AND (m._kinesync_commit_lsn > kinesync_latest_2._kinesync_commit_lsn
       OR (m._kinesync_commit_lsn = kinesync_latest_2._kinesync_commit_lsn AND m._kinesync_lsn >= kinesync_latest_2._kinesync_lsn))',
'UPDATE kinesync_changes_2 SET _kinesync_unchanged_1 = CASE WHEN _kinesync_legacy THEN COALESCE("data" = ''__debezium_unavailable_value'', false) ELSE COALESCE(_kinesync_unchanged_1, false) END',
'UPDATE kinesync_latest_2 SET _kinesync_unchanged_1 = CASE WHEN _kinesync_legacy THEN COALESCE("data" = ''__debezium_unavailable_value'', false) ELSE COALESCE(_kinesync_unchanged_1, false) END',
'CREATE TEMP TABLE kinesync_links_2 AS
SELECT x.commit_lsn, x.lsn, x.pred_commit_lsn, x.pred_lsn, x._kinesync_pred_1, x._kinesync_pred_2 FROM (
    SELECT r._kinesync_commit_lsn AS commit_lsn, r._kinesync_lsn AS lsn,
           p._kinesync_commit_lsn AS pred_commit_lsn, p._kinesync_lsn AS pred_lsn,
           p."order_id" AS _kinesync_pred_1, p."line""no" AS _kinesync_pred_2,
           ROW_NUMBER() OVER (PARTITION BY r._kinesync_commit_lsn, r._kinesync_lsn
                              ORDER BY p._kinesync_commit_lsn DESC, p._kinesync_lsn DESC) AS _kinesync_rank
    FROM kinesync_changes_2 AS r
    JOIN kinesync_changes_2 AS p
      ON p."order_id" = r._kinesync_origin_1 AND p."line""no" = r._kinesync_origin_2
     AND (p._kinesync_commit_lsn < r._kinesync_commit_lsn
          OR (p._kinesync_commit_lsn = r._kinesync_commit_lsn AND p._kinesync_lsn < r._kinesync_lsn))
    WHERE r._kinesync_action = ''upsert'' AND p._kinesync_action = ''upsert'' AND (r._kinesync_unchanged_1)
) AS x
WHERE x._kinesync_rank = 1',
'CREATE TEMP TABLE kinesync_chain_2 AS
WITH RECURSIVE walk (start_commit_lsn, start_lsn, at_commit_lsn, at_lsn, depth, _kinesync_at_1, _kinesync_at_2) AS (
    SELECT l._kinesync_commit_lsn, l._kinesync_lsn, l._kinesync_commit_lsn, l._kinesync_lsn, 0, l."order_id", l."line""no"
    FROM kinesync_latest_2 AS l
    WHERE l._kinesync_action = ''upsert'' AND (l._kinesync_unchanged_1)
    UNION ALL
    SELECT w.start_commit_lsn, w.start_lsn, k.pred_commit_lsn, k.pred_lsn, w.depth + 1, k._kinesync_pred_1, k._kinesync_pred_2
    FROM walk AS w
    JOIN kinesync_links_2 AS k ON k.commit_lsn = w.at_commit_lsn AND k.lsn = w.at_lsn
)
SELECT w.start_commit_lsn, w.start_lsn, w.depth, c.*
FROM walk AS w
JOIN kinesync_changes_2 AS c
  ON c._kinesync_commit_lsn = w.at_commit_lsn AND c._kinesync_lsn = w.at_lsn AND c._kinesync_action = ''upsert''
 AND c."order_id" = w._kinesync_at_1 AND c."line""no" = w._kinesync_at_2',
'CREATE TEMP TABLE kinesync_resolved_2_1 AS
SELECT s.start_commit_lsn, s.start_lsn, m."order_id" IS NOT NULL AS _kinesync_in_mirror, v0."data" AS _kinesync_value_0, v0._kinesync_rank AS _kinesync_found_0, TO_HEX(m."data") AS _kinesync_mirror_0 FROM (SELECT DISTINCT start_commit_lsn, start_lsn FROM kinesync_chain_2) AS s
    LEFT JOIN (SELECT start_commit_lsn, start_lsn, c."data", ROW_NUMBER() OVER (PARTITION BY start_commit_lsn, start_lsn ORDER BY c.depth) AS _kinesync_rank FROM kinesync_chain_2 AS c WHERE NOT c._kinesync_unchanged_1) AS v0 ON v0._kinesync_rank = 1 AND v0.start_commit_lsn = s.start_commit_lsn AND v0.start_lsn = s.start_lsn
    LEFT JOIN (SELECT start_commit_lsn, start_lsn, _kinesync_origin_1, _kinesync_origin_2, ROW_NUMBER() OVER (PARTITION BY start_commit_lsn, start_lsn ORDER BY c.depth DESC) AS _kinesync_rank FROM kinesync_chain_2 AS c) AS oldest ON oldest._kinesync_rank = 1 AND oldest.start_commit_lsn = s.start_commit_lsn AND oldest.start_lsn = s.start_lsn
    LEFT JOIN "mirror"."sales__line items" AS m ON m."order_id" = oldest._kinesync_origin_1 AND m."line""no" = oldest._kinesync_origin_2',
'UPDATE kinesync_latest_2 SET "data" = CASE WHEN NOT kinesync_latest_2._kinesync_unchanged_1 THEN kinesync_latest_2."data" WHEN p._kinesync_found_0 IS NOT NULL THEN p._kinesync_value_0 WHEN p._kinesync_in_mirror THEN p._kinesync_mirror_0 ELSE kinesync_latest_2."data" END,
    _kinesync_unchanged_1 = kinesync_latest_2._kinesync_unchanged_1 AND p._kinesync_found_0 IS NULL AND NOT p._kinesync_in_mirror
FROM kinesync_resolved_2_1 AS p
WHERE kinesync_latest_2._kinesync_commit_lsn = p.start_commit_lsn AND kinesync_latest_2._kinesync_lsn = p.start_lsn',
'SELECT CAST(''kinesync-unresolved-toast: table '' || ''sales.Line Items'' || '' key ('' || COALESCE(CAST(l."order_id" AS VARCHAR), ''NULL'') || '', '' || COALESCE(CAST(l."line""no" AS VARCHAR), ''NULL'')
            || '') column '' || CASE WHEN l._kinesync_unchanged_1 THEN ''data'' END AS INTEGER)
FROM kinesync_latest_2 AS l
WHERE l._kinesync_action = ''upsert'' AND (l._kinesync_unchanged_1)
LIMIT 1',
'DELETE FROM "mirror"."sales__line items" USING kinesync_cutoff_2 AS k
WHERE "mirror"."sales__line items"._kinesync_commit_lsn < k._kinesync_commit_lsn
   OR ("mirror"."sales__line items"._kinesync_commit_lsn = k._kinesync_commit_lsn AND "mirror"."sales__line items"._kinesync_lsn < k._kinesync_lsn)',
'DELETE FROM "mirror"."kinesync_tombstones__sales__line items" USING kinesync_cutoff_2 AS k
WHERE "mirror"."kinesync_tombstones__sales__line items"._kinesync_commit_lsn < k._kinesync_commit_lsn
   OR ("mirror"."kinesync_tombstones__sales__line items"._kinesync_commit_lsn = k._kinesync_commit_lsn AND "mirror"."kinesync_tombstones__sales__line items"._kinesync_lsn < k._kinesync_lsn)',
'INSERT INTO kinesync_merge_counts (mirror_table, replaced, deleted, upserted)
SELECT ''sales__line items'',
       (SELECT COUNT(*) FROM kinesync_latest_2 JOIN "mirror"."sales__line items" ON "mirror"."sales__line items"."order_id" = kinesync_latest_2."order_id" AND "mirror"."sales__line items"."line""no" = kinesync_latest_2."line""no" WHERE kinesync_latest_2._kinesync_action = ''upsert''),
       (SELECT COUNT(*) FROM kinesync_latest_2 JOIN "mirror"."sales__line items" ON "mirror"."sales__line items"."order_id" = kinesync_latest_2."order_id" AND "mirror"."sales__line items"."line""no" = kinesync_latest_2."line""no" WHERE kinesync_latest_2._kinesync_action = ''delete''),
       (SELECT COUNT(*) FROM kinesync_latest_2 WHERE kinesync_latest_2._kinesync_action = ''upsert'')',
'DELETE FROM "mirror"."sales__line items" USING kinesync_latest_2
WHERE "mirror"."sales__line items"."order_id" = kinesync_latest_2."order_id" AND "mirror"."sales__line items"."line""no" = kinesync_latest_2."line""no" AND kinesync_latest_2._kinesync_action = ''upsert''',
'DELETE FROM "mirror"."sales__line items" USING kinesync_latest_2
WHERE "mirror"."sales__line items"."order_id" = kinesync_latest_2."order_id" AND "mirror"."sales__line items"."line""no" = kinesync_latest_2."line""no" AND kinesync_latest_2._kinesync_action = ''delete''',
'INSERT INTO "mirror"."sales__line items" ("order_id", "line""no", "data", _kinesync_commit_lsn, _kinesync_lsn, _kinesync_op_ts)
SELECT l."order_id", l."line""no", TO_VARBYTE(l."data", ''hex''), l._kinesync_commit_lsn, l._kinesync_lsn,
       TIMESTAMP ''epoch'' + (l._kinesync_ts_ms / 1000) * INTERVAL ''1 second''
FROM kinesync_latest_2 AS l
WHERE l._kinesync_action = ''upsert''',
'DELETE FROM "mirror"."kinesync_tombstones__sales__line items" USING kinesync_latest_2
WHERE "mirror"."kinesync_tombstones__sales__line items"."order_id" = kinesync_latest_2."order_id" AND "mirror"."kinesync_tombstones__sales__line items"."line""no" = kinesync_latest_2."line""no"',
'INSERT INTO "mirror"."kinesync_tombstones__sales__line items" ("order_id", "line""no", _kinesync_commit_lsn, _kinesync_lsn)
SELECT l."order_id", l."line""no", l._kinesync_commit_lsn, l._kinesync_lsn
FROM kinesync_latest_2 AS l
WHERE l._kinesync_action = ''delete''',
'UPDATE "mirror"."kinesync_checkpoint"
SET watermark = n.newest, merged_at = GETDATE()
FROM (SELECT MAX(refresh_time) AS newest FROM kinesync_new_events) AS n
WHERE "mirror"."kinesync_checkpoint".events_view = ''kinesync_events'' AND n.newest IS NOT NULL',
NULL,
NULL,
NULL,
NULL,
NULL,
NULL,
NULL,
NULL,
NULL,
NULL,
NULL,
NULL,
NULL,
NULL,
NULL);

SELECT mirror_table, replaced, deleted, upserted FROM kinesync_merge_counts;

