//! Faults the pipeline must survive or refuse loudly (issue 8): random
//! SIGKILLs of the producer, Kinesis failing requests and records, the
//! walsender terminated under a running producer, a slot dropped behind
//! its back. Randomized tests print their seed and the command that re-runs
//! them (`KINESYNC_FAULT_SEED=<seed> deploy/local/test --test faults <test>`).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::kinesis_proxy::{FaultPlan, KinesisProxy};
use support::Pipeline;

/// 5,000 rows: a snapshot that takes a few seconds.
const WORKLOAD_ROWS: &str = "
INSERT INTO items SELECT g, 'snap-' || g, g, g, true, now(), NULL FROM generate_series(1, 5000) g;
";

/// Position `(commit_lsn, lsn)` of a streamed event.
fn position(event: &serde_json::Value) -> (u64, u64) {
    let source = &event["source"];
    (
        source["commit_lsn"].as_u64().unwrap_or_default(),
        source["lsn"].as_u64().unwrap_or_default(),
    )
}

/// A deadlock (either side of it is rolled back).
fn is_deadlock(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED)
}

/// Kills of the producer in `random_sigkills_...` (CI's reduced form).
const KILLS: usize = 8;

#[tokio::test(flavor = "multi_thread")]
async fn random_sigkills_of_the_producer_lose_no_committed_change() {
    const TEST: &str = "random_sigkills_of_the_producer_lose_no_committed_change";
    let seed = support::fault_seed(TEST);
    let mut rng = StdRng::seed_from_u64(seed);
    let tables = ["public.items", "public.pairs"];
    let mut p = Pipeline::start(
        "fault_kills",
        &format!("{}{WORKLOAD_ROWS}", support::workload::ITEMS_AND_PAIRS),
        &tables,
    )
    .await;
    // The ground truth: a test_decoding slot created before the producer's,
    // so it sees every change the producer must deliver.
    let truth_slot = "fault_kills_truth";
    p.source
        .query(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
            &[&truth_slot],
        )
        .await
        .expect("drop old truth slot");
    p.source
        .query(
            "SELECT pg_create_logical_replication_slot($1, 'test_decoding')",
            &[&truth_slot],
        )
        .await
        .expect("truth slot");
    p.setup().await;

    // A random workload, all the time, on its own session.
    let writer = support::connect(&format!("{}/fault_kills_src", p.stack.pg_url)).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writing = {
        let stop = std::sync::Arc::clone(&stop);
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        tokio::spawn(async move {
            let mut next_id = 10_000;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let transaction =
                    support::workload::random_transaction(&mut rng, &mut next_id, 8, false);
                // A deadlock with the test's large transactions rolls one
                // back: nothing committed, nothing to deliver.
                if let Err(e) = writer.batch_execute(&transaction).await {
                    assert!(is_deadlock(&e), "seed {seed}: {transaction}: {e}");
                    writer.batch_execute("ROLLBACK").await.expect("rollback");
                }
            }
        })
    };

    let mut during_snapshot = 0;
    let mut after_large_transaction = 0;
    for round in 0..KILLS {
        p.start_producer().await;
        if round < 2 {
            // During the snapshot (5,000 rows: a second or more of records).
            let within = if round == 0 { 50 } else { 300 };
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..within))).await;
        } else {
            let source = &p.source;
            let publication = p.name.clone();
            support::poll("the snapshot to complete", || async {
                let row = source
                    .query_one(
                        "SELECT coalesce(obj_description(oid, 'pg_publication'), '') FROM pg_publication WHERE pubname = $1",
                        &[&publication],
                    )
                    .await
                    .ok()?;
                row.get::<_, String>(0).contains("snapshot complete").then_some(())
            })
            .await;
            if round % 2 == 0 {
                // Inside a large transaction: thousands of events queued.
                let bulk = format!(
                    "UPDATE items SET qty = qty + 1, label = 'bulk {round}' WHERE id % 2 = {}",
                    round % 4 / 2
                );
                while let Err(e) = p.source.batch_execute(&bulk).await {
                    assert!(is_deadlock(&e), "seed {seed}: large transaction: {e}");
                }
                after_large_transaction += 1;
            }
            // With batches in flight: the kill lands at a random moment.
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..800))).await;
        }
        let marker = p
            .source
            .query_one(
                "SELECT coalesce(obj_description(oid, 'pg_publication'), '') FROM pg_publication WHERE pubname = $1",
                &[&p.name],
            )
            .await
            .expect("marker");
        if !marker.get::<_, String>(0).contains("snapshot complete") {
            during_snapshot += 1;
        }
        p.kill_producer().await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writing.await.expect("writer");
    p.start_producer().await;
    p.sync_producer().await;
    assert!(
        during_snapshot >= 1 && after_large_transaction >= 1,
        "seed {seed}: every kind of kill happened ({during_snapshot} during the snapshot, {after_large_transaction} after a large transaction)"
    );

    // Every committed change after the final snapshot's consistent point is
    // in the stream: per transaction, as many distinct events as changes.
    let marker: String = p
        .source
        .query_one(
            "SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = $1",
            &[&p.name],
        )
        .await
        .expect("marker")
        .get(0);
    let consistent_point: u64 = marker
        .split("consistent point ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|lsn| {
            let (hi, lo) = lsn.split_once('/')?;
            Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
        })
        .unwrap_or_else(|| panic!("no consistent point in marker {marker:?}"));
    let truth_rows = p
        .source
        .query(
            "SELECT (lsn - '0/0')::text, xid::text, data FROM pg_logical_slot_get_changes($1, NULL, NULL, 'include-xids', '1', 'skip-empty-xacts', '1')",
            &[&truth_slot],
        )
        .await
        .expect("truth changes");
    p.source
        .query("SELECT pg_drop_replication_slot($1)", &[&truth_slot])
        .await
        .expect("drop truth slot");
    let mut truth: BTreeMap<String, usize> = BTreeMap::new();
    let mut committed_after: BTreeSet<String> = BTreeSet::new();
    for row in &truth_rows {
        let lsn: u64 = row.get::<_, String>(0).parse().expect("lsn");
        let xid: String = row.get(1);
        let data: String = row.get(2);
        if data.starts_with("table public.items:") || data.starts_with("table public.pairs:") {
            *truth.entry(xid).or_default() += 1;
        } else if data.starts_with("COMMIT") && lsn > consistent_point {
            committed_after.insert(xid);
        }
    }
    let mut streamed: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for record in p.read_stream().await {
        let source = &record.event["source"];
        if source["snapshot"] == "false" {
            streamed
                .entry(source["txId"].to_string())
                .or_default()
                .insert(source["lsn"].as_u64().unwrap_or_default());
        }
    }
    let missing: Vec<String> = truth
        .iter()
        .filter(|(xid, _)| committed_after.contains(*xid))
        .filter_map(|(xid, changes)| {
            let got = streamed.get(xid).map_or(0, BTreeSet::len);
            (got != *changes).then(|| format!("xid {xid}: {changes} changes, {got} in the stream"))
        })
        .collect();
    let checked = truth
        .keys()
        .filter(|x| committed_after.contains(*x))
        .count();
    assert!(
        checked > 10,
        "seed {seed}: too few transactions checked ({checked})"
    );
    assert!(
        missing.is_empty(),
        "seed {seed}: committed changes missing from the stream ({} of {checked} transactions): {:?}\nproducer log:\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        p.producer_log()
    );
    p.merge_once().await;
    for table in tables {
        p.assert_mirror_equals_source(table).await;
    }
    p.stop_producer().await;
}

