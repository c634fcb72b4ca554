//! Stored procedures as kinesync uses them: one executor procedure with 32
//! VARCHAR(65535) arguments that EXECUTEs each non-NULL one (backslashes
//! sent as CHR(1)), called inside a BatchExecuteStatement. The documented
//! rules themselves are tested in redshift_rules.rs. Needs
//! STANDIN_TEST_PG_URL and STANDIN_TEST_KINESIS_URL (fails without).

mod common;

use aws_sdk_redshiftdata::types::StatusString;
use common::start;

/// kinesync's executor procedure.
fn executor() -> String {
    let args: Vec<String> = (1..=32).map(|i| format!("s{i} VARCHAR(65535)")).collect();
    let body: String = (1..=32)
        .map(|i| {
            format!(
                "    IF s{i} IS NOT NULL THEN\n        EXECUTE REPLACE(s{i}, CHR(1), CHR(92));\n    END IF;\n"
            )
        })
        .collect();
    format!(
        "CREATE OR REPLACE PROCEDURE mirror.sp_kinesync_execute({})\nAS $$\nBEGIN\n{body}END;\n$$ LANGUAGE plpgsql;",
        args.join(", ")
    )
}

/// A CALL of the executor with `stmts` (quotes doubled, `\` as CHR(1)),
/// NULL for the other arguments.
fn call(stmts: &[&str]) -> String {
    let mut args: Vec<String> = stmts
        .iter()
        .map(|s| format!("'{}'", s.replace('\'', "''").replace('\\', "\u{1}")))
        .collect();
    args.resize(32, "NULL".into());
    format!("CALL mirror.sp_kinesync_execute({});", args.join(", "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kinesync_executor_runs_dynamic_statements_in_a_batch() {
    let s = start().await;
    s.ok("CREATE SCHEMA mirror").await;
    s.ok("CREATE TABLE mirror.customers (id BIGINT, name VARCHAR(100))")
        .await;
    s.ok(&executor()).await;
    let merge = call(&[
        r#"CREATE TEMP TABLE kinesync_new_events AS SELECT JSON_PARSE('{"after": {"Id": 1, "Name": "Ann"}}') AS payload"#,
        "INSERT INTO mirror.customers SELECT e.payload.after.Id::bigint, e.payload.after.Name::varchar FROM kinesync_new_events AS e",
        "UPDATE mirror.customers SET name = name || '!' WHERE id = 1",
    ]);
    let id = s
        .submit_batch(&["SET enable_case_sensitive_super_attribute TO true", &merge])
        .await;
    let d = s.wait(&id).await;
    assert_eq!(d.status(), Some(&StatusString::Finished), "{d:?}");
    let sub = s.describe(&format!("{id}:2")).await;
    assert_eq!(sub.has_result_set(), Some(false));
    assert_eq!(
        s.query("SELECT id, name FROM mirror.customers").await,
        [["1", "Ann!"]]
    );

    // A failing dynamic statement fails the CALL and rolls the batch back.
    let failing = call(&[
        "INSERT INTO mirror.customers VALUES (3, 'Cy')",
        "INSERT INTO mirror.no_such_table VALUES (1)",
    ]);
    let id = s
        .submit_batch(&[
            "SET enable_case_sensitive_super_attribute TO true",
            "INSERT INTO mirror.customers VALUES (2, 'Bo')",
            &failing,
        ])
        .await;
    let d = s.wait(&id).await;
    assert_eq!(d.status(), Some(&StatusString::Failed), "{d:?}");
    let e = d.error().unwrap_or_default();
    assert!(
        e.contains("does not exist") && e.contains("(in procedure mirror.sp_kinesync_execute)"),
        "{e}"
    );
    assert_eq!(s.scalar("SELECT count(*) FROM mirror.customers").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn procedure_parameters_are_substituted_as_literals() {
    let s = start().await;
    s.ok("CREATE SCHEMA mirror").await;
    s.ok("CREATE TABLE mirror.lit (v VARCHAR(100))").await;
    s.ok(&executor()).await;
    // Through the executor: the backslash travels as CHR(1).
    s.ok(&call(&[
        r"INSERT INTO mirror.lit VALUES ('it''s a \ backslash')",
    ]))
    .await;
    // As a parameter of a static statement: a literal, quotes and all.
    s.ok("CREATE PROCEDURE mirror.sp_keep(v VARCHAR(100)) AS $$ BEGIN INSERT INTO mirror.lit VALUES (v); END; $$ LANGUAGE plpgsql")
        .await;
    s.ok(r"CALL mirror.sp_keep('a '' quote, a \ backslash, a $$ and ; too')")
        .await;
    assert_eq!(
        s.query("SELECT v FROM mirror.lit ORDER BY v").await,
        [
            [r"a ' quote, a \ backslash, a $$ and ; too"],
            [r"it's a \ backslash"]
        ]
    );
}
