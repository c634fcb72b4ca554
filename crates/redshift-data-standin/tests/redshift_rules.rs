//! The documented Redshift rules the stand-in enforces (issue 15), one test
//! each, through the real aws-sdk-redshiftdata client. Each names the page
//! of the Amazon Redshift Database Developer Guide it follows; the list is
//! in docs/redshift-standin.md. Needs STANDIN_TEST_PG_URL and
//! STANDIN_TEST_KINESIS_URL (fails without).

mod common;

use aws_sdk_redshiftdata::types::StatusString;
use common::{start, unique};

/// r_FROM_HEX: "The format must be a literal value"; r_TO_VARBYTE takes any
/// expression.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_hex_takes_only_a_literal_and_to_varbyte_any_expression() {
    let s = start().await;
    assert_eq!(s.scalar("SELECT TO_HEX(FROM_HEX('cafe'))").await, "cafe");
    s.ok("CREATE TABLE h (x VARCHAR(10))").await;
    s.ok("INSERT INTO h VALUES ('c0ffee')").await;
    let e = s.fails("SELECT FROM_HEX(x) FROM h").await;
    assert!(
        e.contains("FROM_HEX: the argument must be a literal"),
        "{e}"
    );
    assert_eq!(
        s.query("SELECT TO_HEX(TO_VARBYTE(x, 'hex')), TO_HEX(TO_VARBYTE('4', 'hex')), TO_HEX(TO_VARBYTE('a', 'utf8')) FROM h")
            .await[0],
        ["c0ffee", "04", "61"]
    );
}