const HOT_ROWS: &str = "
CREATE TABLE public.hot (id integer PRIMARY KEY, v bigint NOT NULL, doc text);
ALTER TABLE public.hot ALTER COLUMN doc SET STORAGE EXTERNAL;
INSERT INTO hot SELECT g, 0, NULL FROM generate_series(1, 3) g;
UPDATE hot SET doc = repeat('out of line ', 1000) WHERE id = 3;
";

#[tokio::test(flavor = "multi_thread")]
async fn under_position_ordering_hot_rows_share_requests_and_partial_failures_still_converge() {
    const TEST: &str =
        "under_position_ordering_hot_rows_share_requests_and_partial_failures_still_converge";
    let seed = support::fault_seed(TEST);
    let mut p = Pipeline::start("fault_hot", HOT_ROWS, &["public.hot"]).await;
    let proxy = KinesisProxy::start(
        &p.stack.kinesis_url,
        FaultPlan {
            seed,
            throttle: 0.05,
            partial: 0.3,
            record_failure: 0.3,
            ..FaultPlan::NONE
        },
    )
    .await;
    p.setup().await;
    p.set_env("AWS_ENDPOINT_URL_KINESIS", &proxy.url);
    p.set_config(
        "kinesis",
        "ordering = \"position\"\nmax_records_per_request = 50",
    );
    p.start_producer().await;
    // Rows 1 and 2 are updated by every transaction (counters); row 3's
    // updates leave its out-of-line doc unchanged (those events must still
    // follow the row's older ones) except every 25th, which rewrites it.
    // One transaction holds many changes of each hot row.
    for txn in 1..=40 {
        let mut sql = String::from("BEGIN;");
        for _ in 0..5 {
            sql.push_str("UPDATE hot SET v = v + 1 WHERE id IN (1, 2); UPDATE hot SET v = v + 1 WHERE id = 3;");
        }
        if txn % 25 == 0 {
            sql.push_str(&format!(
                "UPDATE hot SET doc = repeat('rewritten {txn} ', 900) WHERE id = 3;"
            ));
        }
        sql.push_str("COMMIT;");
        p.source.batch_execute(&sql).await.expect("hot transaction");
        if txn % 10 == 0 {
            p.sync_producer().await;
            p.merge_once().await;
        }
    }
    p.sync_producer().await;
    p.merge_once().await;
    p.assert_mirror_equals_source("public.hot").await;
    let stats = proxy.stats();
    assert!(
        stats.partial > 0 && stats.failed_records > 0,
        "seed {seed}: the partial failures happened: {stats:?}"
    );
    // Under kinesis.ordering = "key" a request never holds two records of
    // one key: a hot row moves one event per round trip.
    assert!(
        stats.most_records_of_one_key >= 2,
        "seed {seed}: a hot row's changes shared a request: {stats:?}"
    );
    p.stop_producer().await;
}

