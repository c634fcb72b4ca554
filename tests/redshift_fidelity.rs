//! End to end, against the stricter Data API stand-in: the values and
//! shapes of issue 15 that SQL tested only on PostgreSQL's leniency would
//! break on Redshift (bytea, mixed-case and long names, DECIMAL scales,
//! BC and 5-digit years, float NaN, TIMETZ offsets, a wide table with
//! unchanged TOAST values, a 70 KB jsonb value, an event of ~1,020,000
//! bytes, an unresolvable TOAST placeholder with a multi-byte key), and
//! `kinesync verify` comparing through the documented conversions.

mod support;

use support::{text_rows, Pipeline};

/// `kinesync verify` exits 0 and finds `tables` tables equal; its output.
async fn assert_verify_equal(p: &Pipeline, tables: usize) -> String {
    let (code, stdout, stderr) = p.run_bounded(&["verify"]).await;
    assert_eq!(code, 0, "verify: {stdout}\n{stderr}");
    assert_eq!(stdout.matches("equal ").count(), tables, "{stdout}");
    stdout
}

const EDGES: &str = r#"
CREATE TABLE public.edges (
    id bigint PRIMARY KEY,
    b bytea,
    n38 numeric(38,38),
    n35 numeric(3,5),
    d date,
    ts timestamptz,
    f4 real,
    f8 double precision,
    tz timetz,
    long_text text
);
INSERT INTO public.edges VALUES
    (1, '\xdeadbeef', 0.12345678901234567890123456789012345678, 0.00123, '2024-02-29',
        '2024-01-02 03:04:05.123456+02', 1.5, 2.25, '13:45:00+05:30', 'short'),
    (2, '\x00', NULL, NULL, '0044-03-15 BC', '10000-01-01 00:00:00+00', 'NaN', 'Infinity', '23:30:00-04:00', NULL),
    (3, NULL, NULL, NULL, '10000-01-01', '0100-01-01 00:00:00+00 BC', '-Infinity', '5e-324', NULL, NULL);
"#;

#[tokio::test(flavor = "multi_thread")]
async fn edge_values_merge_and_verify_compares_through_the_documented_conversions() {
    let mut p = Pipeline::start("fid_edges", EDGES, &["public.edges"]).await;
    p.setup_and_produce().await;
    p.source
        .batch_execute(&format!(
            "INSERT INTO edges (id, b, f8, tz, long_text) VALUES (4, '\\xcafe', 'NaN', '00:15:00+01', '{}');
             UPDATE edges SET b = '\\x0102', d = '0001-01-01 BC' WHERE id = 1;",
            "é".repeat(40_000)
        ))
        .await
        .expect("writes");
    p.sync_producer().await;
    p.merge_once().await;

    let mirror = text_rows(
        &p.mirror,
        "SELECT id::text, encode(b, 'hex'), n38::text, n35::text, d::text, ts::text, f4::text, f8::text, tz::text
         FROM mirror.edges ORDER BY id",
    )
    .await;
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        mirror,
        [
            // id 1: DECIMAL(38,38) is exact text; a BC date became NULL.
            vec![
                s("1"),
                s("0102"),
                s("0.12345678901234567890123456789012345678"),
                s("0.00123"),
                None,
                s("2024-01-02 01:04:05.123456+00"),
                s("1.5"),
                s("2.25"),
                s("08:15:00+00")
            ],
            // id 2: BC and year-10000 values, NaN and infinities became NULL; TIMETZ in UTC.
            vec![
                s("2"),
                s("00"),
                None,
                None,
                None,
                None,
                None,
                None,
                s("03:30:00+00")
            ],
            // id 3: subnormal and -Infinity floats, year-10000 date, BC timestamp: NULL.
            vec![s("3"), None, None, None, None, None, None, None, None],
            vec![
                s("4"),
                s("cafe"),
                None,
                None,
                None,
                None,
                None,
                None,
                s("23:15:00+00")
            ],
        ]
    );

    // verify: no false difference, the conversions counted apart.
    let stdout = assert_verify_equal(&p, 1).await;
    assert!(
        stdout.contains("converted as documented: 4 rows"),
        "{stdout}"
    );

    // A real difference still exits 7.
    p.mirror
        .batch_execute("UPDATE mirror.edges SET tz = '09:15:00+00' WHERE id = 1")
        .await
        .expect("inject");
    let (code, stdout, _) = p.run_bounded(&["verify"]).await;
    assert_eq!(code, 7, "{stdout}");
    assert!(
        stdout.contains("DIFFERENT") && stdout.contains("rows differ: (1)"),
        "{stdout}"
    );
    p.stop_producer().await;
}

