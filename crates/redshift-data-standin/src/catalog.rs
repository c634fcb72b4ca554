//! The `kinesync_standin` schema installed into every database the stand-in
//! serves: its catalog tables (Kinesis external schemas, streaming views and
//! the per-shard sequence numbers they consumed, stream scan errors, stored
//! procedures, faults injected by tests), the
//! Redshift catalog views it emulates (`SVV_MV_INFO`, `SVV_EXTERNAL_SCHEMAS`,
//! `SYS_STREAM_SCAN_ERRORS`) and the helper functions the rewriter targets
//! (JSON_PARSE, CAN_JSON_PARSE, SUPER navigation and lax casts, IS_*, ...).
//!
//! Installation is idempotent and serialized with an advisory lock.

use tokio_postgres::Client;

/// Bump when the DDL below changes (re-installs over an older version).
pub const CATALOG_VERSION: i32 = 4;

/// Advisory lock key used while installing.
const INSTALL_LOCK: i64 = 0x6b69_6e65_7379_6e63;

/// Longest string (value or key) JSON_PARSE accepts, in bytes.
pub const MAX_SUPER_STRING_BYTES: usize = 65_535;

/// Largest Kinesis record (kinesis_data) a streaming view ingests, in bytes:
/// `kinesis_data` is VARBYTE, at most 1,024,000 bytes (r_VARBYTE_type).
pub const MAX_RECORD_BYTES: usize = 1_024_000;

const DDL: &str = r#"
CREATE SCHEMA IF NOT EXISTS kinesync_standin;

CREATE TABLE IF NOT EXISTS kinesync_standin.version (version integer NOT NULL);

CREATE TABLE IF NOT EXISTS kinesync_standin.external_schemas (
    schema_name text PRIMARY KEY,
    source text NOT NULL DEFAULT 'KINESIS',
    iam_role text,
    created_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);

CREATE TABLE IF NOT EXISTS kinesync_standin.streaming_views (
    schema_name text NOT NULL,
    view_name text NOT NULL,
    external_schema text NOT NULL,
    stream_name text NOT NULL,
    select_sql text NOT NULL,
    auto_refresh boolean NOT NULL DEFAULT false,
    created_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    last_refresh_at timestamp,
    PRIMARY KEY (schema_name, view_name)
);

CREATE TABLE IF NOT EXISTS kinesync_standin.stream_positions (
    schema_name text NOT NULL,
    view_name text NOT NULL,
    shard_id text NOT NULL,
    sequence_number text NOT NULL,
    updated_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    PRIMARY KEY (schema_name, view_name, shard_id)
);

CREATE TABLE IF NOT EXISTS kinesync_standin.sys_stream_scan_errors (
    record_time timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    query_id bigint,
    mv_schema varchar(128),
    mv_name varchar(128),
    external_schema_name varchar(128),
    stream_name varchar(256),
    shard_id varchar(128),
    partition_key varchar(256),
    sequence_number varchar(128),
    record_length bigint,
    error_code integer,
    reason varchar(1024)
);

-- Stored procedures (CREATE PROCEDURE, interpreted by the stand-in at CALL
-- time: exec::procedures). Identity: schema, name, input argument types
-- without modifiers (arg_signature, e.g. 'varchar,integer'); arg_types are
-- the normalized Redshift types ('varchar(65535)'), arg_names '' when
-- unnamed; body is the text between the dollar quotes.
CREATE TABLE IF NOT EXISTS kinesync_standin.procedures (
    schema_name text NOT NULL,
    proc_name text NOT NULL,
    arg_signature text NOT NULL,
    arg_names text[] NOT NULL,
    arg_types text[] NOT NULL,
    body text NOT NULL,
    created_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    PRIMARY KEY (schema_name, proc_name, arg_signature)
);

-- Faults a test asks for (see the faults module).
CREATE TABLE IF NOT EXISTS kinesync_standin.fault_injection (
    fault text PRIMARY KEY CHECK (fault IN ('abort_batch', 'hold_after_refresh', 'expire_unread')),
    remaining integer NOT NULL DEFAULT 1,
    matching text,
    armed boolean NOT NULL DEFAULT false,
    hits integer NOT NULL DEFAULT 0
);

CREATE OR REPLACE VIEW kinesync_standin.svv_mv_info AS
SELECT current_database()::varchar(128) AS database_name,
       m.schemaname::varchar(128) AS schema_name,
       m.matviewowner::varchar(128) AS user_name,
       m.matviewname::varchar(128) AS name,
       'f'::char(1) AS is_stale,
       1 AS state,
       'f'::char(1) AS autorefresh,
       'f'::char(1) AS autorewrite
