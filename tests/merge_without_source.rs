//! The merge never needs the source database: each table's shape travels
//! in the stream (shape records, docs/events.md), so `merge --once`,
//! `merge --print` and the daemon run with the source stopped, applying
//! schema changes made while the merge was not looking.

mod support;

use support::pg_cluster::Cluster;
use support::{connect, Pipeline, StreamRecord};

const TABLE: &str = "CREATE TABLE public.items (id integer PRIMARY KEY, n integer, s varchar(10));
     INSERT INTO items SELECT g, g * 10, 'r' || g FROM generate_series(1, 5) g;";

/// `(commit_lsn, lsn)` of a record.
fn position(record: &StreamRecord) -> (u64, u64) {
    let source = &record.event["source"];
    let at = |field: &str| {
        source[field]
            .as_u64()
            .unwrap_or_else(|| panic!("no {field}: {}", record.event))
    };
    (at("commit_lsn"), at("lsn"))
}

/// The column names of a shape record.
fn shape_columns(record: &StreamRecord) -> Vec<String> {
    record.event["shape"]["columns"]
        .as_array()
        .expect("shape.columns")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect()
}

/// The shape a change was written with: the newest shape record of its
/// table at or before it (by position, whatever shard it came from).
fn shape_of<'a>(shapes: &[&'a StreamRecord], change: &StreamRecord) -> Option<&'a StreamRecord> {
    shapes
        .iter()
        .filter(|s| s.event["shape"]["table"] == change.event["source"]["table"])
        .filter(|s| position(s) <= position(change))
        .max_by_key(|s| position(s))
        .copied()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_carries_a_shape_before_a_tables_first_change_and_after_alter_table() {
    let mut p = Pipeline::start("shapes_in_stream", TABLE, &["public.items"]).await;
    p.setup_and_produce().await;
    // The snapshot done first: a table rewrite (ALTER COLUMN TYPE) looks
    // empty to the snapshot's older MVCC snapshot.
    p.sync_producer().await;
    p.source
        .batch_execute(
            "INSERT INTO items VALUES (6, 60, 'six');
             ALTER TABLE items ADD COLUMN note text, ALTER COLUMN n TYPE bigint;
             INSERT INTO items VALUES (7, 7000000000, 'seven', 'a note');",
        )
        .await
        .expect("changes");
    p.sync_producer().await;
    p.stop_producer().await;

    let records = p.read_stream_with_shapes().await;
    let shapes: Vec<&StreamRecord> = records.iter().filter(|r| r.is_shape()).collect();
    let changes: Vec<&StreamRecord> = records.iter().filter(|r| !r.is_shape()).collect();
    let seen: Vec<String> = records.iter().map(|r| r.event.to_string()).collect();
    assert_eq!(changes.len(), 7, "5 snapshot rows and 2 inserts: {seen:#?}");
    for shape in &shapes {
        assert_eq!(shape.partition_key, "public.items", "{}", shape.event);
        assert!(
            shape.event["source"].get("table").is_none(),
            "{}",
            shape.event
        );
        assert_eq!(shape.event["shape"]["key"], "primary_key");
    }
    for change in &changes {
        let shape = shape_of(&shapes, change)
            .unwrap_or_else(|| panic!("no shape record at or before {}", change.event));
        let columns = shape_columns(shape);
        let after = change.event["after"].as_object().expect("after");
        assert_eq!(
            after.keys().cloned().collect::<Vec<_>>(),
            columns,
            "the change's columns are its shape's: {}\nshapes: {:?}",
            change.event,
            shapes
                .iter()
                .map(|s| (position(s), shape_columns(s)))
                .collect::<Vec<_>>()
        );
    }
    let last = changes
        .iter()
        .max_by_key(|c| position(c))
        .expect("a change");
    let newest = shape_of(&shapes, last).expect("shape");
    let n = &newest.event["shape"]["columns"][1];
    assert_eq!(
        (n["name"].as_str(), n["type"].as_str()),
        (Some("n"), Some("bigint")),
        "{n}"
    );
    assert_eq!(n["oid"], 20);
    let note = &newest.event["shape"]["columns"][3];
    assert_eq!(note["type"], "text", "{note}");
    let first = changes
        .iter()
        .min_by_key(|c| position(c))
        .expect("a change");
    let oldest = shape_of(&shapes, first).expect("the snapshot's shape");
    assert_eq!(oldest.event["shape"]["columns"][1]["type"], "integer");
    assert_eq!(
        oldest.event["shape"]["columns"][2]["type"],
        "character varying(10)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_merge_runs_with_the_source_stopped_and_applies_a_column_added_and_types_widened_meanwhile(
) {
    // A cluster of this test's own, to stop it.
    let cluster = Cluster::start("merge_nosource");
    let mut p =
        Pipeline::start_on(&cluster.url, "merge_nosource", TABLE, &["public.items"], "").await;
    p.setup_and_produce().await;
    p.assert_merge_converges(&["public.items"]).await;

    // Changes the mirror has not seen: a column added, two types widened,
    // rows that need them, an old row updated.
    p.source
        .batch_execute(
            "ALTER TABLE items ADD COLUMN note text;
             ALTER TABLE items ALTER COLUMN n TYPE bigint, ALTER COLUMN s TYPE varchar(50);
             INSERT INTO items VALUES (6, 6000000000, repeat('x', 50), 'noted');
             UPDATE items SET s = repeat('y', 45), note = 'old row' WHERE id = 2;
             DELETE FROM items WHERE id = 3;",
        )
        .await
        .expect("changes");
    p.sync_producer().await;
    p.stop_producer().await;
    cluster.stop().await;
    assert!(
        tokio_postgres::connect(&format!("{}/postgres", cluster.url), tokio_postgres::NoTls)
            .await
            .is_err(),
        "the source is still reachable"
    );

    // A table no shape describes: the source, the fallback, is down, so
    // the run stops with a line naming the fix.
    p.set_config("source", "tables = [\"public.items\", \"public.missing\"]");
    let out = p.run(&["merge", "--once"]).await;
    support::assert_one_line_error(&out, None, &["public.missing", "kinesync setup"]);
    p.set_config("source", "tables = [\"public.items\"]");

    let (code, printed, stderr) = p.run(&["merge", "--once", "--print"]).await;
    assert_eq!(code, 0, "merge --print with the source down: {stderr}");
    assert!(
        printed.contains("\"note\""),
        "the plan merges the new column: {printed}"
    );
    p.merge_once().await;

    let mirror_types: Vec<(String, String)> = p
        .mirror
        .query(
            "SELECT column_name::text, data_type::text || coalesce('(' || character_maximum_length || ')', '') \
             FROM information_schema.columns WHERE table_schema = 'mirror' AND table_name = 'items' \
             AND column_name IN ('n', 's', 'note') ORDER BY 1",
            &[],
        )
        .await
        .expect("mirror columns")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        mirror_types,
        [
            ("n".to_owned(), "bigint".to_owned()),
            ("note".to_owned(), "character varying(65535)".to_owned()),
            ("s".to_owned(), "character varying(200)".to_owned()),
        ],
        "mirror columns after the merge"
    );

    cluster.start_again().await;
    p.source = connect(&format!("{}/merge_nosource_src", cluster.url)).await;
    p.assert_mirror_equals_source("public.items").await;
}
