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
    p.setup_and_produce().await;

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
    p.assert_merge_converges(&["public.accounts"]).await;

    // Nothing new: a merge is a no-op and the mirror stays equal.
    let summary = p.merge_once().await;
    assert!(
        summary.contains("nothing new"),
        "unexpected summary: {summary}"
    );
    p.assert_mirror_equals_source("public.accounts").await;
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_column_added_on_the_source_appears_in_the_mirror() {
    let mut p = Pipeline::start("e2e_addcol", ACCOUNTS, &["public.accounts"]).await;
    p.setup_and_produce().await;
    p.source
        .batch_execute("UPDATE accounts SET visits = 7 WHERE id = 1")
        .await
        .expect("write");
    p.sync_producer().await;
    p.merge_once().await;

    p.source
        .batch_execute(
            "ALTER TABLE accounts ADD COLUMN tier text;
             UPDATE accounts SET tier = 'gold' WHERE id = 1;
             INSERT INTO accounts VALUES (9, 'new', 1, true, now(), 1, 'silver');",
        )
        .await
        .expect("schema change");
    p.sync_producer().await;
    p.merge_once().await;
    // Rows not touched since keep NULL in the new column, as on the source.
    p.assert_mirror_equals_source("public.accounts").await;
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn columns_added_with_a_default_reach_the_rows_older_than_them() {
    let mut p = Pipeline::start("e2e_default", ACCOUNTS, &["public.accounts"]).await;
    p.setup_and_produce().await;
    p.assert_merge_converges(&["public.accounts"]).await;

    // Row 1 changes before the ALTER (its event has no new column), row 2
    // after it, row 3 sets a new column to NULL explicitly; the others are
    // never touched, yet read the defaults on the source.
    p.source
        .batch_execute(
            "UPDATE accounts SET visits = 7 WHERE id = 1;
             ALTER TABLE accounts ADD COLUMN tier text DEFAULT 'bronze, \"b\" {x}',
                 ADD COLUMN credit numeric(10,2) DEFAULT 12.50,
                 ADD COLUMN since timestamptz DEFAULT '2026-01-01 10:00:00+02',
                 ADD COLUMN tags text[] DEFAULT '{a,\"b c\"}',
                 ADD COLUMN doc jsonb DEFAULT '{\"k\": [1, \"x\"]}',
                 ADD COLUMN blob bytea DEFAULT '\\x00ff';
             UPDATE accounts SET tier = 'gold' WHERE id = 2;
             UPDATE accounts SET credit = NULL WHERE id = 3;
             INSERT INTO accounts (id, owner) VALUES (9, 'new');",
        )
        .await
        .expect("columns with defaults");
    p.assert_merge_converges(&["public.accounts"]).await;

    // Added while the producer is down: its next session's first shape
    // record has the column.
    p.stop_producer().await;
    p.source
        .batch_execute("ALTER TABLE accounts ADD COLUMN level integer DEFAULT 3")
        .await
        .expect("column while stopped");
    p.start_producer().await;
    p.source
        .batch_execute("UPDATE accounts SET level = 4 WHERE id = 2")
        .await
        .expect("write");
    p.assert_merge_converges(&["public.accounts"]).await;
    p.stop_producer().await;
}

/// On PostgreSQL 13 (no shape probe) a row change, which brings the shape.
async fn row_change_before_14(p: &Pipeline, version: i32) {
    if version < 140_000 {
        p.source
            .batch_execute("UPDATE accounts SET visits = visits + 1 WHERE id = 1")
            .await
            .expect("a row change");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_column_added_to_a_table_nobody_writes_to_reaches_the_mirror() {
    let mut p = Pipeline::start("e2e_quiet_ddl", ACCOUNTS, &["public.accounts"]).await;
    p.setup_and_produce().await;
    p.assert_merge_converges(&["public.accounts"]).await;
    // The probe places shape records with logical messages, which
    // PostgreSQL 13's pgoutput does not send: there, as documented
    // (docs/postgres-versions.md), the column comes with the next change.
    let version = p.server_version_num().await;
    // No row changes after either ALTER (from 14 on): pgoutput sends no
    // Relation message, the producer's shape probe places the shape record.
    p.source
        .batch_execute("ALTER TABLE accounts ADD COLUMN tier text DEFAULT 'bronze'")
        .await
        .expect("column while streaming");
    row_change_before_14(&p, version).await;
    p.assert_merge_converges_eventually(&["public.accounts"])
        .await;

    p.stop_producer().await;
    p.source
        .batch_execute("ALTER TABLE accounts ADD COLUMN level integer DEFAULT 3")
        .await
        .expect("column while stopped");
    p.start_producer().await;
    row_change_before_14(&p, version).await;
    p.assert_merge_converges_eventually(&["public.accounts"])
        .await;
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn renamed_columns_keep_their_values_in_the_mirror() {
    let mut p = Pipeline::start("e2e_rename", ACCOUNTS, &["public.accounts"]).await;
    p.setup_and_produce().await;
    p.assert_merge_converges(&["public.accounts"]).await;
    // A plain column and the key, with rows changed before the renames (their
    // events carry the old names) and after, and one deleted after (its
    // tombstone under the new key name).
    p.source
        .batch_execute(
            "UPDATE accounts SET visits = 70 WHERE id = 1;
             ALTER TABLE accounts RENAME COLUMN visits TO visit_count;
             ALTER TABLE accounts RENAME COLUMN id TO account_id;
             UPDATE accounts SET visit_count = 71 WHERE account_id = 2;
             DELETE FROM accounts WHERE account_id = 3;",
        )
        .await
        .expect("renames");
    p.assert_merge_converges(&["public.accounts"]).await;
    let old_names = support::text_rows(
        &p.mirror,
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = 'mirror' AND column_name IN ('visits', 'id')",
    )
    .await;
    assert!(
        old_names.is_empty(),
        "old names left in the mirror: {old_names:?}"
    );
    // The next run merges with the renamed shape only.
    p.source
        .batch_execute("UPDATE accounts SET visit_count = NULL WHERE account_id = 1")
        .await
        .expect("write");
    p.assert_merge_converges(&["public.accounts"]).await;
    p.stop_producer().await;
}

const PEOPLE: &str = "
CREATE TABLE public.people (id bigint PRIMARY KEY, first text, last text, nick text);
INSERT INTO public.people VALUES (1, 'ann', 'ames', 'a'), (2, 'lee', 'lamb', 'l'), (3, 'sam', 'soto', NULL);
";

/// Two columns swapping names, and a column renamed twice within one merge
/// window: each value stays with its column (its attnum), the events read
/// under the name their position had.
#[tokio::test(flavor = "multi_thread")]
async fn swapped_and_chained_renames_keep_every_value_in_its_column() {
    let mut p = Pipeline::start("e2e_swap", PEOPLE, &["public.people"]).await;
    p.setup_and_produce().await;
    p.assert_merge_converges(&["public.people"]).await;
    p.source
        .batch_execute(
            "UPDATE people SET first = 'ann2' WHERE id = 1;
             ALTER TABLE people RENAME COLUMN first TO tmp;
             ALTER TABLE people RENAME COLUMN last TO first;
             ALTER TABLE people RENAME COLUMN tmp TO last;
             UPDATE people SET first = 'lamb2' WHERE id = 2;
             ALTER TABLE people RENAME COLUMN nick TO alias;
             UPDATE people SET alias = 'x' WHERE id = 3;
             ALTER TABLE people RENAME COLUMN alias TO handle;
             UPDATE people SET handle = 'y' WHERE id = 1;",
        )
        .await
        .expect("renames");
    p.assert_merge_converges(&["public.people"]).await;
    // The next run merges with the newest names only.
    p.source
        .batch_execute("UPDATE people SET last = 'sam2', handle = NULL WHERE id = 3")
        .await
        .expect("write");
    p.assert_merge_converges(&["public.people"]).await;
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_producer_killed_mid_stream_resumes_without_loss() {
    let mut p = Pipeline::start("e2e_restart", ACCOUNTS, &["public.accounts"]).await;
    p.setup_and_produce().await;
    p.source
        .batch_execute("INSERT INTO accounts SELECT g, 'bulk', g, true, now(), g FROM generate_series(100, 3100) g")
        .await
        .expect("bulk insert");
    p.kill_producer().await; // SIGKILL, possibly with batches in flight
    p.source
        .batch_execute(
            "UPDATE accounts SET visits = visits + 1 WHERE id % 3 = 0;
             DELETE FROM accounts WHERE id % 5 = 0;",
        )
        .await
        .expect("writes while down");
    p.start_producer().await;
    p.assert_merge_converges(&["public.accounts"]).await;
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_merge_leaves_mirror_and_watermark_unchanged_and_the_next_run_converges() {
    let mut p = Pipeline::start("e2e_failmerge", ACCOUNTS, &["public.accounts"]).await;
    p.setup_and_produce().await;
    p.assert_merge_converges(&["public.accounts"]).await;
    let watermark = "SELECT watermark::text FROM mirror.kinesync_checkpoint";
    let before_rows = p.rows_both("public.accounts").await.1;
    let before_watermark = support::text_rows(&p.mirror, watermark).await;

    // A constraint on the mirror (only possible on the stand-in) makes the
    // merge's INSERT fail in the middle of its batch.
    p.mirror
        .batch_execute(
            "ALTER TABLE mirror.accounts ADD CONSTRAINT no_poison CHECK (owner <> 'poison')",
        )
        .await
        .expect("constraint");
    p.source
        .batch_execute(
            "UPDATE accounts SET balance = 99 WHERE id = 1;
             INSERT INTO accounts VALUES (50, 'poison', 0, true, now(), 0);
             DELETE FROM accounts WHERE id = 3;",
        )
        .await
        .expect("writes");
    p.sync_producer().await;
    let (code, _, stderr) = p.run(&["merge", "--once"]).await;
    assert_eq!(code, 3, "a failed merge exits 3; stderr: {stderr}");
    assert!(
        stderr.contains("no_poison"),
        "the Redshift error text is shown: {stderr}"
    );
    assert_eq!(
        p.rows_both("public.accounts").await.1,
        before_rows,
        "mirror changed by a failed merge"
    );
    assert_eq!(
        support::text_rows(&p.mirror, watermark).await,
        before_watermark,
        "watermark moved"
    );

    p.mirror
        .batch_execute("ALTER TABLE mirror.accounts DROP CONSTRAINT no_poison")
        .await
        .expect("drop");
    p.merge_once().await;
    p.assert_mirror_equals_source("public.accounts").await;
    p.stop_producer().await;
}

/// The summary's counts come from the merge's own counting query (the
/// statements run inside the executor procedure, whose row counts the Data
/// API does not report).
#[tokio::test(flavor = "multi_thread")]
async fn the_run_summary_counts_rows_inserted_updated_and_deleted() {
    let mut p = Pipeline::start("e2e_counts", ACCOUNTS, &["public.accounts"]).await;
    p.setup_and_produce().await;
    p.sync_producer().await;
    let first = p.merge_once().await;
    assert!(
        first.contains(", 3 inserted, 0 updated, 0 deleted"),
        "the snapshot's rows are inserted: {first}"
    );
    p.source
        .batch_execute(
            "UPDATE accounts SET visits = 9 WHERE id IN (1, 2);
             DELETE FROM accounts WHERE id = 3;
             INSERT INTO accounts VALUES (5, 'eve', 1.00, true, now(), 5);
             INSERT INTO accounts VALUES (6, 'fay', 2.00, true, now(), 6);
             DELETE FROM accounts WHERE id = 6;",
        )
        .await
        .expect("writes");
    p.sync_producer().await;
    let second = p.merge_once().await;
    assert!(
        second.contains("public.accounts: 6 events, 1 inserted, 2 updated, 1 deleted"),
        "a row inserted and deleted in one run is neither: {second}"
    );
    p.assert_mirror_equals_source("public.accounts").await;
    p.stop_producer().await;
}

/// A mirror schema set up by a kinesync without the executor procedure
/// (here: the procedure removed from the stand-in's catalog): the first
/// merge batch fails on it, and the run creates it and merges.
#[tokio::test(flavor = "multi_thread")]
async fn a_merge_creates_a_missing_executor_procedure_and_merges() {
    let mut p = Pipeline::start("e2e_executor", ACCOUNTS, &["public.accounts"]).await;
    p.setup_and_produce().await;
    let forget = "DELETE FROM kinesync_standin.procedures WHERE proc_name = 'sp_kinesync_execute'";
    let removed = p
        .mirror
        .execute(forget, &[])
        .await
        .expect("forget the procedure");
    assert_eq!(removed, 1, "setup created the executor procedure");
    p.sync_producer().await;
    let summary = p.merge_once().await;
    assert!(summary.contains("merge ok"), "{summary}");
    p.assert_mirror_equals_source("public.accounts").await;
    let restored: i64 = p
        .mirror
        .query_one(
            "SELECT count(*) FROM kinesync_standin.procedures WHERE proc_name = 'sp_kinesync_execute'",
            &[],
        )
        .await
        .expect("procedures")
        .get(0);
    assert_eq!(restored, 1);
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn only_one_scheduler_merges_at_a_time() {
    let mut p = Pipeline::start("e2e_lease", ACCOUNTS, &["public.accounts"]).await;
    p.setup_and_produce().await;
    p.sync_producer().await;

    // Another scheduler holds the lease: this one skips, says why, exits 5.
    p.mirror
        .batch_execute("INSERT INTO mirror.kinesync_lease VALUES ('merge', 'other-host:42:cafe', now() + interval '1 hour')")
        .await
        .expect("foreign lease");
    let (code, _, stderr) = p.run(&["merge", "--once"]).await;
    assert_eq!(code, 5, "stderr: {stderr}");
    assert!(
        stderr.contains("other-host:42:cafe"),
        "names the holder: {stderr}"
    );
    assert_eq!(
        p.rows_both("public.accounts").await.1.len(),
        0,
        "a skipped run merged nothing"
    );

    // An expired lease is taken over.
    p.mirror
        .batch_execute("UPDATE mirror.kinesync_lease SET expires_at = now() - interval '1 second'")
        .await
        .expect("expire");
    p.merge_once().await;
    p.assert_mirror_equals_source("public.accounts").await;

    // Two schedulers started together: none fails, the mirror is right.
    p.source
        .batch_execute("UPDATE accounts SET visits = 100 WHERE id = 1")
        .await
        .expect("write");
    p.sync_producer().await;
    let (a, b) = tokio::join!(p.run(&["merge", "--once"]), p.run(&["merge", "--once"]));
    for (code, _, stderr) in [&a, &b] {
        assert!(*code == 0 || *code == 5, "exit {code}: {stderr}");
    }
    assert!(a.0 == 0 || b.0 == 0, "one of them merged");
    p.assert_mirror_equals_source("public.accounts").await;
    let leases = support::text_rows(&p.mirror, "SELECT holder FROM mirror.kinesync_lease").await;
    assert!(
        leases.is_empty(),
        "leases are released after a run: {leases:?}"
    );
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_merge_late_against_the_stream_retention_is_reported_loudly() {
    let p = Pipeline::start("e2e_retention", ACCOUNTS, &["public.accounts"]).await;
    p.setup().await;
    p.mirror
        .batch_execute(
            "UPDATE mirror.kinesync_checkpoint SET merged_at = now() - interval '20 hours'",
        )
        .await
        .expect("age the checkpoint");
    let (code, _, stderr) = p.run(&["merge", "--once"]).await;
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(
        stderr.contains("retention"),
        "warns about retention: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_type_change_the_mirror_cannot_follow_stops_with_the_manual_fix() {
    let mut p = Pipeline::start("e2e_typechange", ACCOUNTS, &["public.accounts"]).await;
    p.setup_and_produce().await;
    p.sync_producer().await;
    // The merge learns of the change from the stream's shape record, which
    // comes before the next change of the table.
    p.source
        .batch_execute(
            "ALTER TABLE accounts ALTER COLUMN visits TYPE text;
             UPDATE accounts SET visits = 'many' WHERE id = 1;",
        )
        .await
        .expect("alter");
    p.sync_producer().await;
    p.stop_producer().await;
    let (code, _, stderr) = p.run(&["merge", "--once"]).await;
    assert_eq!(code, 3, "stderr: {stderr}");
    assert!(
        stderr.contains("public.accounts")
            && stderr.contains("visits")
            && stderr.contains("ALTER TABLE"),
        "names table, column and fix: {stderr}"
    );
    assert_eq!(
        stderr
            .trim()
            .lines()
            .filter(|l| l.starts_with("kinesync: error"))
            .count(),
        1,
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_source_is_reached_over_verified_tls_and_a_wrong_ca_is_refused() {
    let ca = std::env::var("KINESYNC_TEST_PG_CA")
        .expect("KINESYNC_TEST_PG_CA is not set: run deploy/local/test");
    let mut p = Pipeline::start("e2e_tls", ACCOUNTS, &["public.accounts"]).await;
    // verify-full checks the host name: use the certificate's DNS name.
    let localhost = p.stack.pg_url.replace("127.0.0.1", "localhost");
    let url = format!("{localhost}/e2e_tls_src?sslmode=verify-full&sslrootcert={ca}");
    p.set_env("KINESYNC_SOURCE__URL", &url);
    p.setup_and_produce().await;
    p.source
        .batch_execute("UPDATE accounts SET visits = 5 WHERE id = 1")
        .await
        .expect("write");
    p.sync_producer().await;
    // Every kinesync session (SQL and replication) is encrypted.
    let row = p
        .source
        .query_one(
            "SELECT count(*) FILTER (WHERE NOT s.ssl), count(*) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'kinesync'",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    let (plain, total): (i64, i64) = (row.get(0), row.get(1));
    assert!(
        total >= 2 && plain == 0,
        "{plain} of {total} kinesync sessions are not encrypted"
    );
    p.merge_once().await;
    p.assert_mirror_equals_source("public.accounts").await;
    p.stop_producer().await;

    // A CA that did not sign the server's certificate: refused, clearly.
    let wrong = p.dir.join("other-ca.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=other",
        ])
        .arg("-keyout")
        .arg(p.dir.join("other.key"))
        .arg("-out")
        .arg(&wrong)
        .output()
        .expect("openssl");
    assert!(made.status.success());
    p.set_env(
        "KINESYNC_SOURCE__URL",
        &format!(
            "{localhost}/e2e_tls_src?sslmode=verify-full&sslrootcert={}",
            wrong.display()
        ),
    );
    // `setup` reads the source (the merge does not: docs/operations.md).
    let (code, _, stderr) = p.run(&["setup"]).await;
    assert_eq!(code, 4, "stderr: {stderr}");
    assert!(
        stderr.to_lowercase().contains("certificate"),
        "names the certificate problem: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_merge_daemon_merges_on_its_schedule_and_stops_cleanly_on_sigterm() {
    let mut p = Pipeline::start("e2e_daemon", ACCOUNTS, &["public.accounts"]).await;
    p.setup_and_produce().await;
    p.source
        .batch_execute("UPDATE accounts SET owner = 'daemon' WHERE id = 2")
        .await
        .expect("write");
    p.sync_producer().await;
    // The test config's schedule is "*/5 * * * * *": every 5 seconds.
    let mut daemon = p.spawn(&["merge"], "merge.log");
    let log_path = p.dir.join("merge.log");
    support::poll("the daemon to log a merge", || async {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        log.contains("merge ok").then_some(())
    })
    .await;
    p.assert_mirror_equals_source("public.accounts").await;
    let pid = daemon.id().expect("daemon pid");
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let status = tokio::time::timeout(support::DEADLINE, daemon.wait())
        .await
        .expect("daemon stops")
        .expect("wait");
    let log = std::fs::read_to_string(p.dir.join("merge.log")).unwrap_or_default();
    assert!(
        status.success(),
        "merge daemon exited with {status} on SIGTERM; log:\n{log}"
    );
    assert!(
        log.contains("merge scheduler stopped"),
        "the daemon says it stopped: {log}"
    );
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unchanged_toast_values_of_snapshot_rows_stay_with_their_own_row() {
    // Every snapshot row has the same position (consistent point, 0): an
    // update that leaves a TOASTed value unchanged must take it from its
    // own row's snapshot event, not from another row's (found by the
    // SIGKILL loop in tests/faults.rs).
    let mut p = Pipeline::start(
        "e2e_toast_snapshot",
        "CREATE TABLE public.docs (id integer PRIMARY KEY, n integer, body text);
         INSERT INTO docs SELECT g, 0, CASE WHEN g % 3 = 0 THEN NULL ELSE
             (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 300) i) END
         FROM generate_series(1, 30) g;",
        &["public.docs"],
    )
    .await;
    p.setup_and_produce().await;
    p.source
        .batch_execute("UPDATE docs SET n = n + 1")
        .await
        .expect("update without touching the TOASTed column");
    p.assert_merge_converges(&["public.docs"]).await;
    p.stop_producer().await;
}

const LINES: &str = "
CREATE TABLE public.lines (
    id bigint PRIMARY KEY,
    qty integer NOT NULL,
    price numeric(10,2),
    total numeric(12,2) GENERATED ALWAYS AS (qty * price) STORED
);
INSERT INTO public.lines (id, qty, price) VALUES (1, 2, 1.25), (2, 3, NULL);
";

/// The mirror's columns of `table`, in order.
async fn mirror_columns(p: &Pipeline, table: &str) -> Vec<String> {
    let sql = format!(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = 'mirror' AND table_name = '{table}' ORDER BY ordinal_position"
    );
    support::text_rows(&p.mirror, &sql)
        .await
        .into_iter()
        .filter_map(|mut row| row.remove(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_generated_columns_reach_the_mirror_on_18_and_are_warned_about_before() {
    let mut p = Pipeline::start("e2e_generated", LINES, &["public.lines"]).await;
    let on_18 = p.server_version_num().await >= 180_000;

    let (code, stdout, stderr) = p.run(&["check", "--no-write"]).await;
    let warned = stdout.contains("table public.lines generated columns");
    assert_eq!(warned, !on_18, "exit {code}: {stdout}{stderr}");

    p.setup_and_produce().await;
    p.source
        .batch_execute(
            "UPDATE lines SET qty = 4 WHERE id = 1;
             UPDATE lines SET price = 2.50 WHERE id = 2;
             INSERT INTO lines (id, qty, price) VALUES (3, 1, 9.99);
             DELETE FROM lines WHERE id = 3;
             INSERT INTO lines (id, qty, price) VALUES (4, 7, 0.10);",
        )
        .await
        .expect("writes");
    p.sync_producer().await;
    p.merge_once().await;
    p.assert_mirror_equals_source("public.lines").await;
    let columns = mirror_columns(&p, "lines").await;
    assert_eq!(
        columns.iter().any(|c| c == "total"),
        on_18,
        "the stored generated column is mirrored exactly on PostgreSQL 18 and later: {columns:?}"
    );
    if on_18 {
        let totals = support::text_rows(
            &p.mirror,
            "SELECT total::text FROM mirror.lines ORDER BY id",
        )
        .await;
        assert_eq!(
            totals,
            [
                [Some("5.00".to_owned())],
                [Some("7.50".to_owned())],
                [Some("0.70".to_owned())]
            ],
            "values computed by the source reach the mirror"
        );
    }
    p.stop_producer().await;
}
