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

/// Runs a batch, expects FAILED, returns the error text.
async fn batch_fails(s: &common::Server, sqls: &[&str]) -> String {
    let id = s.submit_batch(sqls).await;
    let d = s.wait(&id).await;
    assert_eq!(d.status(), Some(&StatusString::Failed), "{sqls:?}: {d:?}");
    d.error().unwrap_or_default().to_string()
}

/// r_CREATE_PROCEDURE: a procedure is identified by its name and input
/// argument types (overloading), OR REPLACE replaces the same identity
/// only, an unqualified name goes to the current schema, LANGUAGE may come
/// before AS; argument types are checked like column types. OUT/INOUT,
/// NONATOMIC, SECURITY DEFINER and SET clauses are not emulated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_procedure_keys_procedures_by_name_and_input_argument_types() {
    let s = start().await;
    s.ok("CREATE TABLE log (v VARCHAR(40))").await;
    let body = "AS $$ BEGIN INSERT INTO log VALUES (a); END; $$ LANGUAGE plpgsql";
    s.ok(&format!("CREATE PROCEDURE sp_a(a VARCHAR(20)) {body}"))
        .await;
    s.ok("CREATE PROCEDURE sp_a(a INTEGER) LANGUAGE plpgsql AS $p$ BEGIN INSERT INTO log VALUES ('int ' || a::varchar); END; $p$")
        .await;
    // The same identity: names and type modifiers do not count.
    let e = s
        .fails(&format!("CREATE PROCEDURE sp_a(b VARCHAR(5)) {body}"))
        .await;
    assert!(e.contains("already exists"), "{e}");
    s.ok("CREATE OR REPLACE PROCEDURE public.sp_a(a VARCHAR(20)) AS $$ BEGIN INSERT INTO log VALUES ('new ' || a); END; $$ LANGUAGE plpgsql")
        .await;
    s.ok("CALL sp_a('x')").await;
    s.ok("CALL sp_a(7)").await;
    assert_eq!(
        s.query("SELECT v FROM log ORDER BY v").await,
        [["int 7"], ["new x"]]
    );
    assert_eq!(
        s.scalar("SELECT count(*) FROM kinesync_standin.procedures WHERE schema_name = 'public' AND proc_name = 'sp_a'")
            .await,
        "2"
    );
    for (sql, want) in [
        ("CREATE PROCEDURE sp_o(a OUT INTEGER) AS $$ BEGIN NULL; END; $$ LANGUAGE plpgsql", "not supported by the stand-in"),
        ("CREATE PROCEDURE sp_o(INOUT a INTEGER) AS $$ BEGIN NULL; END; $$ LANGUAGE plpgsql", "not supported by the stand-in"),
        ("CREATE PROCEDURE sp_o() NONATOMIC AS $$ BEGIN NULL; END; $$ LANGUAGE plpgsql", "not supported by the stand-in"),
        ("CREATE PROCEDURE sp_o() AS $$ BEGIN NULL; END; $$ LANGUAGE plpgsql SECURITY DEFINER", "not supported by the stand-in"),
        ("CREATE PROCEDURE sp_o() AS $$ BEGIN NULL; END; $$ LANGUAGE plpgsql SET datestyle TO ISO", "not supported by the stand-in"),
        ("CREATE PROCEDURE sp_o(a VARCHAR(65536)) AS $$ BEGIN NULL; END; $$ LANGUAGE plpgsql", "cannot exceed 65535"),
        ("CREATE PROCEDURE sp_o(a DECIMAL(39,2)) AS $$ BEGIN NULL; END; $$ LANGUAGE plpgsql", "precision 39"),
        ("CREATE PROCEDURE nope.sp_o() AS $$ BEGIN NULL; END; $$ LANGUAGE plpgsql", "schema \"nope\" does not exist"),
    ] {
        let e = s.fails(sql).await;
        assert!(e.contains(want), "{sql}: {e}");
    }
}

