//! The one resolver of `source.tables` (src/source/tables.rs), seen from
//! every command: a table keyed by `REPLICA IDENTITY USING INDEX` is
//! accepted by `check`, `setup`, `merge` and `verify` as it is by the
//! producer, and a generated column, which the producer never sends, is
//! not part of the mirror, so `verify` does not report it as a difference.
//! A partitioned table is configured by its root and mirrored as one table.
//! A table without a key (`REPLICA IDENTITY FULL` only) is refused with the
//! fix, since its equal rows cannot be told apart; once keyed as the fix
//! says, its duplicate rows mirror exactly.

mod support;

use serde_json::Value;
use support::Pipeline;

/// A table without a primary key, keyed by a unique index on NOT NULL columns.
const BY_INDEX: &str = "
CREATE TABLE public.by_index (code text NOT NULL, region int NOT NULL, qty int, note text);
CREATE UNIQUE INDEX by_index_key ON public.by_index (region, code);
ALTER TABLE public.by_index REPLICA IDENTITY USING INDEX by_index_key;
INSERT INTO public.by_index VALUES ('a', 1, 10, 'first'), ('b', 1, 20, NULL), ('a', 2, 30, 'third');
";

/// A table with a primary key on one column and its replica identity on
/// another unique column: delete events carry only `code`.
const PK_AND_INDEX: &str = "
CREATE TABLE public.pk_and_index (id int PRIMARY KEY, code text NOT NULL, qty int);
CREATE UNIQUE INDEX pk_and_index_code ON public.pk_and_index (code);
ALTER TABLE public.pk_and_index REPLICA IDENTITY USING INDEX pk_and_index_code;
INSERT INTO public.pk_and_index VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 30);
";

/// A table with a stored generated column.
const GENERATED: &str = "
CREATE TABLE public.priced (id int PRIMARY KEY, qty int NOT NULL, price numeric(10,2) NOT NULL,
    total numeric(12,2) GENERATED ALWAYS AS (qty * price) STORED, note text);
INSERT INTO public.priced (id, qty, price, note) VALUES (1, 2, 1.50, 'x'), (2, 3, 10.00, NULL);
";

/// Tables without any key, `REPLICA IDENTITY FULL`: pgbench's history
/// table (inserts only) and one with duplicate rows.
const KEYLESS: &str = "
CREATE TABLE public.pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));
ALTER TABLE public.pgbench_history REPLICA IDENTITY FULL;
INSERT INTO public.pgbench_history VALUES (1, 1, 7, 5, '2026-01-01 00:00:00', NULL), (1, 1, 7, 5, '2026-01-01 00:00:00', NULL);
CREATE TABLE public.dups (v text, n int);
ALTER TABLE public.dups REPLICA IDENTITY FULL;
INSERT INTO public.dups VALUES ('x', 1), ('x', 1), ('x', 1), ('y', NULL);
";

