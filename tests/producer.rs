//! The producer against the real local stack: what `kinesync produce` puts
//! into the stream (or prints with `--sink stdout`), checked against
//! `docs/events.md`, and what the mirror looks like after a merge.
//!
//! Each test names the behaviour it specifies; each uses its own source
//! database, slot and stream (see `tests/support`).

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use support::replay::{self, ordering, As, PLACEHOLDER};
use support::{poll, text_rows, Pipeline, StreamRecord};

/// A random string of `len` letters and digits: incompressible enough that
/// Postgres stores it out of line, uncompressed.
fn incompressible(rng: &mut StdRng, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

// ---------------------------------------------------------------------------
// 1. Value encodings

const EVERY_TYPE: &str = r#"
SET TimeZone = 'America/St_Johns';
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE public.every_type (
    id integer PRIMARY KEY,
    i2 smallint, i4 integer, i8 bigint,
    num_fixed numeric(12,2), num numeric,
    f4 real, f8 double precision,
    flag boolean, txt text, vc varchar(10), ch char(5),
    d date, tm time, ttz timetz, ts timestamp, tstz timestamptz,
    iv interval, bin bytea, u uuid, j json, jb jsonb,
    ints int[], texts text[], m mood, ip inet
);
INSERT INTO every_type VALUES
 (1, -32768, 2147483647, 9223372036854775807, 12.5, 123456789012345678901234567890.123456789,
  1.5, -2.25, true, E'tab\there\nnew line \\ back ✓ "q"', 'short', 'ab',
  '2024-02-29', '13:45:00.5', '13:45:00+05:30', '2024-01-02 03:04:05.123', '2024-01-02 03:04:05.123456+02:00',
  '1 year 2 mons 3 days 04:05:06.5', '\xDEADBEEF', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
  '{"a": [1, 2, {"b": null}], "s": "x"}', '{"outer": {"inner": [1, "two", true, null]}, "n": 1.5}',
  '{1,NULL,3}', ARRAY['a b', NULL, 'q"uote', 'back\slash', 'NULL', '', '{x,y}'], 'happy', '192.168.0.1/24'),
 (2, 0, 0, 0, 0, 'NaN', 'NaN', 'Infinity', false, '', '', '',
  'infinity', '00:00:00', '23:59:59.999999-08', '2024-12-31 23:59:59', '2024-12-31 22:00:00-03:30',
  '-1 days', '\x', '00000000-0000-0000-0000-000000000000', '[]', '{}', '{}', '{}', 'sad', '::1'),
 (3, NULL, NULL, NULL, NULL, 'Infinity', '-Infinity', 'NaN', NULL, NULL, NULL, NULL,
  '-infinity', NULL, NULL, 'infinity', 'infinity', NULL, NULL, NULL, '"just a string"', '[1, [2, [3]]]',
  NULL, NULL, NULL, NULL),
 (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"#;

/// Column order of `every_type`.
const EVERY_TYPE_COLUMNS: &[&str] = &[
    "id",
    "i2",
    "i4",
    "i8",
    "num_fixed",
    "num",
    "f4",
    "f8",
    "flag",
    "txt",
    "vc",
    "ch",
    "d",
    "tm",
    "ttz",
    "ts",
    "tstz",
    "iv",
    "bin",
    "u",
    "j",
    "jb",
    "ints",
    "texts",
    "m",
    "ip",
];

/// The `after` docs/events.md prescribes for each row of `EVERY_TYPE`.
fn every_type_expected(id: i64) -> Value {
    match id {
        1 => json!({
            "id": 1, "i2": -32768, "i4": 2147483647, "i8": 9223372036854775807i64,
            "num_fixed": "12.50", "num": "123456789012345678901234567890.123456789",
            "f4": 1.5, "f8": -2.25, "flag": true,
            "txt": "tab\there\nnew line \\ back ✓ \"q\"", "vc": "short", "ch": "ab   ",
            "d": "2024-02-29", "tm": "13:45:00.5", "ttz": "13:45:00+05:30",
            "ts": "2024-01-02T03:04:05.123000", "tstz": "2024-01-02T01:04:05.123456Z",
            "iv": "1 year 2 mons 3 days 04:05:06.5", "bin": "deadbeef",
            "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "j": {"a": [1, 2, {"b": null}], "s": "x"},
            "jb": {"outer": {"inner": [1, "two", true, null]}, "n": 1.5},
            "ints": [1, null, 3],
            "texts": ["a b", null, "q\"uote", "back\\slash", "NULL", "", "{x,y}"],
            "m": "happy", "ip": "192.168.0.1/24"
        }),
        2 => json!({
            "id": 2, "i2": 0, "i4": 0, "i8": 0, "num_fixed": "0.00", "num": "NaN",
            "f4": "NaN", "f8": "Infinity", "flag": false, "txt": "", "vc": "", "ch": "     ",
            "d": "infinity", "tm": "00:00:00", "ttz": "23:59:59.999999-08",
            "ts": "2024-12-31T23:59:59.000000", "tstz": "2025-01-01T01:30:00.000000Z",
            "iv": "-1 days", "bin": "", "u": "00000000-0000-0000-0000-000000000000",
            "j": [], "jb": {}, "ints": [], "texts": [], "m": "sad", "ip": "::1"
        }),
        3 => json!({
            "id": 3, "i2": null, "i4": null, "i8": null, "num_fixed": null, "num": "Infinity",
            "f4": "-Infinity", "f8": "NaN", "flag": null, "txt": null, "vc": null, "ch": null,
            "d": "-infinity", "tm": null, "ttz": null, "ts": "infinity", "tstz": "infinity",
            "iv": null, "bin": null, "u": null, "j": "just a string", "jb": [1, [2, [3]]],
            "ints": null, "texts": null, "m": null, "ip": null
        }),
        4 => {
            let mut row = serde_json::Map::new();
            for column in EVERY_TYPE_COLUMNS {
                row.insert((*column).to_owned(), Value::Null);
            }
            row.insert("id".to_owned(), json!(4));
            Value::Object(row)
        }
        other => panic!("no expectation for row {other}"),
    }
}

/// Checks the envelope fields every event carries.
fn assert_envelope(event: &Value, p: &Pipeline, table: &str) {
    let source = &event["source"];
    assert_eq!(source["version"], env!("CARGO_PKG_VERSION"), "{event}");
    assert_eq!(source["connector"], "postgresql", "{event}");
    assert_eq!(source["name"], p.name.as_str(), "source.name is the slot");
    assert_eq!(source["db"], format!("{}_src", p.name), "{event}");
    assert_eq!(source["schema"], "public", "{event}");
    assert_eq!(source["table"], table, "{event}");
    assert_eq!(source["xmin"], Value::Null, "{event}");
    assert!(source["ts_ms"].as_i64().is_some(), "{event}");
    assert!(event["ts_ms"].as_i64().is_some(), "{event}");
    let (commit_lsn, lsn) = ordering(event);
    assert!(commit_lsn > 0, "{event}");
    assert_eq!(
        source["sequence"],
        format!("[\"{commit_lsn}\",\"{lsn}\"]"),
        "sequence is a string holding [commit_lsn, lsn]"
    );
}

/// Columns appear in table order in the printed `after` object.
fn assert_column_order(line: &str) {
    let after = &line[line.find("\"after\":").expect("after")..];
    let positions: Vec<usize> = EVERY_TYPE_COLUMNS
        .iter()
        .map(|c| {
            after
                .find(&format!("\"{c}\":"))
                .unwrap_or_else(|| panic!("column {c} missing: {line}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "columns are not in table order: {line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_column_type_is_encoded_as_the_event_reference_says_in_snapshot_and_stream() {
    let p = Pipeline::start("producer_types", EVERY_TYPE, &["public.every_type"]).await;
    let mut producer = p.start_stdout_producer().await;

    // The snapshot: four `r` events, the last one marked "last".
    let lines = producer.lines(4).await;
    let snapshot: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    for (i, (line, event)) in lines.iter().zip(&snapshot).enumerate() {
        assert_envelope(event, &p, "every_type");
        assert_column_order(line);
        assert_eq!(event["op"], "r", "{event}");
        assert_eq!(event["before"], Value::Null, "{event}");
        let marker = if i == 3 { "last" } else { "true" };
        assert_eq!(event["source"]["snapshot"], marker, "{event}");
        assert_eq!(event["source"]["txId"], Value::Null, "{event}");
        assert_eq!(event["source"]["lsn"], 0, "{event}");
        assert_eq!(
            ordering(event).0,
            ordering(&snapshot[0]).0,
            "snapshot rows share the consistent point"
        );
    }

    // The same values again, inserted (with another session time zone) as
    // one streamed transaction: four `c` events.
    p.source
        .batch_execute(
            "SET TimeZone = 'Asia/Kolkata';
             CREATE TEMP TABLE dup AS SELECT * FROM every_type;
             UPDATE dup SET id = id + 100;
             INSERT INTO every_type SELECT * FROM dup;",
        )
        .await
        .expect("streamed inserts");
    let lines = producer.lines(4).await;
    let streamed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let txid = &streamed[0]["source"]["txId"];
    assert!(txid.as_u64().is_some(), "streamed changes carry txId");
    let mut last_lsn = 0;
    for (line, event) in lines.iter().zip(&streamed) {
        assert_envelope(event, &p, "every_type");
        assert_column_order(line);
        assert_eq!(event["op"], "c", "{event}");
        assert_eq!(event["before"], Value::Null, "{event}");
        assert_eq!(event["source"]["snapshot"], "false", "{event}");
        assert_eq!(&event["source"]["txId"], txid, "one transaction");
        let (commit_lsn, lsn) = ordering(event);
        assert_eq!(commit_lsn, ordering(&streamed[0]).0, "one transaction");
        assert!(
            commit_lsn > ordering(&snapshot[0]).0,
            "streamed after the snapshot"
        );
        assert!(
            lsn > last_lsn && lsn < commit_lsn,
            "change LSNs increase within the transaction and precede its commit: {event}"
        );
        last_lsn = lsn;
    }

    let by_id = |events: &[Value], offset: i64| -> BTreeMap<i64, Value> {
        events
            .iter()
            .map(|e| {
                let mut after = e["after"].clone();
                let id = after["id"].as_i64().expect("id") - offset;
                after["id"] = json!(id);
                (id, after)
            })
            .collect()
    };
    for (what, rows) in [
        ("snapshot (COPY)", by_id(&snapshot, 0)),
        ("stream (pgoutput)", by_id(&streamed, 100)),
    ] {
        assert_eq!(
            rows.keys().copied().collect::<Vec<_>>(),
            vec![1, 2, 3, 4],
            "{what}"
        );
        for (id, after) in rows {
            let expected = every_type_expected(id);
            for column in EVERY_TYPE_COLUMNS {
                assert_eq!(
                    after[*column], expected[*column],
                    "{what}: row {id}, column {column}"
                );
            }
            assert_eq!(after, expected, "{what}: row {id}");
        }
    }
    producer.stop().await;
}

// ---------------------------------------------------------------------------
// 2. Snapshot with concurrent writes

#[tokio::test(flavor = "multi_thread")]
async fn writes_made_while_the_snapshot_runs_are_neither_lost_nor_left_stale_in_the_mirror() {
    const ROWS: i32 = 20_000;
    let mut p = Pipeline::start(
        "producer_snapwrites",
        &format!(
            "CREATE TABLE public.big (id integer PRIMARY KEY, val integer NOT NULL, note text);
             INSERT INTO big SELECT g, 0, 'row ' || g FROM generate_series(1, {ROWS}) g;"
        ),
        &["public.big"],
    )
    .await;
    p.setup().await;

    // A writer that keeps committing small transactions until told to stop.
    let writer_db = support::connect(&format!("{}/{}_src", p.stack.pg_url, p.name)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn({
        let (stop, committed) = (Arc::clone(&stop), Arc::clone(&committed));
        async move {
            let mut rng = StdRng::seed_from_u64(2);
            let mut next_id = ROWS + 1;
            while !stop.load(Ordering::SeqCst) {
                let id = rng.gen_range(1..next_id);
                let sql = match rng.gen_range(0..10) {
                    0..=4 => {
                        format!("UPDATE big SET val = val + 1, note = 'u{id}' WHERE id = {id}")
                    }
                    5..=6 => {
                        next_id += 1;
                        format!("INSERT INTO big VALUES ({next_id}, 1, 'new')")
                    }
                    7 => format!("DELETE FROM big WHERE id = {id}"),
                    8 => format!(
                        "BEGIN; UPDATE big SET val = -val WHERE id BETWEEN {id} AND {id} + 20; \
                         DELETE FROM big WHERE id = {id} + 21; COMMIT"
                    ),
                    _ => {
                        next_id += 1;
                        format!("UPDATE big SET id = {next_id} WHERE id = {id}")
                    }
                };
                writer_db
                    .batch_execute(&sql)
                    .await
                    .expect("concurrent write");
                committed.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    poll("the writer to get going", || async {
        (committed.load(Ordering::SeqCst) > 10).then_some(())
    })
    .await;

    p.start_producer().await;
    let at_slot = committed.load(Ordering::SeqCst);
    poll("the snapshot to be delivered", || async {
        p.producer_log()
            .contains("snapshot delivered")
            .then_some(())
    })
    .await;
    let at_delivered = committed.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    writer.await.expect("writer");
    assert!(
        at_delivered > at_slot,
        "no write landed while the snapshot ran ({at_slot} before, {at_delivered} after)"
    );

    p.assert_merge_converges(&["public.big"]).await;
    p.stop_producer().await;
}

// ---------------------------------------------------------------------------
// 3. Unchanged TOAST values

#[tokio::test(flavor = "multi_thread")]
async fn an_update_that_leaves_a_toasted_value_untouched_sends_the_placeholder_and_the_mirror_keeps_the_value(
) {
    let mut p = Pipeline::start(
        "producer_toast",
        "CREATE TABLE public.docs (id integer PRIMARY KEY, note text, body text);",
        &["public.docs"],
    )
    .await;
    let mut rng = StdRng::seed_from_u64(3);
    let (body1, body2) = (
        incompressible(&mut rng, 12_000),
        incompressible(&mut rng, 9_000),
    );
    // Row 1 reaches the stream through the snapshot, row 2 as an insert.
    p.source
        .execute(
            "INSERT INTO docs VALUES (1, 'first', $1)",
            &[&body1.as_str()],
        )
        .await
        .expect("insert 1");
    p.setup_and_produce().await;
    p.source
        .execute(
            "INSERT INTO docs VALUES (2, 'second', $1)",
            &[&body2.as_str()],
        )
        .await
        .expect("insert 2");
    p.source
        .batch_execute(
            "UPDATE docs SET note = 'changed' WHERE id = 1;
             UPDATE docs SET note = 'changed too' WHERE id = 2;",
        )
        .await
        .expect("updates");
    p.sync_producer().await;

    let records = p.read_stream().await;
    let updates: BTreeMap<i64, &Value> = records
        .iter()
        .filter(|r| r.event["op"] == "u")
        .map(|r| (r.event["after"]["id"].as_i64().expect("id"), &r.event))
        .collect();
    assert_eq!(updates.len(), 2, "two updates: {updates:#?}");
    for (id, note) in [(1, "changed"), (2, "changed too")] {
        let after = &updates[&id]["after"];
        assert_eq!(after["note"], note);
        assert_eq!(
            after["body"], PLACEHOLDER,
            "the untouched TOASTed body of row {id} is the placeholder"
        );
        assert_eq!(updates[&id]["before"], Value::Null);
    }

    p.merge_once().await;
    p.assert_mirror_equals_source("public.docs").await;
    let mirror = text_rows(&p.mirror, "SELECT body FROM mirror.docs ORDER BY id").await;
    assert_eq!(mirror, vec![vec![Some(body1)], vec![Some(body2)]]);
    p.stop_producer().await;
}

// ---------------------------------------------------------------------------
// 4. Primary-key changes

#[tokio::test(flavor = "multi_thread")]
async fn an_update_that_changes_the_primary_key_is_a_u_event_whose_before_holds_the_old_key() {
    let mut p = Pipeline::start(
        "producer_pkchange",
        "CREATE TABLE public.accounts (id integer PRIMARY KEY, note text);
         CREATE TABLE public.pairs (a integer, b text, v integer, PRIMARY KEY (a, b));
         INSERT INTO accounts VALUES (1, 'one'), (2, 'two');
         INSERT INTO pairs VALUES (1, 'x', 10);",
        &["public.accounts", "public.pairs"],
    )
    .await;
    p.setup_and_produce().await;
    p.source
        .batch_execute(
            "UPDATE accounts SET id = 10 WHERE id = 2;
             UPDATE accounts SET note = 'uno' WHERE id = 1;
             UPDATE pairs SET b = 'y', v = 11 WHERE a = 1;",
        )
        .await
        .expect("updates");
    p.sync_producer().await;

    let records = p.read_stream().await;
    let updates: Vec<&StreamRecord> = records.iter().filter(|r| r.event["op"] == "u").collect();
    assert_eq!(updates.len(), 3, "{updates:#?}");
    let find = |table: &str, pk: &str| {
        updates
            .iter()
            .find(|r| r.event["source"]["table"] == table && r.partition_key == pk)
            .unwrap_or_else(|| panic!("no update of {table} under {pk}: {updates:#?}"))
    };

    let moved = find("accounts", "public.accounts:[10]");
    assert_eq!(moved.event["before"], json!({"id": 2}), "the old key only");
    assert_eq!(moved.event["after"], json!({"id": 10, "note": "two"}));

    let same_key = find("accounts", "public.accounts:[1]");
    assert_eq!(
        same_key.event["before"],
        Value::Null,
        "no old key when the key did not change"
    );
    assert_eq!(same_key.event["after"], json!({"id": 1, "note": "uno"}));

    let composite = find("pairs", "public.pairs:[1,\"y\"]");
    assert_eq!(composite.event["before"], json!({"a": 1, "b": "x"}));
    assert_eq!(composite.event["after"], json!({"a": 1, "b": "y", "v": 11}));

    p.merge_once().await;
    p.assert_mirror_equals_source("public.accounts").await;
    p.assert_mirror_equals_source("public.pairs").await;
    p.stop_producer().await;
}

// ---------------------------------------------------------------------------
// 5. Truncate

#[tokio::test(flavor = "multi_thread")]
async fn a_truncate_sends_one_t_event_per_published_table_and_empties_the_mirror() {
    let mut p = Pipeline::start(
        "producer_truncate",
        "CREATE TABLE public.a (id integer PRIMARY KEY, v text);
         CREATE TABLE public.b (id integer PRIMARY KEY, v text);
         CREATE TABLE public.unpublished (id integer PRIMARY KEY);
         INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 50) g;
         INSERT INTO b SELECT g, 'b' || g FROM generate_series(1, 50) g;
         INSERT INTO unpublished VALUES (1);",
        &["public.a", "public.b"],
    )
    .await;
    p.setup_and_produce().await;
    p.source
        .batch_execute("INSERT INTO a VALUES (51, 'streamed'); UPDATE b SET v = 'x' WHERE id = 1;")
        .await
        .expect("writes");
    p.sync_producer().await;
    p.merge_once().await;
    for table in ["public.a", "public.b"] {
        p.assert_mirror_equals_source(table).await;
    }

    p.source
        .batch_execute("TRUNCATE a, b, unpublished")
        .await
        .expect("truncate");
    p.sync_producer().await;
    let records = p.read_stream().await;
    let truncates: Vec<&StreamRecord> = records.iter().filter(|r| r.event["op"] == "t").collect();
    assert_eq!(
        truncates.len(),
        2,
        "one t event per published table: {truncates:#?}"
    );
    let mut keys: Vec<&str> = truncates.iter().map(|r| r.partition_key.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["public.a", "public.b"]);
    for r in &truncates {
        assert_eq!(r.event["before"], Value::Null);
        assert_eq!(r.event["after"], Value::Null);
        assert_eq!(r.event["source"]["snapshot"], "false");
    }
    assert_eq!(
        ordering(&truncates[0].event),
        ordering(&truncates[1].event),
        "one truncate's events share (commit_lsn, lsn)"
    );

    p.merge_once().await;
    for table in ["public.a", "public.b"] {
        let (source, mirror) = p.rows_both(table).await;
        assert!(
            source.is_empty() && mirror.is_empty(),
            "{table} not emptied: {mirror:?}"
        );
    }

    p.source
        .batch_execute(
            "INSERT INTO a VALUES (1, 'again'), (7, 'new'); INSERT INTO b VALUES (2, 'b');",
        )
        .await
        .expect("inserts after truncate");
    p.sync_producer().await;
    p.merge_once().await;
    for table in ["public.a", "public.b"] {
        p.assert_mirror_equals_source(table).await;
    }
    assert_eq!(p.rows_both("public.a").await.1.len(), 2);
    p.stop_producer().await;
}

// ---------------------------------------------------------------------------
// 6. Rollbacks

#[tokio::test(flavor = "multi_thread")]
async fn a_rolled_back_transaction_or_savepoint_produces_no_event() {
    let p = Pipeline::start(
        "producer_rollback",
        "CREATE TABLE public.t (id integer PRIMARY KEY, v text);",
        &["public.t"],
    )
    .await;
    let mut producer = p.start_stdout_producer().await;
    p.source
        .batch_execute(
            "BEGIN; INSERT INTO t VALUES (1, 'rolled back'); ROLLBACK;
             INSERT INTO t VALUES (2, 'kept');
             BEGIN; INSERT INTO t VALUES (3, 'kept'); SAVEPOINT s;
                    INSERT INTO t VALUES (4, 'rolled back'); UPDATE t SET v = 'rolled back' WHERE id = 2;
                    ROLLBACK TO s; COMMIT;
             BEGIN; INSERT INTO t VALUES (5, 'rolled back'); UPDATE t SET v = 'rolled back';
                    DELETE FROM t WHERE id = 2; ROLLBACK;",
        )
        .await
        .expect("transactions");
    let failed = p
        .source
        .batch_execute("BEGIN; INSERT INTO t VALUES (6, 'failed'); SELECT 1/0; COMMIT;")
        .await;
    assert!(
        failed.is_err(),
        "the division by zero aborts the transaction"
    );
    p.source
        .batch_execute("ROLLBACK; INSERT INTO t VALUES (7, 'kept');")
        .await
        .expect("last insert");

    // Commit order: 2, 3, 7. Anything rolled back would sit before 7.
    let events = producer.events(3).await;
    let seen: Vec<(String, i64)> = events
        .iter()
        .map(|e| {
            (
                e["op"].as_str().expect("op").to_owned(),
                e["after"]["id"].as_i64().expect("id"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("c".to_owned(), 2),
            ("c".to_owned(), 3),
            ("c".to_owned(), 7)
        ]
    );
    for e in &events {
        assert_eq!(e["after"]["v"], "kept", "{e}");
    }
    producer.stop().await;
}

// ---------------------------------------------------------------------------
// 7. Oversize records

const BLOBS: &str = "CREATE TABLE public.blobs (id integer PRIMARY KEY, payload text);";

/// Writes row 1 (small), row 2 (5,000 incompressible bytes from `seed`,
/// over the tests' 2000-byte limit), then `after`; returns row 2's payload.
async fn write_small_big_after(p: &Pipeline, seed: u64, after: &str) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let big = incompressible(&mut rng, 5_000);
    p.source
        .batch_execute("INSERT INTO blobs VALUES (1, 'small')")
        .await
        .expect("small");
    p.source
        .execute("INSERT INTO blobs VALUES (2, $1)", &[&big.as_str()])
        .await
        .expect("big");
    p.source.batch_execute(after).await.expect("after");
    big
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_over_max_record_bytes_stops_the_producer_with_one_line_naming_table_and_key() {
    let mut p = Pipeline::start("producer_oversize_fail", BLOBS, &["public.blobs"]).await;
    p.set_config("kinesis", "max_record_bytes = 2000");
    p.start_producer().await;
    let big = write_small_big_after(&p, 7, "INSERT INTO blobs VALUES (3, 'after')").await;

    let (code, log) = p.wait_for_producer_exit().await;
    assert_ne!(code, 0, "the producer must fail; log:\n{log}");
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("kinesync: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line; log:\n{log}");
    let error = errors[0];
    for needle in ["public.blobs", "key [2]", "max_record_bytes = 2000"] {
        assert!(error.contains(needle), "{needle:?} missing from: {error}");
    }
    assert!(
        !error.contains(&big[..100]),
        "the error must not dump the row: {error}"
    );

    // Nothing past the oversize event was confirmed: with the limit raised,
    // a restart sends row 2 and what followed it.
    p.set_config("kinesis", "max_record_bytes = 1048576");
    p.start_producer().await;
    p.sync_producer().await;
    let records = p.read_stream().await;
    let inserted: HashSet<i64> = records
        .iter()
        .filter(|r| r.event["op"] == "c")
        .map(|r| r.event["after"]["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(
        inserted,
        HashSet::from([1, 2, 3]),
        "log after the restart:\n{}",
        p.producer_log()
    );
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_oversize_dead_letter_an_event_over_the_limit_goes_to_the_file_and_later_rows_still_arrive(
) {
    let mut p = Pipeline::start("producer_oversize_dlq", BLOBS, &["public.blobs"]).await;
    let dead_letters = p.dir.join("dead-letters.jsonl");
    p.set_config(
        "kinesis",
        &format!(
            "max_record_bytes = 2000\noversize = \"dead_letter\"\ndead_letter_path = {:?}",
            dead_letters.display().to_string()
        ),
    );
    p.start_producer().await;
    let big = write_small_big_after(
        &p,
        8,
        "INSERT INTO blobs VALUES (3, 'after'); UPDATE blobs SET payload = 'shrunk' WHERE id = 2;",
    )
    .await;
    p.sync_producer().await; // fails if the producer exited

    let text = std::fs::read_to_string(&dead_letters).expect("dead-letter file");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one dead letter: {text}");
    let letter: Value = serde_json::from_str(lines[0]).expect("dead letter is JSON");
    assert_eq!(letter["reason"], "oversize");
    assert_eq!(letter["limit"], 2000);
    assert!(letter["bytes"].as_u64().expect("bytes") > 5_000);
    assert_eq!(letter["table"], "public.blobs");
    assert_eq!(letter["key"], "[2]");
    assert_eq!(letter["partition_key"], "public.blobs:[2]");
    assert_eq!(letter["event"]["op"], "c");
    assert_eq!(letter["event"]["after"], json!({"id": 2, "payload": big}));

    let records = p.read_stream().await;
    let seen: Vec<(String, i64)> = records
        .iter()
        .map(|r| {
            (
                r.event["op"].as_str().expect("op").to_owned(),
                r.event["after"]["id"].as_i64().expect("id"),
            )
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        seen,
        [
            ("c".to_owned(), 1),
            ("c".to_owned(), 3),
            ("u".to_owned(), 2)
        ],
        "everything but the oversize event reaches the stream"
    );
    p.stop_producer().await;
}

// ---------------------------------------------------------------------------
// 8. Restart

#[tokio::test(flavor = "multi_thread")]
async fn a_producer_stopped_gracefully_resumes_from_the_confirmed_lsn_and_loses_nothing() {
    let mut p = Pipeline::start(
        "producer_resume",
        "CREATE TABLE public.t (id integer PRIMARY KEY, v integer);
         INSERT INTO t SELECT g, 0 FROM generate_series(1, 100) g;",
        &["public.t"],
    )
    .await;
    p.setup_and_produce().await;
    p.source
        .batch_execute("INSERT INTO t SELECT g, 0 FROM generate_series(101, 300) g")
        .await
        .expect("confirmed batch");
    p.sync_producer().await;
    // Written just before the stop: may or may not be sent before it.
    p.source
        .batch_execute("INSERT INTO t SELECT g, 0 FROM generate_series(301, 400) g")
        .await
        .expect("batch before stop");
    p.stop_producer().await; // SIGTERM must end with exit 0
    p.source
        .batch_execute(
            "INSERT INTO t SELECT g, 0 FROM generate_series(401, 600) g;
             UPDATE t SET v = v + 1 WHERE id % 3 = 0;
             DELETE FROM t WHERE id % 7 = 0;",
        )
        .await
        .expect("writes while stopped");
    p.start_producer().await;
    p.sync_producer().await;

    let records = p.read_stream().await;
    let mut counts: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for r in &records {
        let e = &r.event;
        let row = if e["op"] == "d" {
            &e["before"]
        } else {
            &e["after"]
        };
        let key = (
            e["op"].as_str().expect("op").to_owned(),
            row["id"].as_i64().expect("id"),
        );
        *counts.entry(key).or_default() += 1;
    }
    let count = |op: &str, id: i64| counts.get(&(op.to_owned(), id)).copied().unwrap_or(0);
    for id in 1..=100 {
        assert_eq!(
            count("r", id),
            1,
            "snapshot row {id}: exactly once (no second snapshot)"
        );
    }
    for id in 101..=300 {
        assert_eq!(count("c", id), 1, "confirmed insert {id}: exactly once");
    }
    for id in 301..=600 {
        assert!(count("c", id) >= 1, "insert {id} missing");
    }
    for id in (3..=600).step_by(3) {
        assert!(count("u", id) >= 1, "update of {id} missing");
    }
    for id in (7..=600).step_by(7) {
        assert!(count("d", id) >= 1, "delete of {id} missing");
    }

    p.merge_once().await;
    p.assert_mirror_equals_source("public.t").await;
    p.stop_producer().await;
}

// ---------------------------------------------------------------------------
// 9. Heartbeat

#[tokio::test(flavor = "multi_thread")]
async fn the_idle_heartbeat_advances_the_slot_while_only_unpublished_tables_are_written() {
    // The support config sets heartbeat_interval_secs = 1.
    let mut p = Pipeline::start(
        "producer_heartbeat",
        "CREATE TABLE public.watched (id integer PRIMARY KEY);
         CREATE TABLE public.unwatched (id serial PRIMARY KEY, v integer);",
        &["public.watched"],
    )
    .await;
    p.start_producer().await;
    p.sync_producer().await;
    p.source
        .batch_execute("INSERT INTO unwatched (v) SELECT g FROM generate_series(1, 100) g")
        .await
        .expect("unwatched writes");
    let start: String = p
        .source
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("wal lsn")
        .get(0);
    let (source, slot) = (&p.source, p.name.clone());
    poll(
        "the slot's confirmed LSN to pass the WAL position",
        || async {
            source
                .batch_execute("INSERT INTO unwatched (v) VALUES (0)")
                .await
                .expect("unwatched write");
            let row = source
                .query_one(
                    "SELECT coalesce(confirmed_flush_lsn > $2::text::pg_lsn, false) \
                 FROM pg_replication_slots WHERE slot_name = $1",
                    &[&slot, &start],
                )
                .await
                .expect("slot");
            row.get::<_, bool>(0).then_some(())
        },
    )
    .await;
    let records = p.read_stream().await;
    assert!(
        records.is_empty(),
        "heartbeats and unpublished tables put nothing in the stream: {records:#?}"
    );
    p.stop_producer().await;
}

// ---------------------------------------------------------------------------
// 10. The stream replays to the source

const REPLAY_ROWS: &str = "
INSERT INTO items SELECT g, 'snap-' || g, g, g, true, now(), NULL FROM generate_series(1, 40) g;
INSERT INTO pairs SELECT g % 7, 'k' || g, g FROM generate_series(1, 20) g;
";

#[tokio::test(flavor = "multi_thread")]
async fn replaying_the_whole_stream_in_ordering_key_order_reproduces_the_source() {
    let seed: u64 = std::env::var("KINESYNC_REPLAY_SEED")
        .ok()
        .map(|s| s.parse().expect("KINESYNC_REPLAY_SEED: a number"))
        .unwrap_or(10);
    let mut p = Pipeline::start(
        "producer_replay",
        &format!("{}{REPLAY_ROWS}", support::workload::ITEMS_AND_PAIRS),
        &["public.items", "public.pairs"],
    )
    .await;
    p.start_producer().await;
    // The snapshot is delivered before the workload (and its restart) begins.
    p.sync_producer().await;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut next_id = 1000;
    for round in 0..150 {
        let transaction = support::workload::random_transaction(&mut rng, &mut next_id, 8, false);
        p.source
            .batch_execute(&transaction)
            .await
            .unwrap_or_else(|e| panic!("seed {seed}, round {round}: {transaction}: {e}"));
        if round == 75 {
            // A restart in the middle: duplicates may appear, nothing may be lost.
            p.kill_producer().await;
            p.start_producer().await;
        }
    }
    p.sync_producer().await;

    let records = p.read_stream().await;
    let keys = replay::keys(&[("public.items", &["id"]), ("public.pairs", &["a", "b"])]);
    let replayed = replay::replay(&records, &keys);
    for (table, key) in &keys {
        let source = replay::source_rows(&p.source, table, key, As::Event).await;
        replay::assert_rows_match(
            &format!("replay of {table}"),
            &source,
            &replayed[table],
            &format!("seed {seed} (KINESYNC_REPLAY_SEED)"),
        );
        if table == "public.items" {
            assert!(source.len() > 40, "the workload did something");
        }
    }
    p.stop_producer().await;
}

// ---------------------------------------------------------------------------
// 11. Start-up: previews, table names, the order of start-up checks

/// The slot's confirmed LSN and the publication's comment (the snapshot marker).
async fn slot_and_marker(p: &Pipeline) -> (Option<String>, Option<String>) {
    let row = p
        .source
        .query_one(
            "SELECT (SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1), \
                    (SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = $1)",
            &[&p.name],
        )
        .await
        .expect("slot and marker");
    (row.get(0), row.get(1))
}

/// Polls until no temporary slot of a `--sink stdout` run is left.
async fn wait_for_no_stdout_slot(p: &Pipeline) {
    let pattern = format!("{}\\_stdout\\_%", p.name);
    poll("the temporary slot to go away", || async {
        let row = p
            .source
            .query_one(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1",
                &[&pattern],
            )
            .await
            .ok()?;
        (row.get::<_, i64>(0) == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn produce_sink_stdout_spends_nothing_of_the_real_pipeline_and_a_later_kinesis_producer_sends_everything(
) {
    let mut p = Pipeline::start(
        "producer_preview",
        "CREATE TABLE public.t (id integer PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'before' FROM generate_series(1, 3) g;",
        &["public.t"],
    )
    .await;
    // A first look before anything exists: the snapshot, printed; no slot
    // and no marker are left behind.
    p.set_config("source", "snapshot = \"initial_only\"");
    let (code, stdout, stderr) = p.run_bounded(&["produce", "--sink", "stdout"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        support::producer::change_lines(&stdout).len(),
        3,
        "{stdout}"
    );
    wait_for_no_stdout_slot(&p).await;
    assert!(!p.slot_exists().await, "the preview created source.slot");
    assert_eq!(slot_and_marker(&p).await, (None, None), "{stderr}");

    // The real producer snapshots everything, then stops.
    p.set_config("source", "snapshot = \"initial\"");
    p.start_producer().await;
    p.sync_producer().await;
    p.stop_producer().await;
    let before = slot_and_marker(&p).await;
    assert!(before.0.is_some() && before.1.is_some(), "{before:?}");

    // A streaming preview while the real producer is down prints a change...
    p.source
        .batch_execute("INSERT INTO t VALUES (4, 'while stopped')")
        .await
        .expect("insert 4");
    let mut preview = p.start_stdout_producer().await;
    let snapshot = preview.events(4).await;
    assert!(snapshot.iter().all(|e| e["op"] == "r"), "{snapshot:?}");
    p.source
        .batch_execute("INSERT INTO t VALUES (5, 'during the preview')")
        .await
        .expect("insert 5");
    let change = preview.events(1).await;
    assert_eq!(change[0]["after"]["id"], 5, "{change:?}");
    preview.stop().await;
    wait_for_no_stdout_slot(&p).await;
    // ...and leaves the slot's position and the marker as they were.
    assert_eq!(slot_and_marker(&p).await, before);

    // So the real producer, restarted, still sends both changes.
    p.start_producer().await;
    p.sync_producer().await;
    let records = p.read_stream().await;
    for id in [4, 5] {
        assert!(
            records
                .iter()
                .any(|r| r.event["op"] == "c" && r.event["after"]["id"] == id),
            "insert {id} was never sent to Kinesis: {records:?}"
        );
    }
    let snapshot_rows = records.iter().filter(|r| r.event["op"] == "r").count();
    assert_eq!(snapshot_rows, 3, "one snapshot only: {records:?}");
    p.stop_producer().await;

    // The opt-in belongs to the stdout sink only.
    let out = p.run_bounded(&["produce", "--advance-slot"]).await;
    support::assert_one_line_error(&out, Some(2), &["--advance-slot", "--sink stdout"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_written_in_sql_spelling_is_mirrored_and_a_misspelled_one_is_named_as_meant() {
    let mut p = Pipeline::start(
        "producer_sqlname",
        r#"CREATE TABLE public."Odd Table" (id integer PRIMARY KEY, v text);
           INSERT INTO "Odd Table" VALUES (1, 'one'), (2, 'two');"#,
        &[r#"public."Odd Table""#],
    )
    .await;
    p.setup_and_produce().await;
    p.source
        .batch_execute(r#"UPDATE "Odd Table" SET v = 'changed' WHERE id = 2"#)
        .await
        .expect("update");
    p.sync_producer().await;
    p.stop_producer().await;
    p.merge_once().await;
    let mirror = text_rows(
        &p.mirror,
        r#"SELECT id::text, v FROM mirror."odd table" ORDER BY id"#,
    )
    .await;
    let source = text_rows(
        &p.source,
        r#"SELECT id::text, v FROM public."Odd Table" ORDER BY id"#,
    )
    .await;
    assert_eq!(mirror, source);

    // A wrong case is named in the same spelling, by both halves.
    p.set_config("source", r#"tables = ['public."Odd table"']"#);
    let out = p.run_bounded(&["produce"]).await;
    support::assert_one_line_error(&out, None, &[r#"table public."Odd table" does not exist"#]);
    let out = p.run_bounded(&["setup"]).await;
    support::assert_one_line_error(&out, Some(4), &[r#"public."Odd table""#]);
    // An entry that names no table says what is wrong with it.
    p.set_config("source", r#"tables = ['public."Odd Table']"#);
    let out = p.run_bounded(&["produce"]).await;
    support::assert_one_line_error(&out, None, &["source.tables", "unclosed"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn source_problems_are_reported_even_when_the_kinesis_endpoint_is_unreachable_too() {
    let mut p = Pipeline::start(
        "producer_startup",
        "CREATE TABLE public.events (at timestamptz, what text);",
        &["public.events"],
    )
    .await;
    p.set_env("AWS_ENDPOINT_URL_KINESIS", "http://127.0.0.1:9");
    let fix = "ALTER TABLE public.events REPLICA IDENTITY USING INDEX";
    let out = p.run_bounded(&["produce"]).await;
    let line = support::assert_one_line_error(&out, None, &[fix, "Kinesis stream"]);
    let (source_at, stream_at) = (
        line.find(fix).expect("source problem"),
        line.to_lowercase().find("stream").expect("stream problem"),
    );
    assert!(
        source_at < stream_at,
        "the source problem comes first: {line}"
    );

    // A missing table, or an entry that is not a table name, likewise.
    for (tables, needle) in [
        (r#"tables = ["public.nosuch"]"#, "public.nosuch"),
        (r#"tables = ['public."nosuch']"#, "unclosed"),
    ] {
        p.set_config("source", tables);
        let out = p.run_bounded(&["produce"]).await;
        support::assert_one_line_error(&out, None, &[needle, "Kinesis stream"]);
    }
    assert!(!p.slot_exists().await, "a failed start left a slot behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_and_produce_name_the_server_version_and_what_is_supported() {
    let p = Pipeline::start(
        "producer_version",
        "CREATE TABLE public.t (id integer PRIMARY KEY);",
        &["public.t"],
    )
    .await;
    let (_, stdout, stderr) = p.run_bounded(&["check", "--no-write"]).await;
    let row = stdout
        .lines()
        .find(|l| l.contains("server version"))
        .unwrap_or_else(|| panic!("no server version row:\n{stdout}\n{stderr}"));
    assert!(
        row.contains("PostgreSQL 1") && row.contains("supported: PostgreSQL 13 to 18"),
        "{row}"
    );
    p.set_config("source", "snapshot = \"initial_only\"");
    let (code, _, stderr) = p.run_bounded(&["produce", "--sink", "stdout"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("PostgreSQL server version supported")
            && stderr.contains(&format!(
                "{}.",
                std::env::var("KS_PG_VERSION").unwrap_or("15".into())
            )),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------
// 12. A server shutting down

#[tokio::test(flavor = "multi_thread")]
async fn a_fast_server_shutdown_is_not_held_up_by_the_producer_when_the_last_wal_is_no_commit() {
    // A fast shutdown waits until every logical walsender's client has
    // confirmed all the WAL it was sent. The last record here is the abort
    // of a transaction the shutdown terminates: no commit of ours ends
    // there, so only a producer that confirms the server's position when
    // it has nothing outstanding lets the server stop (pg_ctl gives up
    // after its 60 s otherwise).
    let cluster = support::pg_cluster::Cluster::start("producer_fastshutdown");
    let mut p = Pipeline::start_on(
        &cluster.url,
        "producer_fastshutdown",
        "CREATE TABLE public.t (id integer PRIMARY KEY); CREATE TABLE public.other (id integer);",
        &["public.t"],
        "",
    )
    .await;
    let source_url = format!("{}/producer_fastshutdown_src", cluster.url);
    p.start_producer().await;
    p.source
        .batch_execute("INSERT INTO t VALUES (1)")
        .await
        .expect("insert");
    p.sync_producer().await;
    let open = support::connect(&source_url).await;
    open.batch_execute("BEGIN; INSERT INTO other VALUES (1)")
        .await
        .expect("an open transaction");
    cluster.restart().await;
    drop(open);

    p.source = support::connect(&source_url).await;
    p.source
        .batch_execute("INSERT INTO t VALUES (2)")
        .await
        .expect("insert after the restart");
    p.sync_producer().await;
    let records = p.read_stream().await;
    for id in [1, 2] {
        assert!(
            records.iter().any(|r| r.event["after"]["id"] == id),
            "row {id} missing: {records:?}"
        );
    }
    p.stop_producer().await;
}