/// stored-procedure-constraints, r_CREATE_PROCEDURE, r_CALL_procedure: at
/// most 32 input arguments, 2 MB of source (2,000,000 bytes: the stricter
/// reading; the Data API's 100 KB limit refuses such a statement first, so
/// the rewriter is asked directly), 10,000 procedures in a database, 16
/// levels of nested calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn procedures_are_limited_in_arguments_source_size_count_and_nesting() {
    use redshift_data_standin::rewrite::{rewrite_statement, split_statements, Context, Session};
    let s = start().await;
    let args = |n: usize| {
        (1..=n)
            .map(|i| format!("a{i} INTEGER"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    s.ok(&format!(
        "CREATE PROCEDURE sp_args({}) AS $$ BEGIN NULL; END; $$ LANGUAGE plpgsql",
        args(32)
    ))
    .await;
    let e = s
        .fails(&format!(
            "CREATE PROCEDURE sp_args({}) AS $$ BEGIN NULL; END; $$ LANGUAGE plpgsql",
            args(33)
        ))
        .await;
    assert!(e.contains("at most 32"), "{e}");

    let source = |bytes: usize| {
        let mut body = format!("BEGIN {}END;", "NULL; ".repeat((bytes - 10) / 6));
        body.push_str(&" ".repeat(bytes - body.len()));
        format!("CREATE PROCEDURE sp_big() AS $${body}$$ LANGUAGE plpgsql")
    };
    let rewrite = |sql: String| {
        let stmts = split_statements(&sql).expect("lex");
        rewrite_statement(&stmts[0], &mut Session::default(), &Context::default())
    };
    assert!(rewrite(source(2_000_000)).is_ok());
    let e = rewrite(source(2_000_001))
        .expect_err("over 2 MB")
        .to_string();
    assert!(e.contains("at most 2 MB"), "{e}");

    s.ok("INSERT INTO kinesync_standin.procedures (schema_name, proc_name, arg_signature, arg_names, arg_types, body) \
          SELECT 'public', 'sp_filler_' || g, '', '{}', '{}', 'BEGIN END;' FROM generate_series(1, 9998) AS g")
        .await;
    s.ok("CREATE PROCEDURE sp_last() AS $$ BEGIN NULL; END; $$ LANGUAGE plpgsql")
        .await;
    let e = s
        .fails("CREATE PROCEDURE sp_one_too_many() AS $$ BEGIN NULL; END; $$ LANGUAGE plpgsql")
        .await;
    assert!(e.contains("at most 10000 stored procedures"), "{e}");
    s.ok("CREATE OR REPLACE PROCEDURE sp_last() AS $$ BEGIN RETURN; END; $$ LANGUAGE plpgsql")
        .await;
    s.ok("DELETE FROM kinesync_standin.procedures WHERE proc_name LIKE 'sp_filler_%'")
        .await;

    s.ok("CREATE TABLE depth (n INTEGER)").await;
    s.ok("CREATE OR REPLACE PROCEDURE sp_nest(n INTEGER) AS $$ BEGIN IF n > 1 THEN CALL sp_nest(n - 1); END IF; INSERT INTO depth VALUES (n); END; $$ LANGUAGE plpgsql")
        .await;
    s.ok("CALL sp_nest(16)").await;
    assert_eq!(s.scalar("SELECT count(*) FROM depth").await, "16");
    let e = s.fails("CALL sp_nest(17)").await;
    assert!(e.contains("nest at most 16 levels"), "{e}");
    assert_eq!(s.scalar("SELECT count(*) FROM depth").await, "16");
}

/// c_PLpgSQL-statements, c_PLpgSQL-structure: the stand-in runs BEGIN ...
/// END blocks, IF / ELSIF / ELSE, EXECUTE, NULL, RETURN, CALL and SQL
/// statements; any other PL/pgSQL is refused at CREATE (GET DIAGNOSTICS is
/// not among c_PLpgSQL-statements' supported statements; c_PLpgSQL-structure
/// shows it with a variable, and the stand-in has no variables).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn procedure_bodies_are_limited_to_the_plpgsql_subset_the_stand_in_runs() {
    let s = start().await;
    for body in [
        "DECLARE n INTEGER; BEGIN NULL; END;",
        "BEGIN GET DIAGNOSTICS n := ROW_COUNT; END;",
        "BEGIN FOR i IN 1..3 LOOP NULL; END LOOP; END;",
        "BEGIN LOOP EXIT; END LOOP; END;",
        "BEGIN WHILE true LOOP NULL; END LOOP; END;",
        "BEGIN RAISE INFO 'hello'; END;",
        "BEGIN a := 1; END;",
        "BEGIN NULL; EXCEPTION WHEN OTHERS THEN NULL; END;",
        "BEGIN OPEN c FOR SELECT 1; END;",
        "BEGIN SELECT INTO x count(*) FROM pg_class; END;",
        "BEGIN PERFORM 1; END;",
    ] {
        let e = s
            .fails(&format!(
                "CREATE PROCEDURE sp_bad(a INTEGER) AS $$ {body} $$ LANGUAGE plpgsql"
            ))
            .await;
        assert!(
            e.contains("does not run this PL/pgSQL statement"),
            "{body}: {e}"
        );
    }
    s.ok("CREATE TABLE kinds (n INTEGER, kind VARCHAR(20))")
        .await;
    s.ok("CREATE PROCEDURE sp_kind(n INTEGER) AS $$
          BEGIN
            IF n < 0 THEN
              INSERT INTO kinds VALUES (n, 'negative');
            ELSIF n = 0 THEN
              NULL;
            ELSE
              BEGIN
                EXECUTE 'INSERT INTO kinds VALUES (' || n::varchar || ', ''positive'')';
              END;
              RETURN;
            END IF;
            CALL sp_note(n);
          END;
          $$ LANGUAGE plpgsql")
        .await;
    s.ok("CREATE PROCEDURE sp_note(n INTEGER) AS $$ BEGIN INSERT INTO kinds VALUES (n, 'after if'); END; $$ LANGUAGE plpgsql")
        .await;
    for n in ["-1", "0", "5"] {
        s.ok(&format!("CALL sp_kind({n})")).await;
    }
    assert_eq!(
        s.query("SELECT n, kind FROM kinds ORDER BY n, kind").await,
        [
            ["-1", "after if"],
            ["-1", "negative"],
            ["0", "after if"],
            ["5", "positive"]
        ]
    );
}

/// r_CALL_procedure: "You can't use queries as CALL arguments"; arguments
/// are values (literals, NULL, casts, function calls) checked against the
/// declared types, VARCHAR lengths in bytes; a missing procedure fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_arguments_are_values_checked_against_the_declared_types() {
    let s = start().await;
    s.ok("CREATE TABLE vals (v VARCHAR(10))").await;
    s.ok("CREATE PROCEDURE sp_v(v VARCHAR(3)) AS $$ BEGIN INSERT INTO vals VALUES (v); END; $$ LANGUAGE plpgsql")
        .await;
    s.ok("CREATE PROCEDURE sp_n(n INTEGER) AS $$ BEGIN INSERT INTO vals VALUES (n::varchar); END; $$ LANGUAGE plpgsql")
        .await;
    let e = s.fails("CALL sp_v((SELECT 'a'))").await;
    assert!(e.contains("can't use queries as CALL arguments"), "{e}");
    let e = s.fails("CALL sp_v('ééé')").await;
    assert!(
        e.contains("value too long for type character varying(3)"),
        "{e}"
    );
    s.ok("CALL sp_v('abc')").await;
    s.ok("CALL sp_v(UPPER('é'))").await;
    s.ok("CALL sp_v(NULL)").await;
    s.ok("CALL sp_n('42')").await;
    s.ok("CALL sp_n(CAST('7' AS INTEGER))").await;
    let e = s.fails("CALL sp_n('x')").await;
    assert!(e.contains("invalid input syntax for type integer"), "{e}");
    assert_eq!(
        s.query("SELECT COALESCE(v, 'null') FROM vals ORDER BY 1")
            .await,
        [["42"], ["7"], ["abc"], ["null"], ["É"]]
    );
    let e = s.fails("CALL public.sp_missing('a', NULL)").await;
    assert!(
        e.contains("procedure public.sp_missing(unknown, unknown) does not exist"),
        "{e}"
    );
    let e = s.fails("CALL sp_v('a', 'b')").await;
    assert!(
        e.contains("procedure sp_v(unknown, unknown) does not exist"),
        "{e}"
    );
}

/// c_PLpgSQL-statements: a procedure's SQL statements see its parameters
/// (put in as literals) and the session's settings; they are rewritten like
/// any statement, each with what the statements before it created; "No
/// substitution of PL/pgSQL variables is done on the command string" of
/// EXECUTE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn procedure_statements_run_through_the_rewriter_with_parameters_as_literals() {
    let s = start().await;
    s.ok("CREATE TABLE src (v VARCHAR(20))").await;
    s.ok("INSERT INTO src VALUES ('the column')").await;
    s.ok("CREATE TABLE out (v VARCHAR(20))").await;
    s.ok(r#"CREATE PROCEDURE sp_nav(v VARCHAR(20)) AS $$
          BEGIN
            CREATE TEMP TABLE ev AS SELECT JSON_PARSE('{"Name": "upper", "name": "lower"}') AS payload;
            INSERT INTO out SELECT e.payload.Name::varchar FROM ev AS e;
            INSERT INTO out SELECT src.v FROM src WHERE v IS NOT NULL;
            INSERT INTO out VALUES (v);
            EXECUTE 'INSERT INTO out SELECT v FROM src';
          END;
          $$ LANGUAGE plpgsql"#)
        .await;
    let id = s
        .submit_batch(&[
            "SET enable_case_sensitive_super_attribute TO true",
            "CALL sp_nav('the parameter')",
        ])
        .await;
    let d = s.wait(&id).await;
    assert_eq!(d.status(), Some(&StatusString::Finished), "{d:?}");
    assert_eq!(
        s.query("SELECT v FROM out ORDER BY v").await,
        [["the column"], ["the column"], ["the parameter"], ["upper"]]
    );
}

/// c_PLpgSQL-statements (Dynamic SQL): EXECUTE runs a command string,
/// never NULL; "You can't use COMMIT and ROLLBACK statements from within
/// dynamic SQL". The string must hold one statement (the stricter reading).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_sql_runs_one_statement_and_cannot_commit() {
    let s = start().await;
    s.ok("CREATE TABLE t (n INTEGER)").await;
    s.ok(
        "CREATE PROCEDURE sp_exec(q VARCHAR(200)) AS $$ BEGIN EXECUTE q; END; $$ LANGUAGE plpgsql",
    )
    .await;
    s.ok("CALL sp_exec('INSERT INTO t VALUES (1)')").await;
    let e = s.fails("CALL sp_exec(NULL)").await;
    assert!(
        e.contains("query string argument of EXECUTE is null"),
        "{e}"
    );
    let e = s
        .fails("CALL sp_exec('INSERT INTO t VALUES (2); INSERT INTO t VALUES (3)')")
        .await;
    assert!(e.contains("EXECUTE runs one statement"), "{e}");
    for q in ["COMMIT", "ROLLBACK"] {
        let e = s.fails(&format!("CALL sp_exec('{q}')")).await;
        assert!(e.contains("cannot run from dynamic SQL"), "{q}: {e}");
    }
    assert_eq!(s.scalar("SELECT count(*) FROM t").await, "1");
}

