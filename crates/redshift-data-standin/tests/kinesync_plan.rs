//! Runs the SQL kinesync generates (its golden file, tests/golden/plan.sql at
//! the workspace root, so this test follows every change of it) through the stand-in: setup, streaming
//! view, refresh, pending count and a merge batch, over kinesalite.

mod common;

use aws_sdk_redshiftdata::types::StatusString;
use common::{start, unique, Server};

const PLAN: &str = include_str!("../../../tests/golden/plan.sql");

/// (section name, statements) from the `-- name` separated fixture.
fn sections(stream: &str) -> Vec<(String, Vec<String>)> {
    let text = PLAN.replace("kinesync-cdc", stream);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- ") {
            out.push((name.to_string(), String::new()));
        } else if let Some(last) = out.last_mut() {
            last.1.push_str(line);
            last.1.push('\n');
        }
    }
    out.into_iter()
        .map(|(name, body)| {
            let stmts = body
                .split(";\n\n")
                .map(|s| s.trim().trim_end_matches(';').to_string())
                .filter(|s| !s.is_empty())
                .collect();
            (name, stmts)
        })
        .collect()
}

fn section<'a>(all: &'a [(String, Vec<String>)], name: &str) -> &'a [String] {
    &all.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("section {name} missing from the fixture"))
        .1
}

async fn put_events(s: &Server, stream: &str) {
    let events = [
        r#"{"op":"c","source":{"schema":"public","table":"orders","commit_lsn":100,"lsn":100,"ts_ms":1700000000000},"before":null,"after":{"id":1,"amount":"12.50","note":"n1","doc":{"k":1},"at":"2024-01-02T03:04:05Z"}}"#,
        r#"{"op":"c","source":{"schema":"public","table":"orders","commit_lsn":101,"lsn":101,"ts_ms":1700000001000},"before":null,"after":{"id":2,"amount":"1","note":null,"doc":null,"at":null}}"#,
        r#"{"op":"u","source":{"schema":"public","table":"orders","commit_lsn":102,"lsn":102,"ts_ms":1700000002000},"before":null,"after":{"id":1,"amount":"13.00","note":"n1b","doc":{"k":[1,2]},"at":"2024-01-02T03:04:06Z"}}"#,
        r#"{"op":"d","source":{"schema":"public","table":"orders","commit_lsn":103,"lsn":103,"ts_ms":1700000003000},"before":{"id":2},"after":null}"#,
        r#"{"op":"c","source":{"schema":"sales","table":"Line Items","commit_lsn":104,"lsn":104,"ts_ms":1700000004000},"before":null,"after":{"order_id":1,"Line\"No":7,"data":"cafe"}}"#,
    ];
    for (i, e) in events.iter().enumerate() {
        s.put(stream, &format!("k{}", i % 3), e.as_bytes()).await;
    }
}

async fn batch_ok(s: &Server, sqls: &[String]) {
    let refs: Vec<&str> = sqls.iter().map(String::as_str).collect();
    let id = s.submit_batch(&refs).await;
    let d = s.wait(&id).await;
    assert_eq!(
        d.status(),
        Some(&StatusString::Finished),
        "batch failed: {d:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesync_generated_sql_runs_on_the_standin() {
    let s = start().await;
    let stream = unique("kinesync-plan").replace('_', "-");
    s.create_stream(&stream, 2).await;
    put_events(&s, &stream).await;
    let all = sections(&stream);
    let setup = section(&all, "setup");
    // setup runs statement by statement, as `kinesync setup` does
    for st in setup {
        s.ok(st).await;
    }

    for st in section(&all, "refresh") {
        s.ok(st).await;
    }
    let pending = s.query(&section(&all, "pending")[0]).await;
    let mut pending: Vec<String> = pending.iter().map(|r| r.join("/")).collect();
    pending.sort();
    assert_eq!(
        pending,
        [
            "public/orders/c/2",
            "public/orders/d/1",
            "public/orders/u/1",
            "sales/Line Items/c/1"
        ]
    );
    // Every merge batch is fenced by the lease: take it as a run does
    // (LOCK, drop stale, insert: one batch).
    batch_ok(
        &s,
        &section(&all, "lease (acquire, holder, renew, release)")[..3],
    )
    .await;
    // One merge batch, or two when the plan advances the watermark in a
    // second one.
    batch_ok(&s, section(&all, "merge batch 1")).await;
    if all.iter().any(|(n, _)| n == "merge batch 2") {
        batch_ok(&s, section(&all, "merge batch 2")).await;
    }
    assert_eq!(
        s.query(r#"SELECT "id", "amount", "note", JSON_SERIALIZE("doc"), "at" AT TIME ZONE 'UTC', _kinesync_commit_lsn FROM "mirror"."orders" ORDER BY 1"#)
            .await,
        [["1", "13.00", "n1b", r#"{"k": [1, 2]}"#, "2024-01-02 03:04:06", "102"]]
    );
    assert_eq!(
        s.query(r#"SELECT "id", _kinesync_commit_lsn FROM "mirror"."kinesync_tombstones__orders""#)
            .await,
        [["2", "103"]]
    );
    // identifiers folded to lower case in setup and merge alike
    let id = s
        .submit_batch(&[
            r#"SELECT "order_id", "Line""No", TO_HEX("data") FROM "mirror"."sales__line items""#,
        ])
        .await;
    s.wait(&id).await;
    let rows = s.rows_of(&format!("{id}:1")).await;
    assert_eq!(
        rows.iter()
            .map(|r| r.iter().map(common::show).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        [["1", "7", "cafe"]]
    );
    // the watermark moved: a second merge finds nothing new
    batch_ok(&s, section(&all, "merge batch 1")).await;
    assert_eq!(
        s.scalar(r#"SELECT count(*) FROM "mirror"."orders""#).await,
        "1"
    );
    s.delete_stream(&stream).await;
}

/// A table created without case sensitivity is folded to lower case, as
/// Redshift does; a session that turns enable_case_sensitive_identifier on
/// then cannot find it under its mixed-case name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_created_without_case_sensitivity_are_folded() {
    let s = start().await;
    s.ok(r#"CREATE TABLE "Mixed Case" ("Id" BIGINT)"#).await;
    let id = s
        .submit_batch(&[
            "SET enable_case_sensitive_identifier TO true",
            r#"SELECT * FROM "Mixed Case""#,
        ])
        .await;
    let d = s.wait(&id).await;
    assert_eq!(d.status(), Some(&StatusString::Failed));
    let e = d.error().unwrap_or_default();
    assert!(
        e.contains("Mixed Case") && e.contains("does not exist"),
        "{e}"
    );
    // the folded name is what exists
    s.ok(r#"SELECT "id" FROM "mixed case""#).await;
}