/// A partitioned table (by range, two partitions) with rows in both.
const PARTITIONED: &str = "
CREATE TABLE public.readings (id bigint NOT NULL, at date NOT NULL, site text, v numeric(8,2),
    PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.readings_2024 PARTITION OF public.readings FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE public.readings_2025 PARTITION OF public.readings FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO public.readings SELECT g, DATE '2024-09-01' + (g % 200), 'site ' || (g % 7), g / 4.0
FROM generate_series(1, 300) g;
";

/// docs/postgres-versions.md, "Partitioned tables": configured by its root,
/// a partitioned table is snapshotted from every partition, its changes carry
/// the root's name (publish_via_partition_root), a row moved to another
/// partition by an update stays one row, and a partition created while
/// streaming is published without a restart: one mirror table for the root.
#[tokio::test(flavor = "multi_thread")]
async fn a_partitioned_table_is_mirrored_by_its_root_across_partitions() {
    let mut p = Pipeline::start("tables_partitioned", PARTITIONED, &["public.readings"]).await;
    let (outcome, detail) = table_check(&p, "table public.readings").await;
    assert_eq!(outcome, "ok", "check refuses the table: {detail}");
    p.setup_and_produce().await;
    p.source
        .batch_execute(
            "UPDATE public.readings SET at = at + 120 WHERE id % 10 = 0;
             DELETE FROM public.readings WHERE id % 11 = 0;
             CREATE TABLE public.readings_2026 PARTITION OF public.readings
                 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
             INSERT INTO public.readings VALUES (1000, '2026-03-01', 'new', 1.25), (1001, '2024-02-02', NULL, NULL);
             UPDATE public.readings SET at = '2026-06-30', v = v + 1 WHERE id % 13 = 0;",
        )
        .await
        .expect("changes");
    p.assert_merge_converges(&["public.readings"]).await;
    let named = p
        .mirror
        .query(
            "SELECT DISTINCT coalesce(payload->'source'->>'table', payload->'shape'->>'table') \
             FROM mirror.kinesync_events ORDER BY 1",
            &[],
        )
        .await
        .expect("events view");
    let named: Vec<Option<String>> = named.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        named,
        [Some("readings".to_owned())],
        "events and shape records name the root only"
    );
    assert_verifies_equal(&p, "public.readings").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_keyed_by_a_replica_identity_index_is_accepted_by_check_merge_and_verify() {
    let mut p = Pipeline::start("tables_by_index", BY_INDEX, &["public.by_index"]).await;
    let (outcome, detail) = table_check(&p, "table public.by_index").await;
    assert_eq!(outcome, "ok", "check refuses the table: {detail}");
    assert!(detail.contains("USING INDEX"), "{detail}");
    p.setup_and_produce().await;
    // Streamed changes keyed by the index: a changed row, a changed key, a
    // deleted row, a new row.
    p.source
        .batch_execute(
            "UPDATE public.by_index SET qty = 11 WHERE code = 'a' AND region = 1;
             UPDATE public.by_index SET code = 'c' WHERE code = 'b' AND region = 1;
             DELETE FROM public.by_index WHERE code = 'a' AND region = 2;
             INSERT INTO public.by_index VALUES ('d', 3, 40, 'new');",
        )
        .await
        .expect("changes");
    p.assert_merge_converges(&["public.by_index"]).await;
    assert_verifies_equal(&p, "public.by_index").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_identity_index_is_the_key_even_with_a_primary_key_on_other_columns() {
    let mut p = Pipeline::start(
        "tables_pk_and_index",
        PK_AND_INDEX,
        &["public.pk_and_index"],
    )
    .await;
    let (outcome, detail) = table_check(&p, "table public.pk_and_index").await;
    assert_eq!(outcome, "ok", "check refuses the table: {detail}");
    p.setup_and_produce().await;
    p.source
        .batch_execute(
            "INSERT INTO public.pk_and_index VALUES (4, 'd', 40);
             UPDATE public.pk_and_index SET qty = 11 WHERE id = 1;
             UPDATE public.pk_and_index SET code = 'e' WHERE id = 2;
             DELETE FROM public.pk_and_index WHERE id = 3;
             DELETE FROM public.pk_and_index WHERE id = 4;",
        )
        .await
        .expect("changes");
    p.assert_merge_converges(&["public.pk_and_index"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_with_a_generated_column_verifies_clean() {
    let mut p = Pipeline::start("tables_generated", GENERATED, &["public.priced"]).await;
    p.setup_and_produce().await;
    p.source
        .batch_execute(
            "UPDATE public.priced SET qty = 5 WHERE id = 1;
             INSERT INTO public.priced (id, qty, price) VALUES (3, 1, 2.25);",
        )
        .await
        .expect("changes");
    p.sync_producer().await;
    p.merge_once().await;
    assert_verifies_equal(&p, "public.priced").await;
    // The mirror holds what the producer sends: every column but the
    // generated one (and the merge's own `_kinesync_*` columns).
    let columns: Vec<String> = p
        .mirror
        .query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = 'mirror' AND table_name = 'priced' \
             AND left(column_name, 10) <> '_kinesync_' ORDER BY ordinal_position",
            &[],
        )
        .await
        .expect("mirror columns")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(columns, ["id", "qty", "price", "note"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn keyless_tables_are_refused_until_keyed_and_then_mirror_their_duplicate_rows() {
    let tables = ["public.pgbench_history", "public.dups"];
    let mut p = Pipeline::start("tables_keyless", KEYLESS, &tables).await;
    for table in ["table public.pgbench_history", "table public.dups"] {
        let (outcome, detail) = table_check(&p, table).await;
        assert_eq!(outcome, "fail", "{table}: {detail}");
        assert!(detail.contains("source.keyless_tables"), "{detail}");
    }
    // The user's word that rows are distinct: accepted, with a warning.
    p.set_config("source", "keyless_tables = \"distinct_rows\"");
    let (outcome, detail) = table_check(&p, "table public.dups").await;
    assert_eq!(outcome, "warn", "{detail}");
    assert!(
        detail.contains("equal rows would be one mirror row"),
        "{detail}"
    );

    // The fix the refusal names: a key. Duplicate rows stay duplicates.
    p.set_config("source", "keyless_tables = \"refuse\"");
    for table in tables {
        p.source
            .batch_execute(&format!(
                "ALTER TABLE {table} ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
            ))
            .await
            .expect("add a key");
    }
    p.setup_and_produce().await;
    p.source
        .batch_execute(
            "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 7, 5, '2026-01-01 00:00:00'), (1, 1, 7, 5, '2026-01-01 00:00:00');
             UPDATE dups SET n = 5 WHERE ctid IN (SELECT ctid FROM dups WHERE v = 'x' LIMIT 1);
             DELETE FROM dups WHERE ctid IN (SELECT ctid FROM dups WHERE v = 'x' AND n = 1 LIMIT 1);
             INSERT INTO dups (v, n) VALUES ('y', NULL);",
        )
        .await
        .expect("changes to duplicate rows");
    p.assert_merge_converges(&tables).await;
    assert_verifies_equal(&p, "public.dups").await;
}

/// `check --json`'s finding named `name`: (outcome, detail).
async fn table_check(p: &Pipeline, name: &str) -> (String, String) {
    let (_, stdout, stderr) = p.run(&["check", "--json", "--no-write"]).await;
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("check --json printed no JSON ({e}): {stdout}\n{stderr}"));
    let findings = report["findings"].as_array().expect("findings");
    let finding = findings
        .iter()
        .find(|f| f["check"] == name)
        .unwrap_or_else(|| panic!("no finding {name:?}: {stdout}"));
    let text = |key: &str| finding[key].as_str().unwrap_or_default().to_owned();
    (text("outcome"), text("detail"))
}

/// Runs `scenario` while `kinesync produce` runs (snapshot, then stream);
/// the producer is killed once the scenario is done.
async fn assert_verifies_equal(p: &Pipeline, table: &str) {
    let (code, stdout, stderr) = p.run(&["verify"]).await;
    assert_eq!(code, 0, "verify finds a difference:\n{stdout}{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("equal") && l.contains(table)),
        "{stdout}"
    );
}
