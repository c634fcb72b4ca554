//! The merge lease across hosts (docs/operations.md, "The merge lease"): a
//! holder that stopped renewing is taken over within `redshift.lease_secs`,
//! a holder that keeps renewing never is, and a merge batch of a holder
//! that lost its lease fails whole (its fence) and changes nothing.

mod support;

use std::time::{Duration, Instant};

use support::Pipeline;

const TABLE: &str = "
CREATE TABLE public.items (id bigint PRIMARY KEY, label text NOT NULL);
INSERT INTO public.items SELECT g, 'item ' || g FROM generate_series(1, 20) AS g;
";

const WATERMARK: &str = "SELECT watermark::text FROM mirror.kinesync_checkpoint";

/// A pipeline whose source rows are all in the stream, not yet merged,
/// with `lease_secs` as the merge lease.
async fn produced(name: &str, lease_secs: u64) -> Pipeline {
    let mut p = Pipeline::start(name, TABLE, &["public.items"]).await;
    p.set_config("redshift", &format!("lease_secs = {lease_secs}"));
    p.setup_and_produce().await;
    p.sync_producer().await;
    p
}

async fn fault_hits(p: &Pipeline) -> i32 {
    p.mirror
        .query_one(
            "SELECT coalesce(max(hits), 0) FROM kinesync_standin.fault_injection WHERE fault = 'hold_after_refresh'",
            &[],
        )
        .await
        .expect("fault hits")
        .get(0)
}

/// Starts `merge --once` and waits until the stand-in holds its first
/// statement after the refresh (fault `hold_after_refresh`).
async fn held_merge(p: &Pipeline, log: &str) -> tokio::process::Child {
    p.mirror
        .batch_execute(
            "INSERT INTO kinesync_standin.fault_injection (fault) VALUES ('hold_after_refresh')",
        )
        .await
        .expect("inject hold");
    let merge = p.spawn(&["merge", "--once"], log);
    support::poll("the merge to wait after its refresh", || async {
        (fault_hits(p).await == 1).then_some(())
    })
    .await;
    merge
}

async fn release_hold(p: &Pipeline) {
    p.mirror
        .batch_execute(
            "DELETE FROM kinesync_standin.fault_injection WHERE fault = 'hold_after_refresh'",
        )
        .await
        .expect("release");
}

async fn exit_code(mut merge: tokio::process::Child) -> i32 {
    let status = tokio::time::timeout(Duration::from_secs(120), merge.wait())
        .await
        .expect("the held merge ends once released")
        .expect("wait");
    status.code().unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lease_of_another_host_that_stopped_renewing_is_taken_over_within_lease_secs() {
    let lease_secs = 4;
    let p = produced("lease_takeover", lease_secs).await;
    // A scheduler on another host renewed its lease just now, then died.
    p.mirror
        .batch_execute(&format!(
            "INSERT INTO mirror.kinesync_lease VALUES ('merge', 'other-host:42:cafe', now() + interval '{lease_secs} seconds')"
        ))
        .await
        .expect("foreign lease");
    let died = Instant::now();
    let mut skipped = 0;
    let taken_after = loop {
        let (code, _, stderr) = p.run(&["merge", "--once"]).await;
        match code {
            0 => break died.elapsed(),
            5 => {
                assert!(stderr.contains("other-host:42:cafe"), "{stderr}");
                skipped += 1;
            }
            _ => panic!("merge exited {code}: {stderr}"),
        }
        assert!(
            died.elapsed() < Duration::from_secs(lease_secs + 20),
            "the dead holder's lease was not taken over within {lease_secs} s (+ slack)"
        );
    };
    assert!(skipped > 0, "the unexpired lease was respected at first");
    assert!(
        taken_after >= Duration::from_secs(lease_secs - 1),
        "taken over before it expired: {taken_after:?}"
    );
    p.assert_mirror_equals_source("public.items").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_holder_that_keeps_renewing_is_never_taken_over() {
    let lease_secs = 3;
    let mut p = produced("lease_live", lease_secs).await;
    let merge = held_merge(&p, "merge-held.log").await;
    // The held run is alive (its renewal goes on) for over twice its lease:
    // every other run in that time must skip.
    let held_since = Instant::now();
    let mut skipped = 0;
    while held_since.elapsed() < Duration::from_secs(lease_secs * 2 + 2) {
        let (code, _, stderr) = p.run(&["merge", "--once"]).await;
        assert_eq!(code, 5, "a live holder's lease was taken over: {stderr}");
        skipped += 1;
    }
    assert!(skipped > 1);
    release_hold(&p).await;
    assert_eq!(exit_code(merge).await, 0, "the held run finishes its merge");
    p.assert_mirror_equals_source("public.items").await;
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fenced_batch_of_a_holder_that_lost_its_lease_fails_and_changes_nothing() {
    // A lease long enough that no renewal notices the loss first: the
    // fence alone must stop the batch.
    let mut p = produced("lease_fence", 600).await;
    let watermark = support::text_rows(&p.mirror, WATERMARK).await;
    let merge = held_merge(&p, "merge-fenced.log").await;
    // Meanwhile its lease went to another scheduler (as after an expiry).
    p.mirror
        .batch_execute("UPDATE mirror.kinesync_lease SET holder = 'thief-host:7:beef'")
        .await
        .expect("steal the lease");
    release_hold(&p).await;
    let code = exit_code(merge).await;
    let log = std::fs::read_to_string(p.dir.join("merge-fenced.log")).expect("log");
    assert_ne!(code, 0, "a merge without the lease must fail: {log}");
    assert!(log.contains("lost the merge lease"), "{log}");
    assert!(
        p.rows_both("public.items").await.1.is_empty(),
        "the fenced batch changed the mirror"
    );
    assert_eq!(
        support::text_rows(&p.mirror, WATERMARK).await,
        watermark,
        "the fenced batch moved the watermark"
    );
    let leases = support::text_rows(&p.mirror, "SELECT holder FROM mirror.kinesync_lease").await;
    assert_eq!(
        leases,
        vec![vec![Some("thief-host:7:beef".to_owned())]],
        "the fenced run left the new holder's lease alone"
    );

    p.mirror
        .batch_execute("DELETE FROM mirror.kinesync_lease")
        .await
        .expect("the thief ends");
    p.merge_once().await;
    p.assert_mirror_equals_source("public.items").await;
    p.stop_producer().await;
}