/// A schema and a table of 58 and 60 bytes: the mirror table's name is 120
/// bytes, its tombstone table's would be 141.
fn long_schema() -> String {
    format!("s{}", "c".repeat(57))
}

fn long_table() -> String {
    format!("t{}", "a".repeat(59))
}

#[tokio::test(flavor = "multi_thread")]
async fn mixed_case_keys_long_names_and_replica_identity_indexes_merge() {
    let (schema, table) = (long_schema(), long_table());
    let ddl = format!(
        r#"
CREATE TABLE public."Orders" ("OrderId" bigint, "LineNo" integer, "Note" text, PRIMARY KEY ("OrderId", "LineNo"));
INSERT INTO public."Orders" VALUES (1, 1, 'a'), (1, 2, 'b'), (2, 1, 'c');
CREATE SCHEMA "{schema}";
CREATE TABLE "{schema}"."{table}" (id bigint PRIMARY KEY, v text);
INSERT INTO "{schema}"."{table}" VALUES (1, 'x'), (2, 'y');
CREATE TABLE public.by_index (code text NOT NULL, v integer);
CREATE UNIQUE INDEX by_index_code ON public.by_index (code);
ALTER TABLE public.by_index REPLICA IDENTITY USING INDEX by_index_code;
INSERT INTO public.by_index VALUES ('a', 1), ('b', 2);
"#
    );
    let long = format!("{schema}.{table}");
    let mut p = Pipeline::start(
        "fid_names",
        &ddl,
        &["public.Orders", &long, "public.by_index"],
    )
    .await;
    p.setup_and_produce().await;
    p.source
        .batch_execute(&format!(
            r#"UPDATE "Orders" SET "Note" = 'a2' WHERE "OrderId" = 1 AND "LineNo" = 1;
               DELETE FROM "Orders" WHERE "OrderId" = 1 AND "LineNo" = 2;
               UPDATE "Orders" SET "LineNo" = 5 WHERE "OrderId" = 2;
               UPDATE "{schema}"."{table}" SET v = 'x2' WHERE id = 1;
               DELETE FROM "{schema}"."{table}" WHERE id = 2;
               UPDATE by_index SET v = 10 WHERE code = 'a';
               UPDATE by_index SET code = 'c' WHERE code = 'b';"#
        ))
        .await
        .expect("writes");
    p.sync_producer().await;
    p.merge_once().await;
    // The mirror keeps one row per key: mixed-case key columns were read.
    assert_eq!(
        text_rows(
            &p.mirror,
            r#"SELECT "orderid"::text, "lineno"::text, "note" FROM mirror."orders" ORDER BY 1, 2"#
        )
        .await,
        [
            vec![
                Some("1".to_owned()),
                Some("1".to_owned()),
                Some("a2".to_owned())
            ],
            vec![
                Some("2".to_owned()),
                Some("5".to_owned()),
                Some("c".to_owned())
            ],
        ]
    );
    // A column added to the long-named table reaches its mirror.
    p.source
        .batch_execute(&format!(
            r#"ALTER TABLE "{schema}"."{table}" ADD COLUMN extra integer;
               UPDATE "{schema}"."{table}" SET extra = 7 WHERE id = 1;"#
        ))
        .await
        .expect("add column");
    p.sync_producer().await;
    p.merge_once().await;
    assert_verify_equal(&p, 3).await;
    p.stop_producer().await;
}

