use super::*;

fn ctx() -> Context {
    Context {
        kinesis_schemas: ["kinesync_stream".to_string()].into_iter().collect(),
        super_columns: ["payload", "doc"].iter().map(|s| s.to_string()).collect(),
        schemas: ["mirror", "public", "kinesync_stream"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        streaming_views: [("mirror".to_string(), "kinesync_events".to_string())]
            .into_iter()
            .collect(),
        procedure_schemas: Default::default(),
        current_schema: "public".into(),
        params: None,
        in_batch: false,
    }
}

fn one(sql: &str, session: &mut Session, ctx: &Context) -> Result<Action, RedshiftError> {
    let stmts = split_statements(sql)?;
    assert_eq!(stmts.len(), 1, "expected one statement in {sql}");
    rewrite_statement(&stmts[0], session, ctx)
}

fn sql(sql: &str) -> String {
    sql_with(sql, &mut Session::default(), &ctx())
}

fn sql_with(s: &str, session: &mut Session, ctx: &Context) -> String {
    match one(s, session, ctx) {
        Ok(Action::Sql(out)) => out,
        other => panic!("expected Sql for {s}, got {other:?}"),
    }
}

fn err(s: &str, ctx: &Context) -> String {
    match one(s, &mut Session::default(), ctx) {
        Err(e) => e.to_string(),
        Ok(a) => panic!("expected error for {s}, got {a:?}"),
    }
}

#[test]
fn external_schema_kinesis() {
    let a = one(
        "CREATE EXTERNAL SCHEMA IF NOT EXISTS \"kinesync_stream\" FROM KINESIS IAM_ROLE 'arn:aws:iam::000000000000:role/kinesync-local'",
        &mut Session::default(),
        &Context::default(),
    )
    .expect("ok");
    assert_eq!(
        a,
        Action::CreateExternalSchema {
            schema: "kinesync_stream".into(),
            if_not_exists: true,
            iam_role: "arn:aws:iam::000000000000:role/kinesync-local".into()
        }
    );
    let a = one(
        "create external schema ks from kinesis iam_role default",
        &mut Session::default(),
        &Context::default(),
    )
    .expect("ok");
    assert!(
        matches!(a, Action::CreateExternalSchema { if_not_exists: false, ref iam_role, .. } if iam_role == "default")
    );
    let e = err(
        "create external schema x from data catalog database 'd' iam_role default",
        &Context::default(),
    );
    assert!(e.contains("only FROM KINESIS"), "{e}");
    let e = err("create external schema x from kinesis", &Context::default());
    assert!(e.contains("IAM_ROLE"), "{e}");
}

#[test]
fn streaming_view_kinesync_shape() {
    let a = one(
        r#"CREATE MATERIALIZED VIEW "mirror"."kinesync_events" SORTKEY (refresh_time) AUTO REFRESH NO AS
SELECT approximate_arrival_timestamp, refresh_time, shard_id, sequence_number, partition_key,
       JSON_PARSE(kinesis_data) AS payload
FROM "kinesync_stream"."kinesync-cdc""#,
        &mut Session::default(),
        &ctx(),
    )
    .expect("ok");
    let Action::CreateStreamingView {
        schema,
        name,
        external_schema,
        stream,
        select_sql,
        auto_refresh,
        sort_key,
    } = a
    else {
        panic!("not streaming: {a:?}")
    };
    assert_eq!(
        sort_key,
        vec!["refresh_time".to_owned()],
        "the sort key becomes an index"
    );
    assert_eq!(schema, "mirror");
    assert_eq!(name, "kinesync_events");
    assert_eq!(external_schema, "kinesync_stream");
    assert_eq!(stream, "kinesync-cdc");
    assert!(!auto_refresh);
    assert!(
        select_sql.contains("kinesync_standin.json_parse(kinesis_data) AS payload"),
        "{select_sql}"
    );
    assert!(
        select_sql.ends_with("FROM pg_temp.kinesync_standin_staging AS \"kinesync-cdc\""),
        "{select_sql}"
    );
}

#[test]
fn streaming_view_with_alias_where_and_attrs() {
    let a = one(
        "CREATE MATERIALIZED VIEW ev DISTKEY(6) SORTKEY(1) AUTO REFRESH YES AS SELECT s.shard_id, JSON_PARSE(s.kinesis_data) p FROM kinesync_stream.cdc AS s WHERE CAN_JSON_PARSE(s.kinesis_data)",
        &mut Session::default(),
        &ctx(),
    )
    .expect("ok");
    let Action::CreateStreamingView {
        schema,
        select_sql,
        auto_refresh,
        ..
    } = a
    else {
        panic!("{a:?}")
    };
    assert_eq!(schema, "public");
    assert!(auto_refresh);
    assert!(
        select_sql.contains("FROM pg_temp.kinesync_standin_staging AS s WHERE kinesync_standin.can_json_parse(s.kinesis_data)"),
        "{select_sql}"
    );
}

#[test]
fn streaming_view_rejections() {
    let c = ctx();
    let e = err("CREATE MATERIALIZED VIEW v AS SELECT a.shard_id FROM kinesync_stream.s1 a JOIN public.t b ON a.shard_id = b.x", &c);
    assert!(e.contains("JOIN"), "{e}");
    let e = err(
        "CREATE MATERIALIZED VIEW v AS SELECT a.shard_id FROM kinesync_stream.s1 a, public.t b",
        &c,
    );
    assert!(e.contains("JOIN"), "{e}");
    let e = err("CREATE MATERIALIZED VIEW v AS SELECT 1 FROM kinesync_stream.s1 UNION ALL SELECT 1 FROM kinesync_stream.s2", &c);
    assert!(e.contains("only one Kinesis stream"), "{e}");
    let e = err(
        "CREATE MATERIALIZED VIEW v AS SELECT shard_id, GETDATE() AS t FROM kinesync_stream.s1",
        &c,
    );
    assert!(e.contains("GETDATE") && e.contains("incrementally"), "{e}");
    let e = err("CREATE MATERIALIZED VIEW v AS SELECT shard_id, ROW_NUMBER() OVER (PARTITION BY shard_id) FROM kinesync_stream.s1", &c);
    assert!(e.contains("window"), "{e}");
    let e = err(
        "CREATE MATERIALIZED VIEW v AS SELECT x.shard_id FROM (SELECT * FROM kinesync_stream.s1) x",
        &c,
    );
    assert!(e.contains("subquer"), "{e}");
    let e = err("CREATE MATERIALIZED VIEW v AS SELECT shard_id FROM kinesync_stream.s1 WHERE current_timestamp > refresh_time", &c);
    assert!(e.contains("CURRENT_TIMESTAMP"), "{e}");
}

#[test]
fn ordinary_materialized_view_passes_through() {
    let out = sql(
        "CREATE MATERIALIZED VIEW public.mv BACKUP NO AUTO REFRESH NO AS SELECT id FROM public.t",
    );
    assert_eq!(
        out,
        "CREATE MATERIALIZED VIEW \"public\".\"mv\" AS SELECT id FROM public.t"
    );
}

#[test]
fn refresh_streaming_and_batch() {
    let c = ctx();
    let a = one(
        "REFRESH MATERIALIZED VIEW \"mirror\".\"kinesync_events\"",
        &mut Session::default(),
        &c,
    )
    .expect("ok");
    assert_eq!(
        a,
        Action::RefreshStreamingView {
            schema: "mirror".into(),
            name: "kinesync_events".into()
        }
    );
    let mut b = c.clone();
    b.in_batch = true;
    let e = err("REFRESH MATERIALIZED VIEW mirror.kinesync_events", &b);
    assert!(e.contains("own statement"), "{e}");
    // non-streaming refresh passes, even in a batch
    let out = sql_with(
        "REFRESH MATERIALIZED VIEW public.other",
        &mut Session::default(),
        &b,
    );
    assert_eq!(out, "REFRESH MATERIALIZED VIEW public.other");
}

#[test]
fn truncate_in_batch() {
    let mut b = ctx();
    b.in_batch = true;
    let e = err("TRUNCATE mirror.orders", &b);
    assert!(
        e.contains("TRUNCATE cannot run inside a transaction block"),
        "{e}"
    );
    assert_eq!(sql("TRUNCATE mirror.orders"), "TRUNCATE mirror.orders");
}

#[test]
fn merge_source() {
    let c = ctx();
    let ok = sql("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)");
    assert!(ok.starts_with("MERGE INTO t USING s"));
    let e = err(
        "MERGE INTO t USING (SELECT 1 AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE",
        &c,
    );
    assert!(e.contains("MERGE source must be a table"), "{e}");
    let e = err(
        "WITH s AS (SELECT 1 AS id) MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
        &c,
    );
    assert!(e.contains("MERGE source must be a table"), "{e}");
}

#[test]
fn super_navigation_and_lax_casts() {
    let mut s = Session {
        case_sensitive_super_attribute: true,
        ..Session::default()
    };
    let c = ctx();
    let out = sql_with(
        r#"SELECT e.payload."source"."commit_lsn"::bigint AS _lsn, e.payload."after"."Name"::varchar AS "Name", e.payload."after"."amount"::varchar::decimal(12,2) AS "amount", e.payload."after"."doc" AS "doc" FROM t AS e"#,
        &mut s,
        &c,
    );
    assert!(out.contains("(kinesync_standin.super_to_int8(kinesync_standin.super_nav(e.payload, ARRAY['source', 'commit_lsn']::text[]))) AS _lsn"), "{out}");
    // Only enable_case_sensitive_identifier keeps a quoted name's case.
    assert!(out.contains("(kinesync_standin.super_to_varchar(kinesync_standin.super_nav(e.payload, ARRAY['after', 'name']::text[]))) AS \"name\""), "{out}");
    assert!(out.contains("(kinesync_standin.super_to_varchar(kinesync_standin.super_nav(e.payload, ARRAY['after', 'amount']::text[])))::decimal(12,2) AS \"amount\""), "{out}");
    assert!(
        out.contains(
            "kinesync_standin.super_nav(e.payload, ARRAY['after', 'doc']::text[]) AS \"doc\""
        ),
        "{out}"
    );

    // without the SET: attribute names fold to lower case
    let out = sql(r#"SELECT payload."after"."Name"::varchar FROM t"#);
    assert!(out.contains("ARRAY['after', 'name']"), "{out}");

    // other casts
    let out = sql(
        r#"SELECT payload.a::int, payload.b::smallint, payload.c::double precision, payload.d::real, payload.e::decimal(10,2), payload.f::boolean, payload.g::varchar(6), payload.h::timestamp, payload.i[0]::text, payload.j::super FROM t"#,
    );
    for f in [
        "super_to_int4(kinesync_standin.super_nav(payload, ARRAY['a']",
        "super_to_int2(kinesync_standin.super_nav(payload, ARRAY['b']",
        "super_to_float8(kinesync_standin.super_nav(payload, ARRAY['c']::text[])))",
        "super_to_float8(kinesync_standin.super_nav(payload, ARRAY['d']::text[]))::real)",
        "super_to_numeric(kinesync_standin.super_nav(payload, ARRAY['e']::text[]))::numeric(10,2))",
        "super_to_bool(kinesync_standin.super_nav(payload, ARRAY['f']",
        "super_to_varchar(kinesync_standin.super_nav(payload, ARRAY['g']::text[]))::varchar(6))",
        "super_to_varchar(kinesync_standin.super_nav(payload, ARRAY['h']::text[]))::kinesync_standin.rs_timestamp)",
        "super_to_varchar(kinesync_standin.super_nav(payload, ARRAY['i', '0']::text[])))",
        "(kinesync_standin.super_nav(payload, ARRAY['j']::text[])) FROM",
    ] {
        assert!(out.contains(f), "missing {f} in {out}");
    }
    let out = sql(r#"SELECT CAST(payload."x" AS bigint) FROM t"#);
    assert!(
        out.contains("SELECT (kinesync_standin.super_to_int8(kinesync_standin.super_nav(payload, ARRAY['x']::text[]))) FROM"),
        "{out}"
    );
}

#[test]
fn qualified_columns_are_not_navigation() {
    let out = sql(
        r#"DELETE FROM "mirror"."orders" USING kinesync_latest_1 WHERE "mirror"."orders"."id" = kinesync_latest_1."id""#,
    );
    assert_eq!(
        out,
        r#"DELETE FROM "mirror"."orders" USING kinesync_latest_1 WHERE "mirror"."orders"."id" = kinesync_latest_1."id""#
    );
    let out = sql(r#"SELECT e.payload, c.doc, "mirror"."orders"."doc" FROM x"#);
    assert_eq!(
        out,
        r#"SELECT e.payload, c.doc, "mirror"."orders"."doc" FROM x"#
    );
}

#[test]
fn literals_and_comments_untouched() {
    let out = sql(
        "SELECT 'payload.\"a\" GETDATE() SUPER', \"Col\" -- payload.x SUPER\n FROM t /* \"X\" */",
    );
    assert_eq!(
        out,
        "SELECT 'payload.\"a\" GETDATE() SUPER', \"col\" -- payload.x SUPER\n FROM t /* \"X\" */"
    );
}

#[test]
fn identifier_case_folding() {
    assert_eq!(
        sql("CREATE TABLE \"MyTab\" (\"Id\" BIGINT)"),
        "CREATE TABLE \"mytab\" (\"id\" BIGINT)"
    );
    let mut s = Session::default();
    let a = one(
        "SET enable_case_sensitive_identifier TO true",
        &mut s,
        &ctx(),
    )
    .expect("ok");
    assert!(matches!(a, Action::Set { .. }));
    assert!(s.case_sensitive_identifier);
    assert_eq!(
        sql_with("SELECT \"Id\" FROM \"MyTab\"", &mut s, &ctx()),
        "SELECT \"Id\" FROM \"MyTab\""
    );
    let mut s = Session::default();
    one(
        "SET enable_case_sensitive_super_attribute TO true",
        &mut s,
        &ctx(),
    )
    .expect("ok");
    assert!(s.case_sensitive_super_attribute);
    one(
        "RESET enable_case_sensitive_super_attribute",
        &mut s,
        &ctx(),
    )
    .expect("ok");
    assert!(!s.case_sensitive_super_attribute);
    // unknown setting passes to PG
    assert_eq!(sql("SET datestyle TO ISO"), "SET datestyle TO ISO");
}

#[test]
fn ddl_types_and_attributes() {
    let out = sql(
        r#"CREATE TABLE IF NOT EXISTS "mirror"."orders" ("id" BIGINT ENCODE az64, "doc" SUPER, "data" VARBYTE(1024000), "name" VARCHAR(MAX), "code" VARCHAR, "t" TEXT, "c" CHAR(10), "amount" DECIMAL(38,2), _kinesync_op_ts TIMESTAMP, PRIMARY KEY ("id")) DISTSTYLE KEY DISTKEY("id") COMPOUND SORTKEY("id", _kinesync_op_ts) BACKUP NO"#,
    );
    assert!(out.contains("\"id\" BIGINT ,"), "{out}");
    assert!(
        out.contains("\"name\" varchar(65535) CHECK (octet_length(\"name\") <= 65535)"),
        "{out}"
    );
    assert!(out.contains("\"c\" char(10),"), "{out}");
    assert!(out.contains("\"doc\" jsonb"), "{out}");
    assert!(out.contains("\"data\" bytea"), "{out}");
    assert!(out.contains("\"name\" varchar(65535)"), "{out}");
    assert!(out.contains("\"code\" varchar(256)"), "{out}");
    assert!(out.contains("\"t\" varchar(256)"), "{out}");
    assert!(out.contains("\"c\" char(10)"), "{out}");
    assert!(
        out.contains("DECIMAL(38,2)") || out.contains("decimal(38,2)"),
        "{out}"
    );
    for gone in [
        "DISTSTYLE",
        "DISTKEY",
        "SORTKEY",
        "BACKUP",
        "ENCODE",
        "COMPOUND",
    ] {
        assert!(!out.contains(gone), "{gone} left in {out}");
    }
    let e = err("CREATE TABLE t (a VARCHAR(65536))", &ctx());
    assert!(e.contains("cannot exceed 65535"), "{e}");
    let e = err("CREATE TABLE t (a DECIMAL(39,2))", &ctx());
    assert!(e.contains("precision 39"), "{e}");
    let e = err("SELECT 'x'::varchar(70000)", &ctx());
    assert!(e.contains("cannot exceed 65535"), "{e}");
    let out = sql(
        "CREATE TEMP TABLE x DISTKEY(a) AS SELECT a, 'x'::varchar AS b, encode(c, 'hex') FROM t",
    );
    assert_eq!(
        out,
        "CREATE TEMP TABLE x  AS SELECT a, 'x'::varchar AS b, encode(c, 'hex') FROM t"
    );
    let out = sql("SELECT x::super, y::varbyte, CAST(z AS VARCHAR(MAX)) FROM t");
    assert_eq!(
        out,
        "SELECT x::jsonb, y::bytea, CAST(z AS varchar(65535)) FROM t"
    );
    let a = one(
        "ALTER TABLE t ALTER DISTKEY id",
        &mut Session::default(),
        &ctx(),
    )
    .expect("ok");
    assert!(matches!(a, Action::Noop { .. }));
}

#[test]
fn functions() {
    let out = sql("SELECT GETDATE(), SYSDATE, LEN(x), FROM_HEX('6162'), TO_HEX(b), NVL(a, 1), JSON_SERIALIZE(payload), JSON_TYPEOF(doc), IS_VARCHAR(doc), can_json_parse('x') FROM svv_mv_info");
    assert_eq!(out, "SELECT (date_trunc('second', clock_timestamp())::timestamp), (now()::timestamp), length(x), kinesync_standin.from_hex('6162'), kinesync_standin.to_hex(b), coalesce(a, 1), kinesync_standin.json_serialize(payload), kinesync_standin.json_typeof(doc), kinesync_standin.is_varchar(doc), kinesync_standin.can_json_parse('x') FROM kinesync_standin.svv_mv_info");
    let e = err(
        "SELECT a FROM t QUALIFY ROW_NUMBER() OVER (ORDER BY a) = 1",
        &ctx(),
    );
    assert!(e.contains("QUALIFY"), "{e}");
}

#[test]
fn direct_stream_select_rejected() {
    let e = err("SELECT * FROM kinesync_stream.\"kinesync-cdc\"", &ctx());
    assert!(e.contains("streaming materialized view"), "{e}");
}

#[test]
fn parameters() {
    let mut c = ctx();
    c.params = Some(
        [("id".to_string(), "O'Brien".to_string())]
            .into_iter()
            .collect(),
    );
    let out = sql_with(
        "SELECT * FROM t WHERE name = :id AND x::int = 1",
        &mut Session::default(),
        &c,
    );
    assert_eq!(
        out,
        "SELECT * FROM t WHERE name = 'O''Brien' AND x::int = 1"
    );
    let e = match one("SELECT :nope", &mut Session::default(), &c) {
        Err(e) => e.to_string(),
        Ok(a) => panic!("{a:?}"),
    };
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn kinesync_batch_statements_translate() {
    let mut s = Session::default();
    let c = ctx();
    one(
        "SET enable_case_sensitive_super_attribute TO true",
        &mut s,
        &c,
    )
    .expect("set");
    one("SET enable_case_sensitive_identifier TO true", &mut s, &c).expect("set");
    let stmts = [
        r#"CREATE TEMP TABLE kinesync_new_events AS SELECT e.refresh_time, e.payload FROM "mirror"."kinesync_events" AS e WHERE e.refresh_time > (SELECT c.watermark FROM "mirror"."kinesync_checkpoint" AS c WHERE c.events_view = 'kinesync_events')"#,
        r#"CREATE TEMP TABLE kinesync_changes_1 AS
SELECT 'upsert'::varchar(6) AS _kinesync_action, e.payload."source"."commit_lsn"::bigint AS _kinesync_commit_lsn,
       e.payload."after"."id"::bigint AS "id", e.payload."after"."Name"::varchar AS "Name",
       e.payload."after"."amount"::varchar::decimal(12,2) AS "amount", e.payload."after"."doc" AS "doc"
FROM kinesync_new_events AS e
WHERE e.payload."source"."schema"::varchar = 'public' AND e.payload."source"."table"::varchar = 'orders' AND e.payload."op"::varchar IN ('c','u','r')"#,
        r#"INSERT INTO "mirror"."orders" SELECT c."id", TO_VARBYTE(c."data", 'hex'), TIMESTAMP 'epoch' + (c._ts_ms / 1000) * INTERVAL '1 second' FROM kinesync_changes_1 AS c"#,
        r#"SELECT * FROM (SELECT c.*, ROW_NUMBER() OVER (PARTITION BY "id" ORDER BY _kinesync_commit_lsn DESC) AS _kinesync_rank FROM kinesync_changes_1 AS c) AS ranked WHERE _kinesync_rank = 1"#,
    ];
    for st in stmts {
        let out = sql_with(st, &mut s, &c);
        assert!(
            !out.contains("payload.\""),
            "untranslated navigation in {out}"
        );
    }
    let out = sql_with(stmts[1], &mut s, &c);
    assert!(out.contains("ARRAY['after', 'Name']"), "{out}");
}

#[test]
fn super_columns_are_never_distribution_or_sort_keys() {
    for bad in [
        "CREATE TABLE t (id BIGINT, doc SUPER) DISTKEY(doc)",
        "CREATE TABLE t (id BIGINT, \"doc\" SUPER) COMPOUND SORTKEY(id, \"doc\")",
        "CREATE TABLE t (id BIGINT, doc SUPER SORTKEY)",
    ] {
        let e = err(bad, &ctx());
        assert!(
            e.contains("SUPER columns cannot be a distribution or sort key"),
            "{bad}: {e}"
        );
    }
    let ok =
        sql("CREATE TABLE t (id BIGINT, doc SUPER) DISTSTYLE KEY DISTKEY(id) COMPOUND SORTKEY(id)");
    assert!(
        ok.contains("doc\" jsonb") || ok.contains("doc jsonb"),
        "{ok}"
    );
}

#[test]
fn drop_schema_of_procedures_needs_cascade() {
    let mut c = ctx();
    c.procedure_schemas.insert("mirror".into());
    for sql in [
        "DROP SCHEMA mirror",
        "DROP SCHEMA IF EXISTS public, mirror RESTRICT",
    ] {
        assert!(err(sql, &c).contains("cannot drop schema mirror"), "{sql}");
    }
    let a = one(
        "DROP SCHEMA public, mirror CASCADE",
        &mut Session::default(),
        &c,
    )
    .expect("ok");
    assert!(
        matches!(a, Action::DropSchema { ref schemas, .. } if schemas == &["public", "mirror"]),
        "{a:?}"
    );
    let a = one("DROP SCHEMA kinesync_stream", &mut Session::default(), &c).expect("ok");
    assert!(matches!(a, Action::DropSchema { .. }), "{a:?}");
    assert_eq!(sql("DROP SCHEMA public"), "DROP SCHEMA public");
}