/// stored-procedure-transaction-management: "If the stored procedure is
/// called from within a transaction block, it can't issue a COMMIT,
/// ROLLBACK, or TRUNCATE statement. This restriction applies within the
/// stored procedure's own body and within any nested procedure call."
/// BatchExecuteStatement is a transaction block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn procedures_called_in_a_batch_cannot_truncate_or_commit() {
    let s = start().await;
    s.ok("CREATE TABLE t (n INTEGER)").await;
    s.ok("INSERT INTO t VALUES (1)").await;
    for (name, body) in [
        ("sp_truncate", "TRUNCATE t;"),
        ("sp_commit", "INSERT INTO t VALUES (2); COMMIT;"),
        ("sp_rollback", "ROLLBACK;"),
        ("sp_outer", "CALL sp_truncate();"),
        ("sp_dynamic", "EXECUTE 'TRUNCATE t';"),
    ] {
        s.ok(&format!(
            "CREATE PROCEDURE {name}() AS $$ BEGIN {body} END; $$ LANGUAGE plpgsql"
        ))
        .await;
    }
    for (name, word) in [
        ("sp_truncate", "TRUNCATE"),
        ("sp_commit", "COMMIT"),
        ("sp_rollback", "ROLLBACK"),
        ("sp_outer", "TRUNCATE"),
        ("sp_dynamic", "TRUNCATE"),
    ] {
        let call = format!("CALL {name}()");
        let e = batch_fails(&s, &["INSERT INTO t VALUES (3)", &call]).await;
        assert!(
            e.contains(&format!(
                "{word} cannot be invoked from a procedure that is executing in an atomic context"
            )),
            "{name}: {e}"
        );
    }
    assert_eq!(s.scalar("SELECT count(*) FROM t").await, "1");
    // Outside a transaction block they run.
    s.ok("CALL sp_commit()").await;
    s.ok("CALL sp_dynamic()").await;
    assert_eq!(s.scalar("SELECT count(*) FROM t").await, "0");
}