const COUNTERS: &str = "
CREATE TABLE public.counters (id integer PRIMARY KEY, v bigint NOT NULL, txn integer NOT NULL);
INSERT INTO counters SELECT g, 0, 0 FROM generate_series(1, 30) g;
";

#[tokio::test(flavor = "multi_thread")]
async fn kinesis_throttling_5xx_timeouts_and_partial_failures_lose_nothing_and_keep_key_order() {
    const TEST: &str =
        "kinesis_throttling_5xx_timeouts_and_partial_failures_lose_nothing_and_keep_key_order";
    let seed = support::fault_seed(TEST);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut p = Pipeline::start("fault_kinesis", COUNTERS, &["public.counters"]).await;
    let proxy = KinesisProxy::start(
        &p.stack.kinesis_url,
        // After the first requests (every fault once, whatever the seed),
        // about one request in five fails: enough to keep retries, backoff
        // and partial answers busy all along, few enough that the longest
        // per-key retry chain fits the deadline on a loaded CI machine.
        FaultPlan {
            seed,
            throttle: 0.05,
            limit_exceeded: 0.03,
            server_error: 0.05,
            hang: 0.02,
            partial: 0.15,
            record_failure: 0.3,
        },
    )
    .await;
    p.setup().await;
    p.set_env("AWS_ENDPOINT_URL_KINESIS", &proxy.url);
    p.set_env("KINESYNC_TELEMETRY__LISTEN", "127.0.0.1:0");
    p.set_config(
        "kinesis",
        "max_records_per_request = 10\nrequest_timeout_secs = 1",
    );
    p.start_producer().await;
    let metrics_addr = support::telemetry::listen_address(&p.dir.join("produce.log")).await;

    // Transactions updating a few counters each; after each, the WAL
    // insert position (past its commit record) is noted.
    let mut written: Vec<(i32, u64, u64)> = Vec::new(); // (txn, rows, lsn after commit)
    for txn in 1..=60 {
        let ids: BTreeSet<i32> = (0..rng.gen_range(1..6))
            .map(|_| rng.gen_range(1..=30))
            .collect();
        let list = ids
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let rows = p
            .source
            .execute(
                &format!("UPDATE counters SET v = v + 1, txn = {txn} WHERE id IN ({list})"),
                &[],
            )
            .await
            .expect("update");
        let lsn: String = p
            .source
            .query_one("SELECT (pg_current_wal_insert_lsn() - '0/0')::text", &[])
            .await
            .expect("lsn")
            .get(0);
        written.push((txn, rows, lsn.parse().expect("lsn")));
        if txn % 6 == 0 {
            // The slot never confirms past an undelivered event: every
            // transaction below the confirmed LSN is wholly in the stream.
            let confirmed: String = p
                .source
                .query_one(
                    "SELECT (confirmed_flush_lsn - '0/0')::text FROM pg_replication_slots WHERE slot_name = $1",
                    &[&p.name],
                )
                .await
                .expect("slot")
                .get(0);
            let confirmed: u64 = confirmed.parse().expect("confirmed lsn");
            let mut per_txn: BTreeMap<i64, usize> = BTreeMap::new();
            for record in p.read_stream().await {
                if record.event["op"] == "u" {
                    *per_txn
                        .entry(record.event["after"]["txn"].as_i64().unwrap_or_default())
                        .or_default() += 1;
                }
            }
            for (txn, rows, after) in &written {
                if *after <= confirmed {
                    let got = per_txn.get(&i64::from(*txn)).copied().unwrap_or(0);
                    assert!(
                        got >= *rows as usize,
                        "seed {seed}: the slot confirmed {confirmed} past transaction {txn} (ends before {after}) but only {got} of its {rows} events are in the stream"
                    );
                }
            }
        }
    }
    p.sync_producer().await;
    let stats = proxy.stats();
    eprintln!("seed {seed}: {stats:?}");
    assert!(
        stats.throttled > 0
            && stats.limit_exceeded > 0
            && stats.server_errors > 0
            && stats.hung > 0
            && stats.failed_records > 0
            && stats.passed > 0,
        "seed {seed}: every fault was injected at least once: {stats:?}"
    );

    // Per key, the stream holds the events in position order, and every
    // update is there.
    let records = p.read_stream().await;
    let mut last: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut updates: BTreeMap<i64, usize> = BTreeMap::new();
    for record in &records {
        let at = position(&record.event);
        if let Some(before) = last.insert(record.partition_key.clone(), at) {
            assert!(
                before <= at,
                "seed {seed}: key {} reordered in the stream: {before:?} then {at:?}",
                record.partition_key
            );
        }
        if record.event["op"] == "u" {
            *updates
                .entry(record.event["after"]["txn"].as_i64().unwrap_or_default())
                .or_default() += 1;
        }
    }
    for (txn, rows, _) in &written {
        let got = updates.get(&i64::from(*txn)).copied().unwrap_or(0);
        assert!(
            got >= *rows as usize,
            "seed {seed}: transaction {txn} updated {rows} rows, {got} events in the stream"
        );
    }
    assert!(
        p.producer_log().contains("retrying"),
        "the producer logs its retries:\n{}",
        p.producer_log()
    );
    // The metrics count what went wrong: failed requests, partial answers,
    // and the failed records by error code.
    let metrics = support::telemetry::get(&metrics_addr, "/metrics")
        .await
        .expect("producer /metrics")
        .body;
    let counted = |series: &str| support::telemetry::sample(&metrics, series).unwrap_or(0.0);
    for series in [
        "kinesync_put_requests_total{result=\"failed\"}",
        "kinesync_put_requests_total{result=\"partial\"}",
        "kinesync_records_failed_total{code=\"ProvisionedThroughputExceededException\"}",
    ] {
        assert!(
            counted(series) > 0.0,
            "seed {seed}: {series} counted nothing:\n{metrics}"
        );
    }
    p.merge_once().await;
    p.assert_mirror_equals_source("public.counters").await;
    p.stop_producer().await;
}