/// super-configurations, r_names: enable_case_sensitive_super_attribute
/// covers non-delimited attribute names; a delimited one keeps its case only
/// with enable_case_sensitive_identifier; only ASCII letters fold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quoted_super_attributes_keep_case_only_with_case_sensitive_identifier() {
    let s = start().await;
    s.ok("CREATE TABLE ev (payload SUPER)").await;
    s.ok(r#"INSERT INTO ev SELECT JSON_PARSE('{"LineNo": 7, "lineno": 1, "Äb": 3, "äb": 4}')"#)
        .await;
    let run = |sets: &'static [&'static str]| {
        let s = &s;
        async move {
            let mut sqls: Vec<&str> = sets.to_vec();
            sqls.push(r#"SELECT e.payload."LineNo"::int, e.payload.LineNo::int, e.payload."Äb"::int FROM ev AS e"#);
            let id = s.submit_batch(&sqls).await;
            let d = s.wait(&id).await;
            assert_eq!(d.status(), Some(&StatusString::Finished), "{d:?}");
            let rows = s.rows_of(&format!("{id}:{}", sqls.len())).await;
            rows[0].iter().map(common::show).collect::<Vec<_>>()
        }
    };
    // Only the super attribute setting: the quoted name folds to "lineno".
    assert_eq!(
        run(&["SET enable_case_sensitive_super_attribute TO true"]).await,
        ["1", "7", "3"]
    );
    // Both settings: the quoted name keeps its case.
    assert_eq!(
        run(&[
            "SET enable_case_sensitive_super_attribute TO true",
            "SET enable_case_sensitive_identifier TO true"
        ])
        .await,
        ["7", "7", "3"]
    );
    // Neither: everything folds, but "Ä" is not an ASCII letter.
    assert_eq!(run(&[]).await, ["1", "1", "3"]);
    // Identifiers: only ASCII letters fold.
    s.ok(r#"CREATE TABLE "Ärger" ("Über" int)"#).await;
    s.ok(r#"INSERT INTO "Ärger" VALUES (1)"#).await;
    let e = s.fails(r#"SELECT "über" FROM "Ärger""#).await;
    assert!(e.contains("does not exist"), "{e}");
}

/// r_Numeric_types201: precision 1..38, scale <= precision, scale <= 37.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decimal_scale_must_fit_the_precision_and_37() {
    let s = start().await;
    s.ok("CREATE TABLE d1 (a DECIMAL(38,37), b DECIMAL(5,5))")
        .await;
    let e = s.fails("CREATE TABLE d2 (a DECIMAL(38,38))").await;
    assert!(e.contains("numeric scale 38"), "{e}");
    let e = s.fails("CREATE TABLE d3 (a DECIMAL(3,5))").await;
    assert!(e.contains("numeric scale 5"), "{e}");
    let e = s.fails("SELECT '1'::varchar::decimal(3,5)").await;
    assert!(e.contains("numeric scale 5"), "{e}");
}

/// r_VARBYTE_type: kinesis_data is VARBYTE, at most 1,024,000 bytes; a
/// longer record is skipped and logged, the rest is ingested.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_records_over_1024000_bytes_are_skipped_and_logged() {
    let s = start().await;
    let stream = unique("varbyte").replace('_', "-");
    s.create_stream(&stream, 1).await;
    let record = |bytes: usize| {
        let head = r#"{"t":""#;
        format!("{head}{}\"}}", "x".repeat(bytes - head.len() - 2)).into_bytes()
    };
    s.put(&stream, "k", &record(1_024_000)).await;
    s.put(&stream, "k", &record(1_024_001)).await;
    s.ok("CREATE EXTERNAL SCHEMA ks FROM KINESIS IAM_ROLE default")
        .await;
    s.ok(&format!(
        r#"CREATE MATERIALIZED VIEW ev AS SELECT kinesis_data FROM ks."{stream}""#
    ))
    .await;
    s.ok("REFRESH MATERIALIZED VIEW ev").await;
    assert_eq!(
        s.query("SELECT count(*), max(octet_length(kinesis_data)) FROM ev")
            .await[0],
        ["1", "1024000"]
    );
    assert_eq!(
        s.scalar("SELECT record_length FROM sys_stream_scan_errors")
            .await,
        "1024001"
    );
    s.delete_stream(&stream).await;
}

/// JSON_SERIALIZE errors when its result exceeds the VARCHAR limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_serialize_fails_above_the_varchar_limit() {
    let s = start().await;
    s.ok("CREATE TABLE j (doc SUPER)").await;
    s.ok(r#"INSERT INTO j SELECT JSON_PARSE('["' || repeat('x', 40000) || '", "' || repeat('y', 40000) || '"]')"#)
        .await;
    let e = s.fails("SELECT JSON_SERIALIZE(doc) FROM j").await;
    assert!(e.contains("JSON_SERIALIZE"), "{e}");
    // The type test kinesync uses instead works on any size.
    assert_eq!(
        s.scalar("SELECT COALESCE(IS_VARCHAR(doc) AND doc::varchar = 'x', false) FROM j")
            .await,
        "false"
    );
}

/// super-configurations: a JSON null inside SUPER is a SUPER null value,
/// not (necessarily) SQL NULL; IS_OBJECT tells an object apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_null_in_super_is_not_sql_null() {
    let s = start().await;
    s.ok("CREATE TABLE ev (payload SUPER)").await;
    s.ok(r#"INSERT INTO ev SELECT JSON_PARSE('{"before": null, "after": {"id": 1}}')"#)
        .await;
    assert_eq!(
        s.query(r#"SELECT e.payload."before" IS NOT NULL, IS_OBJECT(e.payload."before"), IS_OBJECT(e.payload."after"), e.payload."missing" IS NULL, JSON_TYPEOF(e.payload."before") FROM ev AS e"#)
            .await[0],
        ["true", "false", "true", "true", "null"]
    );
}

/// r_Date_and_time_literals, r_Numeric_types201: BC dates, years past 9999,
/// NaN, infinities and floats outside the documented ranges are not
/// documented input forms; casts to them fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn casts_reject_undocumented_datetime_and_float_forms() {
    let s = start().await;
    for bad in [
        "SELECT '0044-03-15 BC'::varchar::date",
        "SELECT '10000-01-01'::varchar::date",
        "SELECT 'infinity'::varchar::timestamp",
        "SELECT '10000-01-01T00:00:00Z'::varchar::timestamptz",
        "SELECT 'NaN'::varchar::real",
        "SELECT 'Infinity'::varchar::double precision",
        "SELECT '5e-324'::varchar::float8",
        "SELECT '1e38'::varchar::real",
    ] {
        let e = s.fails(bad).await;
        assert!(e.contains("violates check constraint"), "{bad}: {e}");
    }
    assert_eq!(
        s.query("SELECT '2024-02-29'::varchar::date, '1.5'::varchar::real, '0'::varchar::float8")
            .await[0],
        ["2024-02-29", "1.5", "0"]
    );
}

/// r_Datetime_types: TIMETZ values are stored in UTC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timetz_values_are_stored_in_utc() {
    let s = start().await;
    s.ok("CREATE TABLE t (v TIMETZ)").await;
    s.ok("INSERT INTO t SELECT '13:45:00+05:30'::varchar::timetz")
        .await;
    assert_eq!(s.scalar("SELECT v FROM t").await, "08:15:00+00");
}