FROM pg_catalog.pg_matviews m
UNION ALL
SELECT current_database()::varchar(128),
       v.schema_name::varchar(128),
       COALESCE((SELECT t.tableowner FROM pg_catalog.pg_tables t
                 WHERE t.schemaname = v.schema_name AND t.tablename = v.view_name), current_user)::varchar(128),
       v.view_name::varchar(128),
       'f'::char(1),
       1,
       (CASE WHEN v.auto_refresh THEN 't' ELSE 'f' END)::char(1),
       'f'::char(1)
FROM kinesync_standin.streaming_views v;

CREATE OR REPLACE VIEW kinesync_standin.svv_external_schemas AS
SELECT n.oid::integer AS esoid,
       3 AS eskind,
       e.schema_name::varchar(128) AS schemaname,
       n.nspowner::integer AS esowner,
       ''::varchar(128) AS databasename,
       json_build_object('IAM_ROLE', e.iam_role, 'SOURCE', e.source)::text::varchar(128) AS esoptions
FROM kinesync_standin.external_schemas e
LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = e.schema_name;

-- Longest string (value or object key) inside a JSON document, in bytes.
CREATE OR REPLACE FUNCTION kinesync_standin.json_max_string_bytes(j jsonb) RETURNS integer
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT COALESCE(max(l), 0) FROM (
    SELECT octet_length(v #>> '{}') AS l
      FROM jsonb_path_query(j, 'strict $.**') AS v
     WHERE jsonb_typeof(v) = 'string'
    UNION ALL
    SELECT octet_length(k)
      FROM jsonb_path_query(j, 'strict $.**') AS v,
           LATERAL jsonb_object_keys(CASE WHEN jsonb_typeof(v) = 'object' THEN v ELSE '{}'::jsonb END) AS k
  ) s
$fn$;

CREATE OR REPLACE FUNCTION kinesync_standin.json_parse(t text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $fn$
DECLARE j jsonb;
BEGIN
  IF t IS NULL THEN RETURN NULL; END IF;
  BEGIN
    j := t::jsonb;
  EXCEPTION WHEN others THEN
    RAISE EXCEPTION 'JSON_PARSE: invalid JSON: %', SQLERRM USING ERRCODE = '22P02';
  END;
  IF octet_length(t) > 65535 AND kinesync_standin.json_max_string_bytes(j) > 65535 THEN
    RAISE EXCEPTION 'JSON_PARSE: string longer than 65535 bytes' USING ERRCODE = '22001';
  END IF;
  RETURN j;
END
$fn$;

CREATE OR REPLACE FUNCTION kinesync_standin.json_parse(b bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $fn$
DECLARE t text;
BEGIN
  IF b IS NULL THEN RETURN NULL; END IF;
  BEGIN
    t := convert_from(b, 'UTF8');
  EXCEPTION WHEN others THEN
    RAISE EXCEPTION 'JSON_PARSE: invalid UTF-8: %', SQLERRM USING ERRCODE = '22P02';
  END;
  RETURN kinesync_standin.json_parse(t);
END
$fn$;

CREATE OR REPLACE FUNCTION kinesync_standin.can_json_parse(t text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $fn$
DECLARE j jsonb;
BEGIN
  IF t IS NULL THEN RETURN NULL; END IF;
  BEGIN
    j := t::jsonb;
  EXCEPTION WHEN others THEN
    RETURN false;
  END;
  RETURN octet_length(t) <= 65535 OR kinesync_standin.json_max_string_bytes(j) <= 65535;
END
$fn$;

CREATE OR REPLACE FUNCTION kinesync_standin.can_json_parse(b bytea) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $fn$
DECLARE t text;
BEGIN
  IF b IS NULL THEN RETURN NULL; END IF;
  BEGIN
    t := convert_from(b, 'UTF8');
  EXCEPTION WHEN others THEN
    RETURN false;
  END;
  RETURN kinesync_standin.can_json_parse(t);
END
$fn$;

-- SUPER navigation: a missing attribute gives SQL NULL; a JSON null stays a
-- SUPER null value (not SQL NULL: the stricter reading of the SUPER docs).
CREATE OR REPLACE FUNCTION kinesync_standin.super_nav(v jsonb, path text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT v #> path
$fn$;

-- Lax casts: a value of the wrong JSON type gives NULL, never an error.
CREATE OR REPLACE FUNCTION kinesync_standin.super_to_varchar(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT CASE WHEN jsonb_typeof(v) = 'string' THEN v #>> '{}' END
$fn$;
-- A column whose name is a SUPER column's elsewhere, cast to VARCHAR.
CREATE OR REPLACE FUNCTION kinesync_standin.super_to_varchar(v text) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$ SELECT v $fn$;

-- Casts to these types check the documented ranges (r_Numeric_types201,
-- r_Datetime_types, r_Date_and_time_literals): NaN, infinities, BC and
-- 5-digit years fail as they may on Redshift.
DO $do$ BEGIN CREATE DOMAIN kinesync_standin.rs_date AS date CHECK (VALUE BETWEEN '0001-01-01' AND '9999-12-31');
EXCEPTION WHEN duplicate_object THEN NULL; END $do$;
DO $do$ BEGIN CREATE DOMAIN kinesync_standin.rs_timestamp AS timestamp CHECK (VALUE >= '0001-01-01 00:00:00' AND VALUE < '10000-01-01 00:00:00');
EXCEPTION WHEN duplicate_object THEN NULL; END $do$;
DO $do$ BEGIN CREATE DOMAIN kinesync_standin.rs_timestamptz AS timestamptz CHECK (VALUE >= '0001-01-01 00:00:00+00' AND VALUE < '10000-01-01 00:00:00+00');
EXCEPTION WHEN duplicate_object THEN NULL; END $do$;
DO $do$ BEGIN CREATE DOMAIN kinesync_standin.rs_real AS real CHECK (VALUE = 0 OR abs(VALUE::float8) BETWEEN 1e-37 AND 1e37);
EXCEPTION WHEN duplicate_object THEN NULL; END $do$;
DO $do$ BEGIN CREATE DOMAIN kinesync_standin.rs_double AS double precision CHECK (VALUE = 0 OR abs(VALUE) BETWEEN 1e-307 AND 1e308);
EXCEPTION WHEN duplicate_object THEN NULL; END $do$;

CREATE OR REPLACE FUNCTION kinesync_standin.super_integral(v jsonb, lo numeric, hi numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT CASE WHEN jsonb_typeof(v) = 'number'
               AND (v #>> '{}')::numeric = trunc((v #>> '{}')::numeric)
               AND (v #>> '{}')::numeric BETWEEN lo AND hi
              THEN (v #>> '{}')::numeric END
$fn$;

CREATE OR REPLACE FUNCTION kinesync_standin.super_to_int8(v jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT kinesync_standin.super_integral(v, -9223372036854775808, 9223372036854775807)::bigint
$fn$;

CREATE OR REPLACE FUNCTION kinesync_standin.super_to_int4(v jsonb) RETURNS integer
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT kinesync_standin.super_integral(v, -2147483648, 2147483647)::integer
$fn$;

CREATE OR REPLACE FUNCTION kinesync_standin.super_to_int2(v jsonb) RETURNS smallint
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT kinesync_standin.super_integral(v, -32768, 32767)::smallint
$fn$;

CREATE OR REPLACE FUNCTION kinesync_standin.super_to_float8(v jsonb) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT CASE WHEN jsonb_typeof(v) = 'number' THEN (v #>> '{}')::double precision END
$fn$;

CREATE OR REPLACE FUNCTION kinesync_standin.super_to_numeric(v jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT CASE WHEN jsonb_typeof(v) = 'number' THEN (v #>> '{}')::numeric END
$fn$;

CREATE OR REPLACE FUNCTION kinesync_standin.super_to_bool(v jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT CASE WHEN jsonb_typeof(v) = 'boolean' THEN (v #>> '{}')::boolean END
$fn$;

-- Type predicates.
CREATE OR REPLACE FUNCTION kinesync_standin.is_varchar(v jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $fn$ SELECT jsonb_typeof(v) = 'string' $fn$;
CREATE OR REPLACE FUNCTION kinesync_standin.is_char(v jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $fn$ SELECT jsonb_typeof(v) = 'string' AND octet_length(v #>> '{}') = 1 $fn$;
CREATE OR REPLACE FUNCTION kinesync_standin.is_bigint(v jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $fn$ SELECT COALESCE(jsonb_typeof(v) = 'number' AND kinesync_standin.super_to_int8(v) IS NOT NULL, false) $fn$;
CREATE OR REPLACE FUNCTION kinesync_standin.is_integer(v jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $fn$ SELECT COALESCE(jsonb_typeof(v) = 'number' AND kinesync_standin.super_to_int4(v) IS NOT NULL, false) $fn$;
CREATE OR REPLACE FUNCTION kinesync_standin.is_smallint(v jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $fn$ SELECT COALESCE(jsonb_typeof(v) = 'number' AND kinesync_standin.super_to_int2(v) IS NOT NULL, false) $fn$;
CREATE OR REPLACE FUNCTION kinesync_standin.is_decimal(v jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $fn$ SELECT jsonb_typeof(v) = 'number' AND position('e' in lower(v #>> '{}')) = 0 $fn$;
CREATE OR REPLACE FUNCTION kinesync_standin.is_float(v jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $fn$ SELECT jsonb_typeof(v) = 'number' AND position('e' in lower(v #>> '{}')) > 0 $fn$;
CREATE OR REPLACE FUNCTION kinesync_standin.is_boolean(v jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $fn$ SELECT jsonb_typeof(v) = 'boolean' $fn$;
CREATE OR REPLACE FUNCTION kinesync_standin.is_object(v jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $fn$ SELECT jsonb_typeof(v) = 'object' $fn$;
CREATE OR REPLACE FUNCTION kinesync_standin.is_array(v jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $fn$ SELECT jsonb_typeof(v) = 'array' $fn$;
CREATE OR REPLACE FUNCTION kinesync_standin.is_scalar(v jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $fn$ SELECT jsonb_typeof(v) NOT IN ('object', 'array') $fn$;

-- JSON_SERIALIZE errors when the text exceeds the VARCHAR limit
-- (JSON_SERIALIZE). PostgreSQL's text has more blanks than Redshift's:
-- the stand-in errors a little earlier.
CREATE OR REPLACE FUNCTION kinesync_standin.json_serialize(v jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
  IF octet_length(v::text) > 65535 THEN
    RAISE EXCEPTION 'JSON_SERIALIZE: result of % bytes exceeds the VARCHAR maximum of 65535 bytes', octet_length(v::text)
      USING ERRCODE = '22001';
  END IF;
  RETURN v::text;
END
$fn$;
CREATE OR REPLACE FUNCTION kinesync_standin.json_typeof(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$ SELECT jsonb_typeof(v) $fn$;

-- STRTOL(text, base): the text read as a number in base 2..36, as BIGINT.
CREATE OR REPLACE FUNCTION kinesync_standin.strtol(t text, base integer) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $fn$
SELECT sum((strpos('0123456789abcdefghijklmnopqrstuvwxyz', lower(d.c)) - 1)::numeric
           * power(base::numeric, length(t) - d.i))::bigint
FROM unnest(string_to_array(t, NULL)) WITH ORDINALITY AS d(c, i) $fn$;

CREATE OR REPLACE FUNCTION kinesync_standin.from_hex(t text) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $fn$ SELECT decode(t, 'hex') $fn$;
-- TO_VARBYTE(string, format): hex (odd lengths get a leading 0), binary,
-- utf8 or base64 (r_TO_VARBYTE).
CREATE OR REPLACE FUNCTION kinesync_standin.to_varbyte(t text, format text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
  CASE lower(format)
    WHEN 'hex' THEN
      RETURN decode(CASE WHEN length(t) % 2 = 1 THEN '0' || t ELSE t END, 'hex');
    WHEN 'utf8', 'utf-8', 'utf_8' THEN RETURN convert_to(t, 'UTF8');
    WHEN 'base64' THEN RETURN decode(t, 'base64');
    WHEN 'binary' THEN
      RETURN (SELECT decode(string_agg(lpad(to_hex(substr(t, i, 8)::bit(8)::int), 2, '0'), '' ORDER BY i), 'hex')
                FROM generate_series(1, length(t), 8) AS i);
    ELSE RAISE EXCEPTION 'TO_VARBYTE: invalid format %', format USING ERRCODE = '22023';
  END CASE;
END
$fn$;
CREATE OR REPLACE FUNCTION kinesync_standin.to_hex(b bytea) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$ SELECT encode(b, 'hex') $fn$;
CREATE OR REPLACE FUNCTION kinesync_standin.to_hex(i bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$ SELECT pg_catalog.to_hex(i) $fn$;
CREATE OR REPLACE FUNCTION kinesync_standin.to_hex(i integer) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$ SELECT pg_catalog.to_hex(i) $fn$;

CREATE OR REPLACE FUNCTION kinesync_standin.json_extract_path_text(t text, VARIADIC path text[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$ SELECT t::json #>> path $fn$;
"#;

/// Installs (or upgrades) the catalog in the database `client` is connected to.
pub async fn install(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INSTALL_LOCK])
        .await?;
    let has_version: bool = tx
        .query_one(
            "SELECT to_regclass('kinesync_standin.version') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    let installed: Option<i32> = if has_version {
        tx.query_one("SELECT max(version) FROM kinesync_standin.version", &[])
            .await?
            .get(0)
    } else {
        None
    };
    if installed != Some(CATALOG_VERSION) {
        tx.batch_execute(DDL).await?;
        tx.execute("DELETE FROM kinesync_standin.version", &[])
            .await?;
        tx.execute(
            "INSERT INTO kinesync_standin.version (version) VALUES ($1)",
            &[&CATALOG_VERSION],
        )
        .await?;
    }
    tx.commit().await
}