const TABLE: &str = "
CREATE TABLE public.ledger (id bigint PRIMARY KEY, amount numeric(12,2), memo text);
INSERT INTO public.ledger SELECT g, g, 'start' FROM generate_series(1, 100) g;
";

#[tokio::test(flavor = "multi_thread")]
async fn a_terminated_walsender_is_survived_by_reconnecting_and_nothing_is_lost() {
    let mut p = Pipeline::start("fault_walsender", TABLE, &["public.ledger"]).await;
    p.setup_and_produce().await;
    p.source
        .batch_execute("UPDATE ledger SET memo = 'before' WHERE id <= 50")
        .await
        .expect("write");
    p.sync_producer().await;

    // Kill the server side of the replication connection, twice, with
    // writes in between: the producer must reconnect and resume.
    for round in 0..2 {
        // (After the first round the producer is still reconnecting: wait.)
        let source = &p.source;
        support::poll(
            &format!("the producer's walsender (round {round})"),
            || async {
                let killed = source
                    .query_one(
                        "SELECT count(pg_terminate_backend(active_pid)) FROM pg_replication_slots \
                     WHERE slot_name = 'fault_walsender' AND active_pid IS NOT NULL",
                        &[],
                    )
                    .await
                    .ok()?;
                (killed.get::<_, i64>(0) == 1).then_some(())
            },
        )
        .await;
        p.source
            .batch_execute(&format!(
                "UPDATE ledger SET amount = amount + 1, memo = 'round {round}' WHERE id % 3 = {round};
                 DELETE FROM ledger WHERE id = {};
                 INSERT INTO ledger VALUES ({}, 1, 'new')",
                10 + round,
                1000 + round
            ))
            .await
            .expect("write while reconnecting");
    }
    p.sync_producer().await;
    assert!(
        p.producer_log().contains("reconnect"),
        "the producer says it reconnected:\n{}",
        p.producer_log()
    );
    p.merge_once().await;
    p.assert_mirror_equals_source("public.ledger").await;
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slot_dropped_after_the_snapshot_stops_the_producer_with_the_recovery_procedure() {
    let mut p = Pipeline::start("fault_slot", TABLE, &["public.ledger"]).await;
    p.setup_and_produce().await;
    p.sync_producer().await;
    p.stop_producer().await;
    p.source
        .batch_execute("SELECT pg_drop_replication_slot('fault_slot')")
        .await
        .expect("drop slot");

    // Never a silent restart from scratch: changes since the slot was
    // dropped are lost, and the producer says so and how to recover.
    let (code, _, stderr) = p.run_bounded(&["produce"]).await;
    assert_ne!(code, 0, "stderr: {stderr}");
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("kinesync: error:"),
        "one error line last: {stderr}"
    );
    assert!(
        last.contains("fault_slot") && last.contains("COMMENT ON PUBLICATION"),
        "names the slot and the fix: {last}"
    );
    let slots = p
        .source
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'fault_slot'",
            &[],
        )
        .await
        .expect("slots");
    assert_eq!(
        slots.get::<_, i64>(0),
        0,
        "no slot was created behind the user's back"
    );
}