/// stored-procedure-transaction-management: "A call to a stored procedure
/// is treated as a single SQL command": outside a transaction block an
/// error rolls back what the call did; a COMMIT in it commits the work
/// before it and begins a new transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_outside_a_batch_is_one_transaction() {
    let s = start().await;
    s.ok("CREATE TABLE t (n INTEGER)").await;
    s.ok("CREATE PROCEDURE sp_fails() AS $$ BEGIN INSERT INTO t VALUES (1); INSERT INTO no_such_table VALUES (1); END; $$ LANGUAGE plpgsql")
        .await;
    let e = s.fails("CALL sp_fails()").await;
    assert!(
        e.contains("\"no_such_table\" does not exist (in procedure public.sp_fails)"),
        "{e}"
    );
    assert_eq!(s.scalar("SELECT count(*) FROM t").await, "0");
    s.ok("CREATE PROCEDURE sp_commits() AS $$ BEGIN INSERT INTO t VALUES (1); COMMIT; INSERT INTO t VALUES (2); INSERT INTO no_such_table VALUES (1); END; $$ LANGUAGE plpgsql")
        .await;
    s.fails("CALL sp_commits()").await;
    assert_eq!(
        s.scalar("SELECT string_agg(n::varchar, ',') FROM t").await,
        "1"
    );
}

