//! Integration tests: the real aws-sdk-redshiftdata client against the
//! stand-in, running on a real PostgreSQL and reading kinesalite.
//! Needs STANDIN_TEST_PG_URL and STANDIN_TEST_KINESIS_URL (fails without).

mod common;

use aws_sdk_redshiftdata::types::{Field, StatementStatusString, StatusString};
use common::{start, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_statuses_results_and_errors() {
    let s = start().await;
    // async: returns before the statement finishes
    let id = s.submit("SELECT pg_sleep(1.0), 1 AS one").await;
    let first = s.describe(&id).await;
    assert!(
        matches!(
            first.status(),
            Some(StatusString::Submitted | StatusString::Picked | StatusString::Started)
        ),
        "first status {:?}",
        first.status()
    );
    // no result yet
    let early = s.rs.get_statement_result().id(&id).send().await;
    assert!(early.is_err(), "result before FINISHED");
    let done = s.wait(&id).await;
    assert_eq!(done.status(), Some(&StatusString::Finished));
    assert!(
        done.duration() >= 900_000_000,
        "duration ns {}",
        done.duration()
    );
    assert!(done.has_result_set() == Some(true));
    assert_eq!(done.result_rows(), 1);
    assert!(done.created_at().is_some() && done.updated_at().is_some());

    // result types
    let id = s
        .ok(
            "SELECT 9007199254740993::int8 AS big, NULL::int AS n, 1.5::float8 AS d, true AS b, \
             'x'::varchar AS v, TIMESTAMP '2024-01-02 03:04:05' AS ts, \
             JSON_PARSE('{\"a\":1}') AS sup, 12.5::decimal(10,2) AS dec, 7::smallint AS sm",
        )
        .await;
    let out =
        s.rs.get_statement_result()
            .id(&id)
            .send()
            .await
            .expect("result");
    assert_eq!(out.total_num_rows(), 1);
    let types: Vec<&str> = out
        .column_metadata()
        .iter()
        .map(|c| c.type_name().unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        [
            "int8",
            "int4",
            "float8",
            "bool",
            "varchar",
            "timestamp",
            "super",
            "numeric",
            "int2"
        ]
    );
    assert_eq!(out.column_metadata()[0].name(), Some("big"));
    let r = &out.records()[0];
    assert_eq!(r[0], Field::LongValue(9_007_199_254_740_993));
    assert_eq!(r[1], Field::IsNull(true));
    assert_eq!(r[2], Field::DoubleValue(1.5));
    assert_eq!(r[3], Field::BooleanValue(true));
    assert_eq!(r[4], Field::StringValue("x".into()));
    assert_eq!(r[5], Field::StringValue("2024-01-02 03:04:05".into()));
    let Field::StringValue(j) = &r[6] else {
        panic!("super as string: {:?}", r[6])
    };
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(j).expect("json"),
        serde_json::json!({"a": 1})
    );
    assert_eq!(r[7], Field::StringValue("12.50".into()));
    assert_eq!(r[8], Field::LongValue(7));

    // failure text
    let e = s.fails("SELECT * FROM no_such_table").await;
    assert!(
        e.contains("relation \"no_such_table\" does not exist"),
        "{e}"
    );

    // unknown id
    let err =
        s.rs.describe_statement()
            .id("00000000-0000-0000-0000-000000000000")
            .send()
            .await
            .expect_err("unknown id");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );
    // both targets -> validation
    let err =
        s.rs.execute_statement()
            .sql("SELECT 1")
            .database(&s.db)
            .workgroup_name("wg")
            .cluster_identifier("c")
            .send()
            .await
            .expect_err("both targets");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_validation_exception()),
        "{err:?}"
    );
    // no result set
    let id = s.ok("CREATE TABLE t_nores (a int)").await;
    let err =
        s.rs.get_statement_result()
            .id(&id)
            .send()
            .await
            .expect_err("no result set");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );
    // parameters
    let v =
        s.rs.execute_statement()
            .sql("SELECT :name || '!' AS v")
            .database(&s.db)
            .workgroup_name("wg")
            .parameters(
                aws_sdk_redshiftdata::types::SqlParameter::builder()
                    .name("name")
                    .value("O'Brien")
                    .build()
                    .expect("param"),
            )
            .send()
            .await
            .expect("exec")
            .id()
            .expect("Id in response")
            .to_string();
    s.wait(&v).await;
    assert_eq!(common::show(&s.rows_of(&v).await[0][0]), "O'Brien!");

    // cancel a running statement
    let id = s.submit("SELECT pg_sleep(30)").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let c =
        s.rs.cancel_statement()
            .id(&id)
            .send()
            .await
            .expect("cancel");
    assert_eq!(c.status(), Some(true));
    let d = s.wait(&id).await;
    assert_eq!(d.status(), Some(&StatusString::Aborted));

    // ListStatements sees them
    let l = s.rs.list_statements().send().await.expect("list");
    assert!(l.statements().iter().any(|st| st.id() == id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_is_one_transaction() {
    let s = start().await;
    s.ok("CREATE TABLE bt (id int PRIMARY KEY, v varchar(10))")
        .await;
    let id = s
        .submit_batch(&[
            "INSERT INTO bt VALUES (1, 'a')",
            "INSERT INTO bt VALUES (2, 'way too long for ten')",
            "INSERT INTO bt VALUES (3, 'c')",
        ])
        .await;
    let d = s.wait(&id).await;
    assert_eq!(d.status(), Some(&StatusString::Failed));
    let subs = d.sub_statements();
    assert_eq!(subs.len(), 3);
    assert_eq!(subs[0].id(), format!("{id}:1"));
    assert_eq!(subs[0].status(), Some(&StatementStatusString::Finished));
    assert_eq!(subs[1].status(), Some(&StatementStatusString::Failed));
    assert!(
        subs[1].error().unwrap_or("").contains("value too long"),
        "{:?}",
        subs[1].error()
    );
    assert_eq!(subs[2].status(), Some(&StatementStatusString::Aborted));
    assert!(d.error().unwrap_or("").starts_with("ERROR: "));
    assert_eq!(s.scalar("SELECT count(*) FROM bt").await, "0");

    // success: sub-statement results and DescribeStatement of "<id>:n"
    let id = s
        .submit_batch(&[
            "INSERT INTO bt VALUES (1, 'a'), (2, 'b')",
            "SELECT id, v FROM bt ORDER BY id",
        ])
        .await;
    let d = s.wait(&id).await;
    assert_eq!(d.status(), Some(&StatusString::Finished));
    assert_eq!(d.sub_statements()[0].result_rows(), 2);
    assert_eq!(d.sub_statements()[1].has_result_set(), Some(true));
    let rows = s.rows_of(&format!("{id}:2")).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][1], Field::StringValue("b".into()));
    let sub = s.describe(&format!("{id}:1")).await;
    assert_eq!(sub.status(), Some(&StatusString::Finished));

    // TRUNCATE inside a batch is rejected (Redshift would commit)
    let id = s
        .submit_batch(&["DELETE FROM bt WHERE id = 1", "TRUNCATE bt"])
        .await;
    let d = s.wait(&id).await;
    assert_eq!(d.status(), Some(&StatusString::Failed));
    assert!(
        d.sub_statements()[1]
            .error()
            .unwrap_or("")
            .contains("TRUNCATE cannot run inside a transaction block"),
        "{d:?}"
    );
    assert_eq!(s.scalar("SELECT count(*) FROM bt").await, "2");
    // TRUNCATE alone is fine
    s.ok("TRUNCATE bt").await;
    assert_eq!(s.scalar("SELECT count(*) FROM bt").await, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_token_is_idempotent() {
    let s = start().await;
    s.ok("CREATE TABLE ct (a int)").await;
    let token = uuid::Uuid::new_v4().to_string();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let out =
            s.rs.execute_statement()
                .sql("INSERT INTO ct VALUES (1)")
                .database(&s.db)
                .workgroup_name("wg")
                .client_token(&token)
                .send()
                .await
                .expect("exec");
        ids.push(out.id().expect("Id").to_string());
    }
    assert!(ids.iter().all(|i| i == &ids[0]), "{ids:?}");
    s.wait(&ids[0]).await;
    assert_eq!(s.scalar("SELECT count(*) FROM ct").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn super_navigation_lax_casts_and_case_folding() {
    let s = start().await;
    s.ok("CREATE TABLE ev (id int, payload SUPER)").await;
    s.ok(r#"INSERT INTO ev SELECT 1, JSON_PARSE('{"after": {"id": 42, "Name": "Alice", "amt": "12.5", "bad": "x1", "n": null, "f": 1.25, "ok": true, "big": 9007199254740993, "frac": 1.5, "arr": [10, 20]}, "op": "c"}')"#).await;
    let row = &s
        .query(
            r#"SELECT payload."after"."id"::bigint, payload."after"."id"::varchar, payload."op"::bigint,
                      payload."after"."amt"::varchar::decimal(10,2), payload."after"."n" IS NULL,
                      payload."after"."missing"::varchar IS NULL, payload."after"."f"::float8,
                      payload."after"."ok"::boolean, payload."after"."id"::boolean,
                      payload."after"."big"::bigint, payload."after"."frac"::int,
                      payload."after"."amt"::decimal(10,2), payload."after"."arr"[1]::int,
                      JSON_TYPEOF(payload."after"), IS_VARCHAR(payload."op"), IS_BIGINT(payload."after"."id"),
                      payload."after"."Name"::varchar
               FROM ev"#,
        )
        .await[0];
    assert_eq!(
        row,
        &[
            "42",
            "NULL",
            "NULL",
            "12.50",
            // a JSON null is a SUPER null, not SQL NULL
            "false",
            "true",
            "1.25",
            "true",
            "NULL",
            "9007199254740993",
            "NULL",
            "NULL",
            "20",
            "object",
            "true",
            "true",
            // attribute names fold to lower case without the SET
            "NULL",
        ]
    );
    // a bad text -> decimal cast errors like Redshift
    let e = s
        .fails(r#"SELECT payload."after"."bad"::varchar::decimal(10,2) FROM ev"#)
        .await;
    assert!(e.contains("invalid input syntax"), "{e}");
    // with the SET (per session: inside the batch) the case is kept
    let id = s
        .submit_batch(&[
            "SET enable_case_sensitive_super_attribute TO true",
            "SET enable_case_sensitive_identifier TO true",
            r#"SELECT e.payload."after"."Name"::varchar AS "Name" FROM ev AS e"#,
        ])
        .await;
    let d = s.wait(&id).await;
    assert_eq!(d.status(), Some(&StatusString::Finished), "{d:?}");
    let out =
        s.rs.get_statement_result()
            .id(format!("{id}:3"))
            .send()
            .await
            .expect("result");
    assert_eq!(out.records()[0][0], Field::StringValue("Alice".into()));
    // quoted identifiers keep their case too under enable_case_sensitive_identifier
    assert_eq!(out.column_metadata()[0].name(), Some("Name"));
    // ... and the setting does not leak into the next statement
    assert_eq!(
        s.scalar(r#"SELECT payload."after"."Name"::varchar FROM ev"#)
            .await,
        "NULL"
    );
    s.ok(r#"CREATE TABLE "MixedCase" ("Id" int)"#).await;
    s.ok("INSERT INTO mixedcase (id) VALUES (5)").await;
    assert_eq!(s.scalar(r#"SELECT "ID" FROM "MIXEDCASE""#).await, "5");

    // JSON_PARSE limits
    assert_eq!(
        s.scalar(r#"SELECT JSON_PARSE('{"a":"' || repeat('x', 65535) || '"}') IS NOT NULL"#)
            .await,
        "true"
    );
    let e = s
        .fails(r#"SELECT JSON_PARSE('{"a":"' || repeat('x', 65536) || '"}')"#)
        .await;
    assert!(
        e.contains("JSON_PARSE: string longer than 65535 bytes"),
        "{e}"
    );
    let e = s
        .fails(r#"SELECT JSON_PARSE('{"' || repeat('k', 70000) || '":1}')"#)
        .await;
    assert!(e.contains("65535"), "{e}");
    // multibyte: 30,000 x 'é' = 60,000 bytes... 40,000 x 'é' = 80,000 bytes
    let e = s
        .fails(r#"SELECT JSON_PARSE('["' || repeat('é', 40000) || '"]')"#)
        .await;
    assert!(e.contains("65535"), "{e}");
    let e = s.fails("SELECT JSON_PARSE('{not json')").await;
    assert!(e.contains("JSON_PARSE"), "{e}");
    assert_eq!(
        s.query(r#"SELECT CAN_JSON_PARSE('{"a":"' || repeat('x', 65536) || '"}'), CAN_JSON_PARSE('{x'), CAN_JSON_PARSE('[1]')"#)
            .await[0],
        ["false", "false", "true"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redshift_ddl_types_and_limits() {
    let s = start().await;
    s.ok(r#"CREATE TABLE IF NOT EXISTS public.orders ("id" BIGINT ENCODE az64, "doc" SUPER, "data" VARBYTE(1024000), "name" VARCHAR(MAX), "code" VARCHAR, "v5" VARCHAR(5), _ts TIMESTAMP) DISTSTYLE KEY DISTKEY("id") COMPOUND SORTKEY("id", _ts)"#).await;
    s.ok(r#"INSERT INTO public.orders ("id", "doc", "data", "name") VALUES (1, JSON_PARSE('{"a":1}'), FROM_HEX('cafe'), 'n')"#).await;
    assert_eq!(
        s.query(r#"SELECT TO_HEX("data"), LEN("name"), doc."a"::int FROM public.orders"#)
            .await[0],
        ["cafe", "1", "1"]
    );
    let e = s
        .fails("INSERT INTO public.orders (\"id\", \"v5\") VALUES (2, 'abcdef')")
        .await;
    assert!(e.contains("value too long"), "{e}");
    let e = s
        .fails("INSERT INTO public.orders (\"id\", \"code\") VALUES (2, repeat('x', 257))")
        .await;
    assert!(e.contains("value too long"), "{e}");
    // Redshift counts bytes: 3 characters of 2 bytes do not fit VARCHAR(5)
    let e = s
        .fails("INSERT INTO public.orders (\"id\", \"v5\") VALUES (2, 'ééé')")
        .await;
    assert!(e.contains("check constraint"), "{e}");
    s.ok("INSERT INTO public.orders (\"id\", \"v5\") VALUES (2, 'éé')")
        .await;
    s.ok("DELETE FROM public.orders WHERE id = 2").await;
    let e = s.fails("CREATE TABLE bad1 (a VARCHAR(65536))").await;
    assert!(e.contains("cannot exceed 65535"), "{e}");
    let e = s.fails("CREATE TABLE bad2 (a DECIMAL(39,2))").await;
    assert!(e.contains("precision 39"), "{e}");
    // MERGE source must be a table
    s.ok("CREATE TABLE src (id bigint, name varchar(10))").await;
    s.ok("INSERT INTO src VALUES (1, 'x'), (3, 'y')").await;
    s.ok("MERGE INTO public.orders USING src ON orders.id = src.id WHEN MATCHED THEN UPDATE SET name = src.name WHEN NOT MATCHED THEN INSERT (id, name) VALUES (src.id, src.name)").await;
    assert_eq!(
        s.query("SELECT id, name FROM public.orders ORDER BY id")
            .await,
        [["1", "x"], ["3", "y"]]
    );
    let e = s
        .fails("MERGE INTO public.orders USING (SELECT 1 AS id) s ON orders.id = s.id WHEN MATCHED THEN DELETE")
        .await;
    assert!(e.contains("MERGE source must be a table"), "{e}");
    // STRTOL reads text as a number in a base
    assert_eq!(
        s.query("SELECT STRTOL('ffffffff', 16), STRTOL('2a', 16), STRTOL('101', 2)")
            .await[0],
        ["4294967295", "42", "5"]
    );
    // catalog views
    assert_eq!(s.scalar("SELECT count(*) FROM svv_mv_info").await, "0");
    s.ok("SET datestyle TO ISO").await;
    s.ok("SET enable_result_cache_for_session TO off").await;
    assert!(
        s.scalar("SELECT GETDATE() <= SYSDATE + INTERVAL '1 minute'")
            .await
            == "true"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_view_refresh_reads_kinesis_incrementally() {
    let s = start().await;
    let stream = unique("kinesync-cdc").replace('_', "-");
    s.create_stream(&stream, 2).await;
    for i in 0..20 {
        let doc = format!(r#"{{"op":"c","source":{{"lsn":{i}}},"after":{{"id":{i}}}}}"#);
        s.put(&stream, &format!("key-{i}"), doc.as_bytes()).await;
    }
    s.ok("CREATE SCHEMA mirror").await;
    s.ok("CREATE EXTERNAL SCHEMA IF NOT EXISTS \"kinesync_stream\" FROM KINESIS IAM_ROLE 'arn:aws:iam::000000000000:role/kinesync-local'").await;
    // idempotent
    s.ok("CREATE EXTERNAL SCHEMA IF NOT EXISTS \"kinesync_stream\" FROM KINESIS IAM_ROLE 'arn:aws:iam::000000000000:role/kinesync-local'").await;
    let e = s
        .fails("CREATE EXTERNAL SCHEMA \"kinesync_stream\" FROM KINESIS IAM_ROLE default")
        .await;
    assert!(e.contains("already exists"), "{e}");
    s.ok(&format!(
        r#"CREATE MATERIALIZED VIEW "mirror"."kinesync_events" AUTO REFRESH NO AS
SELECT approximate_arrival_timestamp, refresh_time, shard_id, sequence_number, partition_key,
       JSON_PARSE(kinesis_data) AS payload
FROM "kinesync_stream"."{stream}""#
    ))
    .await;
    assert_eq!(
        s.query("SELECT schema_name, name FROM svv_mv_info WHERE schema_name = 'mirror' AND name = 'kinesync_events'")
            .await,
        [["mirror", "kinesync_events"]]
    );
    assert_eq!(
        s.scalar("SELECT count(*) FROM svv_external_schemas WHERE schemaname = 'kinesync_stream'")
            .await,
        "1"
    );
    assert_eq!(
        s.scalar("SELECT count(*) FROM mirror.kinesync_events")
            .await,
        "0"
    );

    s.ok(r#"REFRESH MATERIALIZED VIEW "mirror"."kinesync_events""#)
        .await;
    assert_eq!(
        s.scalar("SELECT count(*) FROM mirror.kinesync_events")
            .await,
        "20"
    );
    assert_eq!(
        s.scalar("SELECT count(DISTINCT shard_id) FROM mirror.kinesync_events")
            .await,
        "2"
    );
    assert_eq!(
        s.scalar(r#"SELECT sum(e.payload."after"."id"::bigint) FROM mirror.kinesync_events AS e"#)
            .await,
        "190"
    );
    assert_eq!(
        s.scalar("SELECT count(*) FROM mirror.kinesync_events WHERE approximate_arrival_timestamp IS NULL OR partition_key NOT LIKE 'key-%'")
            .await,
        "0"
    );

    // second refresh gets only the new records
    for i in 20..25 {
        let doc = format!(r#"{{"op":"u","after":{{"id":{i}}}}}"#);
        s.put(&stream, &format!("key-{i}"), doc.as_bytes()).await;
    }
    s.ok("REFRESH MATERIALIZED VIEW mirror.kinesync_events")
        .await;
    assert_eq!(
        s.scalar("SELECT count(*) FROM mirror.kinesync_events")
            .await,
        "25"
    );
    assert_eq!(
        s.scalar("SELECT count(DISTINCT sequence_number) FROM mirror.kinesync_events")
            .await,
        "25"
    );
    assert_eq!(
        s.query("SELECT count(*) FROM mirror.kinesync_events GROUP BY refresh_time ORDER BY refresh_time")
            .await,
        [["20"], ["5"]]
    );
    // nothing new: nothing added
    s.ok("REFRESH MATERIALIZED VIEW mirror.kinesync_events")
        .await;
    assert_eq!(
        s.scalar("SELECT count(*) FROM mirror.kinesync_events")
            .await,
        "25"
    );

    // REFRESH of a streaming view inside a batch is rejected
    let id = s
        .submit_batch(&[
            "SELECT 1",
            "REFRESH MATERIALIZED VIEW mirror.kinesync_events",
        ])
        .await;
    let d = s.wait(&id).await;
    assert_eq!(d.status(), Some(&StatusString::Failed));
    assert!(
        d.sub_statements()[1]
            .error()
            .unwrap_or("")
            .contains("own statement"),
        "{d:?}"
    );

    // the stream can only be read through a streaming view
    let e = s
        .fails(&format!(r#"SELECT * FROM kinesync_stream."{stream}""#))
        .await;
    assert!(e.contains("streaming materialized view"), "{e}");

    // Redshift's streaming view rules
    s.ok("CREATE TABLE public.dim (k varchar(10))").await;
    let e = s
        .fails(&format!(
            r#"CREATE MATERIALIZED VIEW mirror.joined AS SELECT s.shard_id, d.k FROM kinesync_stream."{stream}" s JOIN public.dim d ON d.k = s.partition_key"#
        ))
        .await;
    assert!(e.contains("JOIN"), "{e}");
    let e = s
        .fails(&format!(
            r#"CREATE MATERIALIZED VIEW mirror.dated AS SELECT shard_id, GETDATE() AS t FROM kinesync_stream."{stream}""#
        ))
        .await;
    assert!(e.contains("incrementally"), "{e}");
    let e = s
        .fails(r#"CREATE MATERIALIZED VIEW mirror.nostream AS SELECT shard_id FROM kinesync_stream."no-such-stream""#)
        .await;
    assert!(e.contains("does not exist"), "{e}");

    // a missing stream at refresh time fails the refresh
    s.delete_stream(&stream).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let e = s
        .fails("REFRESH MATERIALIZED VIEW mirror.kinesync_events")
        .await;
    assert!(e.contains("does not exist"), "{e}");
    assert_eq!(
        s.scalar("SELECT count(*) FROM mirror.kinesync_events")
            .await,
        "25"
    );
    s.ok("DROP MATERIALIZED VIEW mirror.kinesync_events").await;
    assert_eq!(s.scalar("SELECT count(*) FROM svv_mv_info").await, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_parse_of_long_string_fails_the_whole_refresh() {
    let s = start().await;
    let stream = unique("long-str").replace('_', "-");
    s.create_stream(&stream, 1).await;
    s.put(&stream, "k", br#"{"ok":1}"#).await;
    s.ok("CREATE EXTERNAL SCHEMA ks FROM KINESIS IAM_ROLE default")
        .await;
    s.ok(&format!(
        r#"CREATE MATERIALIZED VIEW ev AS SELECT refresh_time, JSON_PARSE(kinesis_data) AS payload FROM ks."{stream}""#
    ))
    .await;
    let long = format!(r#"{{"text":"{}"}}"#, "x".repeat(70_000));
    s.put(&stream, "k", long.as_bytes()).await;
    let e = s.fails("REFRESH MATERIALIZED VIEW ev").await;
    assert!(
        e.contains("JSON_PARSE: string longer than 65535 bytes"),
        "{e}"
    );
    // nothing consumed, not even the good record before it
    assert_eq!(s.scalar("SELECT count(*) FROM ev").await, "0");
    assert_eq!(
        s.scalar("SELECT count(*) FROM kinesync_standin.stream_positions")
            .await,
        "0"
    );
    // and it keeps failing
    let e = s.fails("REFRESH MATERIALIZED VIEW ev").await;
    assert!(e.contains("65535"), "{e}");

    // a view that filters with CAN_JSON_PARSE drops the record silently
    s.ok(&format!(
        r#"CREATE MATERIALIZED VIEW ev2 AS SELECT JSON_PARSE(kinesis_data) AS payload FROM ks."{stream}" WHERE CAN_JSON_PARSE(kinesis_data)"#
    ))
    .await;
    s.ok("REFRESH MATERIALIZED VIEW ev2").await;
    assert_eq!(s.scalar("SELECT count(*) FROM ev2").await, "1");
    s.delete_stream(&stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesync_merge_flow() {
    let s = start().await;
    let stream = unique("kinesync-flow").replace('_', "-");
    s.create_stream(&stream, 2).await;
    let events = [
        (
            1,
            r#"{"op":"c","source":{"schema":"public","table":"orders","commit_lsn":100},"after":{"id":1,"Name":"first","amount":"10.50","doc":{"k":[1,2]},"data":"cafe"},"ts_ms":1700000000000}"#,
        ),
        (
            2,
            r#"{"op":"c","source":{"schema":"public","table":"orders","commit_lsn":101},"after":{"id":2,"Name":"second","amount":"3","doc":null,"data":null},"ts_ms":1700000001000}"#,
        ),
        (
            1,
            r#"{"op":"u","source":{"schema":"public","table":"orders","commit_lsn":102},"after":{"id":1,"Name":"first-updated","amount":"11.00","doc":{"k":[3]},"data":"beef"},"ts_ms":1700000002000}"#,
        ),
        (
            3,
            r#"{"op":"c","source":{"schema":"public","table":"other","commit_lsn":103},"after":{"id":3},"ts_ms":1700000003000}"#,
        ),
    ];
    for (k, e) in events {
        s.put(&stream, &format!("public.orders:{k}"), e.as_bytes())
            .await;
    }
    s.ok("CREATE SCHEMA IF NOT EXISTS mirror").await;
    s.ok("CREATE EXTERNAL SCHEMA IF NOT EXISTS \"kinesync_stream\" FROM KINESIS IAM_ROLE 'arn:aws:iam::000000000000:role/kinesync-local'").await;
    s.ok(&format!(
        r#"CREATE MATERIALIZED VIEW "mirror"."kinesync_events" AUTO REFRESH NO AS
SELECT approximate_arrival_timestamp, refresh_time, shard_id, sequence_number, partition_key,
       JSON_PARSE(kinesis_data) AS payload
FROM "kinesync_stream"."{stream}""#
    ))
    .await;
    s.ok(r#"CREATE TABLE IF NOT EXISTS "mirror"."kinesync_checkpoint" (events_view VARCHAR(128), watermark TIMESTAMP)"#).await;
    s.ok(r#"INSERT INTO "mirror"."kinesync_checkpoint" VALUES ('kinesync_events', TIMESTAMP 'epoch')"#).await;
    s.ok(r#"CREATE TABLE IF NOT EXISTS "mirror"."orders" ("id" BIGINT, "Name" VARCHAR(MAX), "amount" DECIMAL(12,2), "doc" SUPER, "data" VARBYTE(1024000), _kinesync_op_ts TIMESTAMP) DISTKEY("id") SORTKEY("id")"#).await;
    s.ok(r#"REFRESH MATERIALIZED VIEW "mirror"."kinesync_events""#)
        .await;

    // As kinesync writes it: both case settings, mirror names as Redshift
    // stores them, a JSON null made SQL NULL.
    let batch = [
        "SET enable_case_sensitive_super_attribute TO true",
        "SET enable_case_sensitive_identifier TO true",
        r#"CREATE TEMP TABLE kinesync_new_events AS SELECT e.refresh_time, e.payload FROM "mirror"."kinesync_events" AS e WHERE e.refresh_time > (SELECT c.watermark FROM "mirror"."kinesync_checkpoint" AS c WHERE c.events_view = 'kinesync_events')"#,
        r#"CREATE TEMP TABLE kinesync_changes_1 AS
SELECT 'upsert'::varchar(6) AS _kinesync_action, e.payload."source"."commit_lsn"::bigint AS _kinesync_commit_lsn,
       e.payload."after"."id"::bigint AS "id", e.payload."after"."Name"::varchar AS "name",
       e.payload."after"."amount"::varchar::decimal(12,2) AS "amount",
       CASE WHEN JSON_TYPEOF(e.payload."after"."doc") = 'null' THEN NULL ELSE e.payload."after"."doc" END AS "doc",
       e.payload."after"."data"::varchar AS "data", e.payload."ts_ms"::bigint AS _ts_ms
FROM kinesync_new_events AS e
WHERE e.payload."source"."schema"::varchar = 'public' AND e.payload."source"."table"::varchar = 'orders' AND e.payload."op"::varchar IN ('c','u','r')"#,
        r#"CREATE TEMP TABLE kinesync_latest_1 AS SELECT * FROM (SELECT c.*, ROW_NUMBER() OVER (PARTITION BY "id" ORDER BY _kinesync_commit_lsn DESC) AS _kinesync_rank FROM kinesync_changes_1 AS c) AS ranked WHERE _kinesync_rank = 1"#,
        r#"DELETE FROM "mirror"."orders" USING kinesync_latest_1 WHERE "mirror"."orders"."id" = kinesync_latest_1."id""#,
        r#"INSERT INTO "mirror"."orders" ("id", "name", "amount", "doc", "data", _kinesync_op_ts) SELECT c."id", c."name", c."amount", c."doc", TO_VARBYTE(c."data", 'hex'), TIMESTAMP 'epoch' + (c._ts_ms / 1000) * INTERVAL '1 second' FROM kinesync_latest_1 AS c"#,
        r#"UPDATE "mirror"."kinesync_checkpoint" SET watermark = (SELECT max(refresh_time) FROM kinesync_new_events) WHERE events_view = 'kinesync_events'"#,
    ];
    let id = s.submit_batch(&batch).await;
    let d = s.wait(&id).await;
    assert_eq!(d.status(), Some(&StatusString::Finished), "{d:?}");
    assert_eq!(
        s.query(r#"SELECT "id", "Name", "amount", JSON_SERIALIZE("doc"), TO_HEX("data"), _kinesync_op_ts FROM "mirror"."orders" ORDER BY "id""#)
            .await,
        [
            ["1", "first-updated", "11.00", r#"{"k": [3]}"#, "beef", "2023-11-14 22:13:22"],
            ["2", "second", "3.00", "NULL", "NULL", "2023-11-14 22:13:21"],
        ]
    );
    // run the batch again: nothing new after the watermark
    let id = s.submit_batch(&batch).await;
    let d = s.wait(&id).await;
    assert_eq!(d.status(), Some(&StatusString::Finished), "{d:?}");
    assert_eq!(
        s.scalar(r#"SELECT count(*) FROM "mirror"."orders""#).await,
        "2"
    );
    s.delete_stream(&stream).await;
}