const WATERMARK: &str = "SELECT watermark::text FROM mirror.kinesync_checkpoint";

/// Rows as text (see `support::text_rows`).
type Rows = Vec<Vec<Option<String>>>;

/// Writes after a first merge, so that the next merge has work; returns the
/// mirror rows and the watermark before that merge.
async fn merged_then_written(p: &mut Pipeline) -> (Rows, Rows) {
    p.setup_and_produce().await;
    p.assert_merge_converges(&["public.ledger"]).await;
    let before = (
        p.rows_both("public.ledger").await.1,
        support::text_rows(&p.mirror, WATERMARK).await,
    );
    p.source
        .batch_execute(
            "UPDATE ledger SET memo = 'changed', amount = amount * 2 WHERE id <= 60;
             DELETE FROM ledger WHERE id > 90;
             INSERT INTO ledger SELECT g, g, 'new' FROM generate_series(200, 220) g;",
        )
        .await
        .expect("writes");
    p.sync_producer().await;
    before
}

async fn assert_nothing_merged(p: &Pipeline, (rows, watermark): &(Rows, Rows)) {
    assert_eq!(
        &p.rows_both("public.ledger").await.1,
        rows,
        "the mirror shows part of an interrupted merge"
    );
    assert_eq!(
        &support::text_rows(&p.mirror, WATERMARK).await,
        watermark,
        "the watermark moved in an interrupted merge"
    );
}

