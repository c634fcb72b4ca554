//! `kinesync resync`: an online re-sync of one table, taken by the running
//! producer in chunks in key order while writes to the same rows go on.
//! It repairs a mirror that drifted (rows changed, lost, or left over that
//! the source no longer has), survives the producer being killed in the
//! middle of a chunk (it continues from the last chunk the stream
//! accepted), and leaves mirror == source, row for row and by `verify`.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use support::{connect, Pipeline, DEADLINE};
use tokio::time::Instant;

/// A composite key with text in it (compared by PostgreSQL's collation),
/// 20,000 rows: 200 chunks of 100.
const ITEMS: &str = "
CREATE TABLE public.items (region text, id int, qty int, note text, PRIMARY KEY (region, id));
INSERT INTO public.items
SELECT 'région-' || (g % 7), g, g, repeat('n', g % 40) || '🦀' FROM generate_series(1, 20000) AS g;
";

const CHUNK_ROWS: &str = "100";

#[tokio::test(flavor = "multi_thread")]
async fn a_resync_under_concurrent_writes_and_a_killed_producer_repairs_the_mirror() {
    let mut p = Pipeline::start("resync_online", ITEMS, &["public.items"]).await;
    p.set_env("KINESYNC_SOURCE__RESYNC_CHUNK_ROWS", CHUNK_ROWS);
    p.setup_and_produce().await;
    p.assert_merge_converges(&["public.items"]).await;

    // Drift the mirror: a changed row, lost rows, rows the source never had.
    p.mirror
        .batch_execute(
            "UPDATE mirror.items SET qty = -1 WHERE id = 10;
             DELETE FROM mirror.items WHERE id BETWEEN 100 AND 104;
             INSERT INTO mirror.items (region, id, qty, note, _kinesync_commit_lsn, _kinesync_lsn, _kinesync_op_ts)
             SELECT 'région-0', 900000 + g, 0, 'phantom', 0, 0, now() FROM generate_series(1, 5) AS g;",
        )
        .await
        .expect("drift the mirror");
    let (code, _, _) = p.run_bounded(&["verify"]).await;
    assert_eq!(code, 7, "verify sees the drift before the resync");

    let writing = Arc::new(AtomicBool::new(true));
    let writer = tokio::spawn(write_while(p.source_url.clone(), Arc::clone(&writing)));

    let before_kill = resync_killed_mid_chunk(&mut p).await;
    poll_state(&p, "finished_at IS NOT NULL").await;
    let log = p.producer_log();
    assert!(
        log.contains(&format!("from_row={before_kill}")),
        "the restarted producer continued from the last accepted chunk ({before_kill} rows):\n{log}"
    );

    writing.store(false, Ordering::SeqCst);
    let writes = writer.await.expect("writer");
    assert!(writes > 0, "writes went on during the resync");
    p.assert_merge_converges(&["public.items"]).await;
    let (code, stdout, stderr) = p.run_bounded(&["verify"]).await;
    assert_eq!(code, 0, "verify after the resync:\n{stdout}{stderr}");
    p.stop_producer().await;
}

/// Requests the resync, waits until some chunks are accepted, blocks the
/// next chunk with a table lock, kills the producer during it and starts
/// it again. Returns the rows copied before the kill. (A resync that
/// finished before the lock was taken is requested again.)
async fn resync_killed_mid_chunk(p: &mut Pipeline) -> i64 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        p.run_ok(&["resync", "public.items"]).await;
        let copied = poll_state(p, "rows_copied >= 300 OR finished_at IS NOT NULL").await;
        let locker = connect(&p.source_url).await;
        locker
            .batch_execute("BEGIN; LOCK TABLE public.items IN ACCESS EXCLUSIVE MODE")
            .await
            .expect("lock");
        let row = p
            .source
            .query_one(
                "SELECT rows_copied, finished_at IS NOT NULL FROM public.kinesync_resync WHERE slot = $1",
                &[&p.name],
            )
            .await
            .expect("resync state");
        let (rows, finished): (i64, bool) = (row.get(0), row.get(1));
        if !finished {
            assert!(rows >= copied, "progress only grows");
            p.kill_producer().await;
            locker.batch_execute("ROLLBACK").await.expect("unlock");
            p.start_producer().await;
            return rows;
        }
        locker.batch_execute("ROLLBACK").await.expect("unlock");
        assert!(
            Instant::now() < deadline,
            "the resync always finished before the lock"
        );
    }
}

