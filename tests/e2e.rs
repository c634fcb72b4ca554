//! End to end: PostgreSQL -> `kinesync produce` -> Kinesis stand-in ->
//! `kinesync merge --once` through the Data API stand-in -> mirror, which
//! must equal the source row by row.

mod support;

use support::Pipeline;

const ACCOUNTS: &str = "
CREATE TABLE public.accounts (
    id bigint PRIMARY KEY,
    owner text NOT NULL,
    balance numeric(12,2),
    active boolean,
    opened_at timestamptz,
    visits integer
);
INSERT INTO public.accounts VALUES
    (1, 'ada', 10.50, true, '2024-01-01 10:00:00+00', 1),
    (2, 'bob', 20.00, false, '2024-02-01 11:30:00.123456+02', NULL),
    (3, 'cy', NULL, NULL, NULL, 3);
";

#[tokio::test(flavor = "multi_thread")]
async fn inserts_updates_key_changes_and_deletes_reach_the_mirror() {
    let mut p = Pipeline::start("e2e_basic", ACCOUNTS, &["public.accounts"]).await;
    p.setup().await;
    p.start_producer().await;

    // Several changes per key in one merge window: only the last may win.
    p.source
        .batch_execute(
            "UPDATE accounts SET balance = 11.00 WHERE id = 1;
             UPDATE accounts SET balance = 12.00, visits = 2 WHERE id = 1;
             UPDATE accounts SET id = 20 WHERE id = 2;             -- primary-key change
             DELETE FROM accounts WHERE id = 3;
             INSERT INTO accounts VALUES (4, 'dee', 0.01, true, now(), NULL);
             UPDATE accounts SET owner = 'dee2', active = NULL WHERE id = 4;",
        )
        .await
        .expect("first writes");
    p.sync_producer().await;
    let summary = p.merge_once().await;
    assert!(
        summary.contains("merge ok"),
        "unexpected summary: {summary}"
    );
    p.assert_mirror_equals_source("public.accounts").await;

    // A second window: a deleted key comes back, another key changes twice.
    p.source
        .batch_execute(
            "INSERT INTO accounts VALUES (3, 'cy-again', 3.30, false, '1999-12-31 23:59:59+00', 33);
             UPDATE accounts SET id = 2 WHERE id = 20;
             UPDATE accounts SET owner = 'bob2' WHERE id = 2;
             DELETE FROM accounts WHERE id = 1;",
        )
        .await
        .expect("second writes");
    p.sync_producer().await;
    p.merge_once().await;
    p.assert_mirror_equals_source("public.accounts").await;

    // Nothing new: a merge is a no-op and the mirror stays equal.
    let summary = p.merge_once().await;
    assert!(
        summary.contains("nothing new"),
        "unexpected summary: {summary}"
    );
    p.assert_mirror_equals_source("public.accounts").await;
    p.stop_producer().await;
}