async fn fault_hits(p: &Pipeline, fault: &str) -> i32 {
    p.mirror
        .query_one(
            "SELECT coalesce(max(hits), 0) FROM kinesync_standin.fault_injection WHERE fault = $1",
            &[&fault],
        )
        .await
        .expect("fault hits")
        .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_merge_batch_the_data_api_aborts_changes_nothing_and_the_next_run_converges() {
    let mut p = Pipeline::start("fault_abort", TABLE, &["public.ledger"]).await;
    let before = merged_then_written(&mut p).await;
    // The stand-in runs all but the last statement of the next batch, then
    // rolls it back and reports ABORTED.
    p.mirror
        .batch_execute(
            "INSERT INTO kinesync_standin.fault_injection (fault, remaining, matching) VALUES ('abort_batch', 1, 'SET watermark')",
        )
        .await
        .expect("inject abort");
    let result = p.run_bounded(&["merge", "--once"]).await;
    support::assert_one_line_error(&result, Some(3), &["merge failed", "aborted"]);
    assert_eq!(fault_hits(&p, "abort_batch").await, 1, "the fault fired");
    assert_nothing_merged(&p, &before).await;

    p.merge_once().await;
    p.assert_mirror_equals_source("public.ledger").await;
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_merge_killed_between_refresh_and_merge_changes_nothing_and_the_next_run_converges() {
    let mut p = Pipeline::start("fault_merge_kill", TABLE, &["public.ledger"]).await;
    let before = merged_then_written(&mut p).await;
    // The stand-in holds the first statement after the REFRESH until the
    // row is gone: the test kills the merge while it waits there.
    p.mirror
        .batch_execute(
            "INSERT INTO kinesync_standin.fault_injection (fault) VALUES ('hold_after_refresh')",
        )
        .await
        .expect("inject hold");
    let mut merge = p.spawn(&["merge", "--once"], "merge-killed.log");
    support::poll("the merge to wait after its refresh", || async {
        (fault_hits(&p, "hold_after_refresh").await == 1).then_some(())
    })
    .await;
    merge.kill().await.expect("SIGKILL the merge");
    p.mirror
        .batch_execute(
            "DELETE FROM kinesync_standin.fault_injection WHERE fault = 'hold_after_refresh'",
        )
        .await
        .expect("release");
    assert_nothing_merged(&p, &before).await;

    // The killed run's lease names a process that is gone: the next run
    // takes it over instead of waiting for it to expire.
    let out = p.merge_once().await;
    assert!(out.contains("merge ok"), "{out}");
    p.assert_mirror_equals_source("public.ledger").await;
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_dropped_from_the_publication_stops_the_producer_with_the_recovery_procedure() {
    let mut p = Pipeline::start("fault_pubdrop", TABLE, &["public.ledger"]).await;
    p.setup_and_produce().await;
    p.sync_producer().await;

    // While the producer runs: PostgreSQL silently stops sending the
    // table's changes; the producer must notice and stop.
    p.source
        .batch_execute("ALTER PUBLICATION fault_pubdrop DROP TABLE ledger")
        .await
        .expect("drop table from publication");
    p.source
        .batch_execute("UPDATE ledger SET memo = 'unpublished' WHERE id = 1")
        .await
        .expect("write");
    let (code, log) = p.wait_for_producer_exit().await;
    let needles = [
        "public.ledger",
        "ALTER PUBLICATION fault_pubdrop ADD TABLE public.ledger",
        "re-sync",
    ];
    support::assert_one_line_error(&(code, String::new(), log), None, &needles);

    // At start: the same error, and the table is not silently added back.
    let result = p.run_bounded(&["produce"]).await;
    support::assert_one_line_error(&result, None, &needles);
    let published = p
        .source
        .query_one(
            "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'fault_pubdrop'",
            &[],
        )
        .await
        .expect("publication tables")
        .get::<_, i64>(0);
    assert_eq!(published, 0, "the dropped table was added back silently");

    // The documented recovery starts streaming again.
    p.source
        .batch_execute("ALTER PUBLICATION fault_pubdrop ADD TABLE ledger")
        .await
        .expect("re-add");
    p.start_producer().await;
    p.sync_producer().await;
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_restart_under_writes_is_survived_by_reconnecting_and_nothing_is_lost() {
    // A cluster of this test's own: restarting the shared one would break
    // every test running beside it.
    let cluster = support::pg_cluster::Cluster::start("fault_pgrestart");
    let mut p = Pipeline::start_on(
        &cluster.url,
        "fault_pgrestart",
        TABLE,
        &["public.ledger"],
        "",
    )
    .await;
    let source_url = format!("{}/fault_pgrestart_src", cluster.url);
    p.setup_and_produce().await;
    p.sync_producer().await;

    // Writes all the time, reconnecting while the server is away (a write
    // whose outcome is unknown is fine: the mirror is compared with what
    // the source holds in the end).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writing = {
        let stop = std::sync::Arc::clone(&stop);
        let url = source_url.clone();
        tokio::spawn(async move {
            let mut client: Option<tokio_postgres::Client> = None;
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if client.is_none() {
                    client = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                        .await
                        .ok()
                        .map(|(c, connection)| {
                            tokio::spawn(connection);
                            c
                        });
                }
                let Some(c) = &client else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                i += 1;
                let write = format!(
                    "INSERT INTO ledger VALUES ({}, {i}, 'during') ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount;
                     UPDATE ledger SET amount = amount + 1 WHERE id = {};",
                    1000 + i % 200,
                    1 + i % 100
                );
                if c.batch_execute(&write).await.is_err() {
                    client = None;
                }
            }
            i
        })
    };
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(500)).await; // writes pile up
        cluster.restart().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // writes after the last restart
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let writes = writing.await.expect("writer");
    assert!(writes > 20, "the workload ran ({writes} writes)");

    p.source = support::connect(&source_url).await;
    p.sync_producer().await;
    assert!(
        p.producer_log().contains("replication reconnected"),
        "the producer reconnected:\n{}",
        p.producer_log()
    );
    p.merge_once().await;
    p.assert_mirror_equals_source("public.ledger").await;
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_expired_from_the_stream_before_a_refresh_are_reported_as_data_loss_never_merged_over(
) {
    let mut p = Pipeline::start("fault_expired", TABLE, &["public.ledger"]).await;
    let before = merged_then_written(&mut p).await;
    // The stream lost the new records unread, and the previous refresh
    // was longer ago than the retention (24 h): the stand-in skips the
    // records, and the refresh log is aged by 25 hours.
    p.mirror
        .batch_execute(
            "INSERT INTO kinesync_standin.fault_injection (fault, remaining) VALUES ('expire_unread', 100000);
             UPDATE mirror.kinesync_refresh_log SET refreshed_at = refreshed_at - interval '25 hours';",
        )
        .await
        .expect("inject expiry");
    let result = p.run_bounded(&["merge", "--once"]).await;
    let line = support::assert_one_line_error(
        &result,
        Some(3),
        &[
            "data loss",
            "expired",
            "Re-sync tables public.ledger",
            "--accept-data-loss",
        ],
    );
    assert!(
        line.contains(" and ") && line.contains("between "),
        "names the time range: {line}"
    );
    assert_nothing_merged(&p, &before).await;
    // Every later run says the same until the operator accepts the loss.
    let again = p.run_bounded(&["merge", "--once"]).await;
    support::assert_one_line_error(&again, Some(3), &["data loss"]);

    // After re-syncing (here: the changes are simply lost), the operator
    // accepts; the next runs merge normally.
    let out = p.run_ok(&["merge", "--once", "--accept-data-loss"]).await;
    assert!(out.contains("merge ok"), "{out}");
    p.merge_once().await;
    p.stop_producer().await;
}