/// stored-procedure-constraints: "Any SQL command that requires its own
/// transaction context isn't supported inside a stored procedure" (BEGIN,
/// START TRANSACTION, PREPARE, CREATE/DROP DATABASE, CREATE EXTERNAL TABLE,
/// VACUUM, SET LOCAL, ALTER TABLE APPEND).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn procedures_refuse_statements_that_need_their_own_transaction() {
    let s = start().await;
    s.ok(
        "CREATE PROCEDURE sp_exec(q VARCHAR(200)) AS $$ BEGIN EXECUTE q; END; $$ LANGUAGE plpgsql",
    )
    .await;
    s.ok("CREATE PROCEDURE sp_vacuum() AS $$ BEGIN VACUUM; END; $$ LANGUAGE plpgsql")
        .await;
    for call in [
        "CALL sp_vacuum()",
        "CALL sp_exec('BEGIN')",
        "CALL sp_exec('START TRANSACTION')",
        "CALL sp_exec('SET LOCAL datestyle TO ISO')",
        "CALL sp_exec('CREATE DATABASE x')",
    ] {
        let e = s.fails(call).await;
        assert!(
            e.contains("not supported inside a stored procedure"),
            "{call}: {e}"
        );
    }
}

/// r_CALL_procedure: a procedure without OUT arguments returns no result
/// set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_has_no_result_set() {
    let s = start().await;
    s.ok("CREATE PROCEDURE sp_nothing() AS $$ BEGIN EXECUTE 'SELECT 1'; END; $$ LANGUAGE plpgsql")
        .await;
    let id = s.ok("CALL sp_nothing()").await;
    let d = s.describe(&id).await;
    assert_eq!(d.has_result_set(), Some(false));
    assert_eq!(d.result_rows(), 0);
    let err =
        s.rs.get_statement_result()
            .id(&id)
            .send()
            .await
            .expect_err("no result");
    assert!(
        format!("{err:?}").contains("Query does not have result"),
        "{err:?}"
    );
}

/// r_DROP_PROCEDURE: DROP PROCEDURE takes the name and the input argument
/// types (names and OUT arguments ignored) and has no IF EXISTS. A schema
/// holding procedures is not dropped without CASCADE, which drops them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_procedure_needs_the_signature_and_drop_schema_restrict_keeps_procedures() {
    let s = start().await;
    s.ok("CREATE SCHEMA mirror").await;
    let create = "CREATE PROCEDURE mirror.sp_p(a VARCHAR(10), b INTEGER) AS $$ BEGIN NULL; END; $$ LANGUAGE plpgsql";
    s.ok(create).await;
    let e = s
        .fails("DROP PROCEDURE IF EXISTS mirror.sp_p(VARCHAR, INTEGER)")
        .await;
    assert!(e.contains("no IF EXISTS"), "{e}");
    let e = s.fails("DROP PROCEDURE mirror.sp_p(VARCHAR)").await;
    assert!(
        e.contains("procedure mirror.sp_p(varchar) does not exist"),
        "{e}"
    );
    for drop in [
        "DROP SCHEMA IF EXISTS mirror RESTRICT",
        "DROP SCHEMA mirror",
    ] {
        let e = s.fails(drop).await;
        assert!(
            e.contains("cannot drop schema mirror because other objects depend on it"),
            "{e}"
        );
    }
    s.ok("CALL mirror.sp_p('a', 1)").await;
    s.ok("DROP PROCEDURE mirror.sp_p(x VARCHAR(3), IN INTEGER, r OUT INTEGER)")
        .await;
    let e = s.fails("CALL mirror.sp_p('a', 1)").await;
    assert!(
        e.contains("procedure mirror.sp_p(unknown, integer) does not exist"),
        "{e}"
    );
    s.ok(create).await;
    s.ok("DROP SCHEMA mirror CASCADE").await;
    s.ok("CREATE SCHEMA mirror").await;
    let e = s.fails("CALL mirror.sp_p('a', 1)").await;
    assert!(e.contains("does not exist"), "{e}");
    assert_eq!(
        s.scalar("SELECT count(*) FROM kinesync_standin.procedures")
            .await,
        "0"
    );
}