/// Polls the request row until `condition` holds; its rows_copied.
async fn poll_state(p: &Pipeline, condition: &str) -> i64 {
    let deadline = Instant::now() + DEADLINE;
    let query =
        format!("SELECT rows_copied FROM public.kinesync_resync WHERE slot = $1 AND ({condition})");
    loop {
        let row = p.source.query_opt(&query, &[&p.name]).await.expect("state");
        if let Some(row) = row {
            return row.get(0);
        }
        assert!(
            Instant::now() < deadline,
            "resync state never reached {condition}; producer log:\n{}",
            p.producer_log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Random single-row writes to the resynced rows until told to stop:
/// updates, deletes, inserts, and key changes. Returns how many.
async fn write_while(url: String, writing: Arc<AtomicBool>) -> u64 {
    let client = connect(&url).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(18);
    let mut writes = 0;
    while writing.load(Ordering::SeqCst) || writes == 0 {
        let id: i32 = rng.gen_range(1..=20_000);
        let statement = match rng.gen_range(0..4) {
            0 => "UPDATE public.items SET qty = qty + 1, note = note || 'u' WHERE id = $1",
            1 => "DELETE FROM public.items WHERE id = $1",
            2 => "INSERT INTO public.items VALUES ('région-x', $1, 0, 'new') ON CONFLICT DO NOTHING",
            _ => {
                "UPDATE public.items AS i SET id = i.id + 100000 WHERE i.id = $1 AND NOT EXISTS \
                 (SELECT 1 FROM public.items AS o WHERE o.region = i.region AND o.id = i.id + 100000)"
            }
        };
        client.execute(statement, &[&id]).await.expect("write");
        writes += 1;
    }
    writes
}

#[tokio::test(flavor = "multi_thread")]
async fn resync_wait_follows_the_copy_and_the_sweep_removes_rows_the_source_lost() {
    let mut p = Pipeline::start(
        "resync_wait",
        "CREATE TABLE public.small (id int PRIMARY KEY, v text);
         INSERT INTO public.small SELECT g, 'v' || g FROM generate_series(1, 50) AS g;",
        &["public.small"],
    )
    .await;
    p.setup_and_produce().await;
    p.assert_merge_converges(&["public.small"]).await;
    // Drift: a row the source does not have, a stale value.
    p.mirror
        .batch_execute(
            "INSERT INTO mirror.small (id, v, _kinesync_commit_lsn, _kinesync_lsn, _kinesync_op_ts)
             VALUES (1000, 'lost in the source', 0, 0, now());
             UPDATE mirror.small SET v = 'stale' WHERE id = 7;",
        )
        .await
        .expect("drift the mirror");

    let (code, stdout, stderr) = p.run_bounded(&["resync", "public.small", "--wait"]).await;
    assert_eq!(code, 0, "resync --wait:\n{stdout}{stderr}");
    assert!(
        stdout.contains("resync requested: public.small"),
        "{stdout}"
    );
    assert!(
        stdout.contains("public.small: resync finished at") && stdout.contains("(50 rows copied)"),
        "{stdout}"
    );
    let status = p.run_ok(&["status"]).await;
    assert!(
        status.contains("public.small: resync finished at"),
        "{status}"
    );
    p.assert_merge_converges(&["public.small"]).await;
    p.stop_producer().await;
    p.wait_for_slot_released().await;
    let report = p.run_ok(&["teardown", "--yes"]).await;
    assert!(
        report.contains("deleted 1 resync request(s) of slot \"resync_wait\""),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resync_of_a_table_the_producer_does_not_stream_is_refused() {
    let p = Pipeline::start(
        "resync_refused",
        "CREATE TABLE public.kept (id int PRIMARY KEY); CREATE TABLE public.other (id int PRIMARY KEY);",
        &["public.kept"],
    )
    .await;
    let outcome = p.run_bounded(&["resync", "public.other"]).await;
    support::assert_one_line_error(
        &outcome,
        Some(2),
        &["resync: public.other is not in source.tables (public.kept)"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_added_to_the_configuration_is_back_filled_and_merged() {
    let mut p = Pipeline::start(
        "resync_added",
        "CREATE TABLE public.first (id int PRIMARY KEY, v text);
         INSERT INTO public.first VALUES (1, 'a');",
        &["public.first"],
    )
    .await;
    p.setup_and_produce().await;
    p.assert_merge_converges(&["public.first"]).await;
    // A table with rows of its own, created under a `schema.*` entry.
    p.source
        .batch_execute(
            "CREATE TABLE public.later (id int PRIMARY KEY, v text);
             INSERT INTO public.later SELECT g, 'old ' || g FROM generate_series(1, 500) AS g;",
        )
        .await
        .expect("new table");
    p.stop_producer().await;
    p.set_config("source", "tables = [\"public.*\"]");
    p.start_producer().await;
    p.source
        .batch_execute("UPDATE public.later SET v = 'new' WHERE id <= 10")
        .await
        .expect("writes");
    p.wait_for_resyncs().await;
    assert!(
        p.producer_log()
            .contains("their existing rows are copied by a resync while streaming"),
        "{}",
        p.producer_log()
    );
    p.assert_merge_converges(&["public.first", "public.later"])
        .await;
    // The request table, in the same schema, is not one of the tables.
    let (_, stdout, _) = p.run_bounded(&["check", "--no-write", "--json"]).await;
    assert!(stdout.contains("public.later"), "{stdout}");
    assert!(!stdout.contains("kinesync_resync"), "{stdout}");
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_column_added_with_a_volatile_default_re_syncs_its_table() {
    let mut p = Pipeline::start(
        "resync_volatile",
        "CREATE TABLE public.t (id int PRIMARY KEY, v text);
         INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 40) AS g;
         CREATE TABLE public.u (id int PRIMARY KEY, v text);
         INSERT INTO public.u SELECT g, 'v' || g FROM generate_series(1, 40) AS g;",
        &["public.t", "public.u"],
    )
    .await;
    p.setup_and_produce().await;
    p.assert_merge_converges(&["public.t", "public.u"]).await;
    // A serial column and an identity column (no default of its own in
    // the catalog): PostgreSQL rewrites the table with a value per row
    // and sends no change for any of them.
    p.source
        .batch_execute(
            "ALTER TABLE public.t ADD COLUMN n bigserial;
             ALTER TABLE public.u ADD COLUMN i int GENERATED BY DEFAULT AS IDENTITY;
             INSERT INTO public.u (id, v) VALUES (100, 'after');
             INSERT INTO public.t (id, v) VALUES (100, 'after');",
        )
        .await
        .expect("add column");
    p.wait_for_resyncs_of(&["public.t", "public.u"]).await;
    let log = p.producer_log();
    assert!(
        log.contains(
            "a column added with a volatile default rewrote the table: re-syncing the table"
        ),
        "{log}"
    );
    p.assert_merge_converges(&["public.t", "public.u"]).await;
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn columns_added_with_volatile_defaults_while_the_producer_was_stopped_re_sync_their_table() {
    let mut p = Pipeline::start(
        "resync_stopped",
        "CREATE TABLE public.t (id int PRIMARY KEY, v text);
         INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 40) AS g;
         CREATE TABLE public.calm (id int PRIMARY KEY, v text);
         INSERT INTO public.calm SELECT g, 'v' || g FROM generate_series(1, 10) AS g;",
        &["public.t", "public.calm"],
    )
    .await;
    p.setup_and_produce().await;
    p.assert_merge_converges(&["public.t", "public.calm"]).await;
    p.stop_producer().await;
    // An identity column and a volatile default, each a rewrite with a
    // value per row and no change event; no change before them, so the
    // first Relation message after the restart already has both columns.
    // A constant default is kept (attmissingval): no re-sync for it.
    p.source
        .batch_execute(
            "ALTER TABLE public.t ADD COLUMN n int GENERATED ALWAYS AS IDENTITY;
             ALTER TABLE public.t ADD COLUMN r float8 DEFAULT random();
             ALTER TABLE public.calm ADD COLUMN k int DEFAULT 7;",
        )
        .await
        .expect("add columns");
    p.start_producer().await;
    p.wait_for_resyncs_of(&["public.t"]).await;
    let log = p.producer_log();
    assert!(
        log.contains("while the producer was stopped rewrote the tables: their existing rows are copied by a resync while streaming"),
        "{log}"
    );
    let requested: Vec<String> = p
        .source
        .query(
            "SELECT table_name FROM public.kinesync_resync ORDER BY 1",
            &[],
        )
        .await
        .expect("requests")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        requested,
        ["public.t"],
        "only the rewritten table is re-synced"
    );
    // calm's new column comes with the producer's shape probe.
    p.assert_merge_converges_eventually(&["public.t", "public.calm"])
        .await;
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn partitions_attached_or_detached_while_streaming_re_sync_the_root() {
    let mut p = Pipeline::start(
        "resync_partitions",
        "CREATE TABLE public.events (id int, at date NOT NULL, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         INSERT INTO public.events SELECT g, DATE '2024-01-01' + g * 2, 'v' || g FROM generate_series(1, 300) AS g;",
        &["public.events"],
    )
    .await;
    p.setup_and_produce().await;
    p.assert_merge_converges(&["public.events"]).await;
    // A table with rows of its own becomes a partition (its rows were never
    // streamed); another partition leaves with its rows (no delete events).
    p.source
        .batch_execute(
            "BEGIN;
             CREATE TABLE public.events_2026 (LIKE public.events);
             INSERT INTO public.events_2026 SELECT 1000 + g, DATE '2026-01-01' + g, 'attached' FROM generate_series(1, 50) AS g;
             ALTER TABLE public.events ATTACH PARTITION public.events_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
             ALTER TABLE public.events DETACH PARTITION public.events_2024;
             COMMIT;",
        )
        .await
        .expect("attach and detach");
    p.wait_for_resyncs().await;
    assert!(
        p.producer_log()
            .contains("a partition was attached or detached: re-syncing the table"),
        "{}",
        p.producer_log()
    );
    p.assert_merge_converges(&["public.events"]).await;
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_created_under_a_schema_entry_while_streaming_is_captured_and_back_filled() {
    let mut p = Pipeline::start(
        "resync_created",
        "CREATE SCHEMA app;
         CREATE TABLE app.first (id int PRIMARY KEY, v text);
         INSERT INTO app.first VALUES (1, 'a');",
        &["app.*"],
    )
    .await;
    p.setup_and_produce().await;
    p.assert_merge_converges(&["app.first"]).await;
    // Rows committed before the producer notices the table (the snapshot of
    // it comes from the resync) and after (its own change events).
    p.source
        .batch_execute(
            "CREATE TABLE app.created (id int PRIMARY KEY, v text);
             INSERT INTO app.created SELECT g, 'before ' || g FROM generate_series(1, 300) AS g;",
        )
        .await
        .expect("new table");
    p.wait_for_resyncs().await;
    assert!(
        p.producer_log()
            .contains("a table was created under a schema.* entry: re-syncing the table"),
        "{}",
        p.producer_log()
    );
    p.source
        .batch_execute(
            "UPDATE app.created SET v = 'after' WHERE id <= 10;
             DELETE FROM app.created WHERE id > 290;
             INSERT INTO app.created VALUES (1000, 'new');",
        )
        .await
        .expect("changes");
    p.assert_merge_converges(&["app.first", "app.created"])
        .await;
    // A restart knows the table: it is not back-filled again.
    p.stop_producer().await;
    p.start_producer().await;
    p.sync_producer().await;
    assert!(
        !p.producer_log().contains("tables added since the snapshot"),
        "{}",
        p.producer_log()
    );
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_renamed_while_streaming_stops_the_producer_with_the_fix() {
    // With a change after the rename (the stream's Relation message names
    // it, or the publication check does, whichever comes first), and
    // without one (only the publication check can tell).
    for (name, after) in [
        (
            "resync_renamed",
            "INSERT INTO public.new_name VALUES (3, 'c');",
        ),
        ("resync_renamed_quiet", ""),
    ] {
        let mut p = Pipeline::start(
            name,
            "CREATE TABLE public.old_name (id int PRIMARY KEY, v text);
             INSERT INTO public.old_name VALUES (1, 'a');",
            &["public.old_name"],
        )
        .await;
        p.setup_and_produce().await;
        p.source
            .batch_execute("INSERT INTO public.old_name VALUES (2, 'b')")
            .await
            .expect("write");
        p.assert_merge_converges(&["public.old_name"]).await;
        p.source
            .batch_execute(&format!(
                "ALTER TABLE public.old_name RENAME TO new_name; {after}"
            ))
            .await
            .expect("rename");
        let (code, log) = p.wait_for_producer_exit().await;
        assert_ne!(code, 0, "{log}");
        assert!(
            log.contains("table public.old_name was renamed to public.new_name while streaming")
                && log.contains("Put public.new_name in source.tables in place of public.old_name"),
            "{name}: {log}"
        );
    }
}