/// Text of `bytes` bytes that PostgreSQL cannot compress (so it is stored
/// out of line and an update that leaves it alone sends the placeholder).
fn incompressible(column: &str, bytes: usize) -> String {
    format!(
        "{column} = (SELECT left(string_agg(md5(random()::text || g::text), ''), {bytes}) FROM generate_series(1, {}) AS g)",
        bytes / 32 + 1
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn wide_toast_updates_big_events_and_an_unresolvable_placeholder() {
    // The longest names PostgreSQL allows (63 bytes): one statement
    // resolving all 120 columns would be over the Data API's 100 KB.
    let columns: Vec<String> = (1..=120)
        .map(|i| format!("{}_{i:03}", "w".repeat(59)))
        .collect();
    let ddl = format!(
        "CREATE TABLE public.wide (id bigint PRIMARY KEY, counter integer, doc jsonb, bin bytea, {});
         CREATE TABLE public.big (id bigint PRIMARY KEY, {});
         CREATE TABLE public.toasty (k text PRIMARY KEY, v text, n integer);",
        columns.iter().map(|c| format!("{c} text")).collect::<Vec<_>>().join(", "),
        (1..=17).map(|i| format!("p{i} text")).collect::<Vec<_>>().join(", "),
    );
    let mut p = Pipeline::start(
        "fid_wide",
        &ddl,
        &["public.wide", "public.big", "public.toasty"],
    )
    .await;
    p.setup_and_produce().await;
    // 120 out-of-line text values, a 70 KB jsonb value and a bytea value.
    let sets: Vec<String> = columns.iter().map(|c| incompressible(c, 2_500)).collect();
    p.source
        .batch_execute(&format!(
            "INSERT INTO wide (id, counter) VALUES (1, 0), (2, 0);
             UPDATE wide SET {},
                 doc = (SELECT jsonb_agg(md5(g::text) || md5(random()::text)) FROM generate_series(1, 1000) AS g),
                 bin = decode((SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 200)), 'hex');",
            sets.join(", ")
        ))
        .await
        .expect("wide rows");
    // ~1,020,000 bytes in one event (17 values of 60,000 bytes).
    p.source
        .batch_execute(&format!(
            "INSERT INTO big VALUES (1, {})",
            (1..=17)
                .map(|_| "repeat('z', 60000)")
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .await
        .expect("big row");
    p.sync_producer().await;
    p.merge_once().await;
    // Updates that leave every TOASTed value unchanged.
    p.source
        .batch_execute(&format!(
            "UPDATE wide SET counter = counter + 1 WHERE id = 1;
             UPDATE wide SET counter = counter + 1;
             UPDATE wide SET {} = 'changed' WHERE id = 2;",
            columns[0]
        ))
        .await
        .expect("toast updates");
    p.sync_producer().await;
    p.merge_once().await;
    assert_verify_equal(&p, 3).await;
    assert_eq!(
        text_rows(&p.mirror, "SELECT count(*)::text FROM mirror.big").await,
        [vec![Some("1".to_owned())]]
    );

    // A placeholder the merge cannot resolve: the mirror lost the row. The
    // key is multi-byte and long, so the failure detail is too.
    let key = "é".repeat(600);
    p.source
        .batch_execute(&format!(
            "INSERT INTO toasty (k, n) VALUES ('{key}', 0); UPDATE toasty SET {};",
            incompressible("v", 4_000)
        ))
        .await
        .expect("toasty row");
    p.sync_producer().await;
    p.merge_once().await;
    p.mirror
        .batch_execute("DELETE FROM mirror.toasty")
        .await
        .expect("lose the mirror row");
    p.source
        .batch_execute("UPDATE toasty SET n = 1")
        .await
        .expect("update");
    p.sync_producer().await;
    let (code, stdout, stderr) = p.run_bounded(&["merge", "--once"]).await;
    assert_eq!(code, 3, "merge: {stdout}\n{stderr}");
    assert!(
        stderr.contains("unchanged TOAST value cannot be resolved")
            && stderr.contains("table public.toasty")
            && stderr.contains("column v")
            && stderr.contains("re-sync the table"),
        "{stderr}"
    );
    assert!(!stderr.contains("invalid hexadecimal"), "{stderr}");
    assert_eq!(
        text_rows(&p.mirror, "SELECT count(*)::text FROM mirror.toasty").await,
        [vec![Some("0".to_owned())]]
    );
    // The status row holds the (multi-byte, cut to 1,024 bytes) detail.
    let (_, status, _) = p.run_bounded(&["status"]).await;
    assert!(
        status.contains("failed") && status.contains("unchanged TOAST value"),
        "{status}"
    );
    p.stop_producer().await;
}
