//! The streaming loop in process: `produce::run_with_writer` against the
//! real PostgreSQL of the local stack, with an in-memory `RecordWriter` in
//! place of Kinesis. What the writer accepted is what a sink would have
//! stored, so the test sees the events and the slot's confirmed LSN side by
//! side: events arrive in commit order, and the slot moves past a
//! transaction only once the writer accepted every event of it.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kinesync::config::Config;
use kinesync::produce::run_with_writer;
use kinesync::shutdown::Shutdown;
use kinesync::sink::{OutRecord, PutError, RecordResult, RecordWriter};
use tokio_postgres::Client;

/// Accepts records only while `open`; refused ones are retried by the
/// dispatcher. Keeps what it accepted, in order.
#[derive(Clone, Default)]
struct MemoryWriter {
    open: Arc<AtomicBool>,
    offered: Arc<Mutex<usize>>,
    accepted: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl RecordWriter for MemoryWriter {
    async fn put_records(&self, records: &[OutRecord]) -> Result<Vec<RecordResult>, PutError> {
        *self.offered.lock().unwrap() += records.len();
        if !self.open.load(Ordering::SeqCst) {
            let retry = RecordResult::Retry {
                code: "ProvisionedThroughputExceededException".into(),
            };
            return Ok(vec![retry; records.len()]);
        }
        let mut accepted = self.accepted.lock().unwrap();
        for record in records {
            accepted.push(serde_json::from_slice(&record.data).unwrap());
        }
        Ok(vec![RecordResult::Accepted; records.len()])
    }
}

impl MemoryWriter {
    /// The change events accepted (shape records, `op = "s"`, left out).
    fn accepted(&self) -> Vec<serde_json::Value> {
        let accepted = self.accepted.lock().unwrap().clone();
        accepted.into_iter().filter(|e| e["op"] != "s").collect()
    }
}

/// The slot's confirmed flush LSN compared with `lsn`: `Some(true)` when
/// the slot is at or past it, `None` while the slot does not exist.
async fn confirmed_past(pg: &Client, slot: &str, lsn: &str) -> Option<bool> {
    pg.query_opt(
        "SELECT confirmed_flush_lsn >= $2::text::pg_lsn FROM pg_replication_slots WHERE slot_name = $1",
        &[&slot, &lsn],
    )
    .await
    .unwrap()
    .and_then(|row| row.get::<_, Option<bool>>(0))
}

/// `Some(())` once the walsender of `slot` satisfies `condition` (on
/// pg_stat_replication; `$2` is `value`).
async fn replication_row(pg: &Client, slot: &str, condition: &str, value: &str) -> Option<()> {
    let sql = format!(
        "SELECT 1 FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid \
         WHERE s.slot_name = $1 AND {condition}"
    );
    pg.query_opt(&sql, &[&slot, &value])
        .await
        .unwrap()
        .map(|_| ())
}

/// The WAL insert position (not `pg_current_wal_lsn`, the write position,
/// which lags behind a commit under the stack's `synchronous_commit = off`).
async fn current_lsn(pg: &Client) -> String {
    pg.query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn changes_reach_the_writer_in_order_and_the_slot_is_confirmed_only_after_the_writer_accepted_them(
) {
    let stack = support::Stack::from_env();
    let pg = support::connect(&stack.pg_url).await;
    let name = format!("stream_loop_{}", std::process::id());
    pg.batch_execute(&format!(
        "DROP TABLE IF EXISTS public.{name}; CREATE TABLE public.{name} (id int PRIMARY KEY, v text)"
    ))
    .await
    .unwrap();
    let config: Config = toml::from_str(&format!(
        "[source]\nurl = {url:?}\ntables = [\"public.{name}\"]\npublication = \"{name}\"\nslot = \"{name}\"\nsnapshot = \"never\"\nheartbeat_interval_secs = 1\n",
        url = stack.pg_url
    ))
    .unwrap();
    let writer = MemoryWriter::default();
    let shutdown = Shutdown::new();
    let producer = tokio::spawn({
        let (writer, shutdown) = (writer.clone(), shutdown.clone());
        async move { run_with_writer(&config, writer, None, false, shutdown).await }
    });
    support::poll("the slot to be streamed from", || async {
        pg.query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active",
            &[&name],
        )
        .await
        .unwrap()
        .map(|_| ())
    })
    .await;

    // The loop is streaming once the slot confirms a heartbeat written now.
    let started = current_lsn(&pg).await;
    support::poll("the idle slot to be confirmed past a heartbeat", || async {
        confirmed_past(&pg, &name, &started)
            .await
            .unwrap_or(false)
            .then_some(())
    })
    .await;

    // The writer refuses everything: the changes are offered, never confirmed.
    pg.batch_execute(&format!(
        "INSERT INTO public.{name} VALUES (1, 'a'); UPDATE public.{name} SET v = 'b' WHERE id = 1; DELETE FROM public.{name} WHERE id = 1"
    ))
    .await
    .unwrap();
    let written = current_lsn(&pg).await;
    support::poll("the writer to be offered the three events", || async {
        (*writer.offered.lock().unwrap() >= 3).then_some(())
    })
    .await;
    // Let the loop go on past the refused transaction: the server has sent
    // it and a heartbeat committed after it, and the loop has told the
    // server its position since (a status update newer than that moment).
    let later = current_lsn(&pg).await;
    support::poll(
        "the server to send past the refused transaction",
        || async { replication_row(&pg, &name, "sent_lsn > $2::text::pg_lsn", &later).await },
    )
    .await;
    let sent: String = pg
        .query_one("SELECT now()::text", &[])
        .await
        .unwrap()
        .get(0);
    support::poll("a status update after that", || async {
        replication_row(&pg, &name, "reply_time > $2::text::timestamptz", &sent).await
    })
    .await;
    let slot: String = pg
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        confirmed_past(&pg, &name, &written).await,
        Some(false),
        "the slot moved to {slot}, past {written}, where the writer accepted nothing of the {} events offered",
        writer.offered.lock().unwrap()
    );
    assert!(writer.accepted().is_empty());

    writer.open.store(true, Ordering::SeqCst);
    support::poll("the slot to be confirmed past the changes", || async {
        confirmed_past(&pg, &name, &written)
            .await
            .unwrap_or(false)
            .then_some(())
    })
    .await;
    let ops: Vec<String> = writer
        .accepted()
        .iter()
        .map(|event| event["op"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(ops, ["c", "u", "d"], "{:#?}", writer.accepted());
    let accepted = writer.accepted();
    assert_eq!(accepted[1]["after"]["v"], "b");
    assert_eq!(accepted[2]["before"]["id"], 1);

    shutdown.trigger();
    producer.await.unwrap().unwrap();
    support::poll("the walsender to release the slot", || async {
        pg.query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND NOT active",
            &[&name],
        )
        .await
        .unwrap()
        .map(|_| ())
    })
    .await;
    pg.batch_execute(&format!(
        "SELECT pg_drop_replication_slot('{name}'); DROP PUBLICATION {name}; DROP TABLE public.{name}"
    ))
    .await
    .unwrap();
}