/// r_CREATE_TABLE_NEW, r_names: names longer than 127 bytes are truncated
/// by Redshift; the stand-in refuses them (stricter) so no collision hides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_over_127_bytes_are_refused() {
    let s = start().await;
    let long = "t".repeat(128);
    let e = s.fails(&format!(r#"CREATE TABLE "{long}" (a int)"#)).await;
    assert!(e.contains("longer than Redshift's 127"), "{e}");
    // 64..127 bytes: whole names, as on Redshift (PostgreSQL alone would
    // truncate both to one 63-byte name).
    let first = format!("{}_first", "n".repeat(100));
    let second = format!("{}_second", "n".repeat(100));
    s.ok(&format!(r#"CREATE TABLE "{first}" (a int)"#)).await;
    s.ok(&format!(r#"CREATE TABLE "{second}" (b int)"#)).await;
    s.ok(&format!(r#"INSERT INTO "{second}" (b) VALUES (2)"#))
        .await;
    assert_eq!(s.scalar(&format!(r#"SELECT b FROM "{second}""#)).await, "2");
    let mut names = s
        .query("SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'nnn%'")
        .await
        .concat();
    names.sort();
    assert_eq!(names, [first, second]);
}

/// Data API: query strings are limited to 100 KB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_over_100_kb_are_refused() {
    let s = start().await;
    let sql = format!("SELECT '{}'", "x".repeat(100_000));
    let err =
        s.rs.execute_statement()
            .sql(sql)
            .database(&s.db)
            .workgroup_name("wg")
            .send()
            .await
            .expect_err("too long");
    assert!(
        format!("{err:?}").contains("maximum of 100000 bytes"),
        "{err:?}"
    );
}

/// Leader-node-only catalog views cannot be combined with other relations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_node_only_views_stand_alone() {
    let s = start().await;
    assert_eq!(s.scalar("SELECT COUNT(*) FROM svv_mv_info").await, "0");
    let e = s
        .fails("SELECT (SELECT COUNT(*) FROM svv_mv_info), (SELECT COUNT(*) FROM information_schema.tables)")
        .await;
    assert!(e.contains("leader-node-only"), "{e}");
    let e = s
        .fails(
            "SELECT 1 FROM svv_external_schemas e JOIN pg_namespace n ON n.nspname = e.schemaname",
        )
        .await;
    assert!(e.contains("leader-node-only"), "{e}");
}

/// r_UPDATE: UPDATE's FROM may not outer-join the target; an outer join in
/// a derived table there is undocumented, refused too (stricter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_from_refuses_outer_joins() {
    let s = start().await;
    s.ok("CREATE TABLE t (id int, v int)").await;
    s.ok("CREATE TABLE u (id int, v int)").await;
    s.ok("INSERT INTO t VALUES (1, 0)").await;
    s.ok("INSERT INTO u VALUES (1, 5)").await;
    let e = s
        .fails("UPDATE t SET v = p.v FROM (SELECT u.id, u.v FROM u LEFT JOIN t AS x ON x.id = u.id) AS p WHERE t.id = p.id")
        .await;
    assert!(e.contains("outer join"), "{e}");
    s.ok("CREATE TEMP TABLE p AS SELECT u.id, u.v FROM u LEFT JOIN t AS x ON x.id = u.id")
        .await;
    s.ok("UPDATE t SET v = u.v FROM u WHERE t.id = u.id").await;
    assert_eq!(s.scalar("SELECT v FROM t").await, "5");
}

/// limitations-super: "You can't define SUPER columns as either a
/// distribution or sort key"; r_CREATE_TABLE_NEW / r_CREATE_TABLE_AS: the
/// table attributes DISTSTYLE, DISTKEY(col), [COMPOUND] SORTKEY(cols) follow
/// the column list, and come before AS in CREATE TABLE AS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_and_sort_keys_take_no_super_column_and_their_documented_places() {
    let s = start().await;
    let e = s
        .fails("CREATE TABLE k1 (id BIGINT, doc SUPER) DISTSTYLE KEY DISTKEY(doc)")
        .await;
    assert!(
        e.contains("SUPER columns cannot be a distribution or sort key"),
        "{e}"
    );
    let e = s
        .fails("CREATE TABLE k2 (id BIGINT, doc SUPER) COMPOUND SORTKEY(id, doc)")
        .await;
    assert!(
        e.contains("SUPER columns cannot be a distribution or sort key"),
        "{e}"
    );
    s.ok("CREATE TABLE k3 (id BIGINT, doc SUPER) DISTSTYLE KEY DISTKEY(id) COMPOUND SORTKEY(id)")
        .await;
    s.ok("CREATE TABLE k4 (id BIGINT) DISTSTYLE AUTO SORTKEY AUTO")
        .await;
    s.ok("CREATE TEMP TABLE k5 DISTKEY(id) AS SELECT id FROM k3")
        .await;
    // Table attributes after AS are not CREATE TABLE AS syntax.
    s.fails("CREATE TEMP TABLE k6 AS DISTKEY(id) SELECT id FROM k3")
        .await;
}
