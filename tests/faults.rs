//! Faults the pipeline must survive or refuse loudly (issue 8): the
//! walsender terminated under a running producer, and a slot dropped behind
//! its back.

mod support;

use support::Pipeline;

const TABLE: &str = "
CREATE TABLE public.ledger (id bigint PRIMARY KEY, amount numeric(12,2), memo text);
INSERT INTO public.ledger SELECT g, g, 'start' FROM generate_series(1, 100) g;
";

#[tokio::test(flavor = "multi_thread")]
async fn a_terminated_walsender_is_survived_by_reconnecting_and_nothing_is_lost() {
    let mut p = Pipeline::start("fault_walsender", TABLE, &["public.ledger"]).await;
    p.setup().await;
    p.start_producer().await;
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
    p.setup().await;
    p.start_producer().await;
    p.sync_producer().await;
    p.stop_producer().await;
    p.source
        .batch_execute("SELECT pg_drop_replication_slot('fault_slot')")
        .await
        .expect("drop slot");

    // Never a silent restart from scratch: changes since the slot was
    // dropped are lost, and the producer says so and how to recover.
    let (code, _, stderr) = p.run(&["produce"]).await;
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
