//! The operating commands against the local stack: `check` names the fix for
//! each missing prerequisite, `status` reports lag and the last merge,
//! `verify` finds differences injected into a mirror, and the producer runs
//! under exactly the grants docs/security.md lists.

mod support;

use serde_json::Value;
use support::{assert_one_line_error, Pipeline};

const ORDERS: &str = "
CREATE TABLE public.orders (id bigint PRIMARY KEY, item text NOT NULL, qty integer);
INSERT INTO public.orders VALUES (1, 'apple', 3), (2, 'pear', NULL);
";

/// Every type family the mirror maps, with NULLs and edge values.
const EVERYTHING: &str = "
CREATE TABLE public.everything (
    id integer PRIMARY KEY,
    small smallint, big bigint, price numeric(12,2), exact numeric, ratio double precision, r real,
    flag boolean, name text, code char(5), label varchar(20), id2 uuid,
    day date, at timestamp, at_tz timestamptz, t time, blob bytea,
    doc jsonb, tags text[], span interval
);
INSERT INTO public.everything VALUES
    (1, 1, 10000000000, 12.30, 1.000000000000000000000000000000000000000001, 0.1, 1.5,
     true, 'héllo, \"world\" | ; ''quoted''', 'ab', 'x', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
     '2024-02-29', '2024-02-29 12:34:56.789', '2024-02-29 12:34:56.789+05:30', '23:59:59.5',
     '\\xdeadbeef', '{\"b\": [1, 2], \"a\": null}', '{x,y}', '1 day 02:03:04'),
    (2, NULL, NULL, NULL, 'NaN', 'NaN', '-Infinity', false, '', NULL, '', NULL,
     'infinity', '-infinity', NULL, NULL, '\\x', 'null', '{}', NULL),
    (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
";

/// `kinesync check` findings as JSON: (outcome, check, detail, fix).
async fn check_findings(
    p: &Pipeline,
    args: &[&str],
) -> (i32, Vec<(String, String, String, String)>) {
    let mut all = vec!["check", "--json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = p.run_bounded(&all).await;
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("check --json printed no JSON ({e}): {stdout}\n{stderr}"));
    let field = |f: &Value, k: &str| f[k].as_str().unwrap_or_default().to_owned();
    let findings = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                field(f, "outcome"),
                field(f, "check"),
                field(f, "detail"),
                field(f, "fix"),
            )
        })
        .collect();
    (code, findings)
}

/// The finding for `check`, which must have `outcome`.
fn finding<'a>(
    findings: &'a [(String, String, String, String)],
    check: &str,
    outcome: &str,
) -> &'a (String, String, String, String) {
    findings
        .iter()
        .find(|f| f.1 == check)
        .filter(|f| f.0 == outcome)
        .unwrap_or_else(|| panic!("expected `{check}` to be {outcome}: {findings:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn check_passes_on_a_ready_pipeline_and_its_probe_record_does_not_reach_any_mirror() {
    let mut p = Pipeline::start("ops_ready", ORDERS, &["public.orders"]).await;
    p.setup_and_produce().await;
    p.sync_producer().await;

    let (code, findings) = check_findings(&p, &["--expected-rate", "500"]).await;
    assert_eq!(code, 0, "a ready pipeline passes: {findings:#?}");
    for check in [
        "connection",
        "wal_level",
        "replication privilege",
        "table public.orders",
        "publication ops_ready",
        "slot ops_ready",
        "stream ops-ready-cdc",
        "shard capacity",
        "write",
        "Data API",
        "external schema kinesync_stream",
        "events view mirror.kinesync_events",
        "checkpoint mirror.kinesync_checkpoint",
    ] {
        finding(&findings, check, "ok");
    }
    // The local cluster keeps WAL for slots without limit: a warning with the setting.
    let keep = finding(&findings, "max_slot_wal_keep_size", "warn");
    assert!(
        keep.3.contains("ALTER SYSTEM SET max_slot_wal_keep_size"),
        "{keep:?}"
    );

    // Text output: one line per finding, fixes under it.
    let (code, stdout, _) = p.run_bounded(&["check", "--no-write"]).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("ok    source    wal_level: logical"),
        "{stdout}"
    );
    assert!(
        stdout.contains("skip  kinesis   write: --no-write"),
        "{stdout}"
    );

    // The probe record follows the event contract: a message event (`op`
    // "m", no row, no table) that every consumer skips (docs/events.md).
    let probes: Vec<Value> = p
        .read_stream()
        .await
        .iter()
        .filter(|r| r.partition_key == "kinesync-check")
        .map(|r| r.event.clone())
        .collect();
    assert_eq!(probes.len(), 1, "{probes:?}");
    let probe = &probes[0];
    assert_eq!(probe["op"], "m", "{probe}");
    assert!(
        probe["before"].is_null() && probe["after"].is_null(),
        "{probe}"
    );
    assert!(probe["source"]["table"].is_null(), "{probe}");
    assert_eq!(probe["source"]["connector"], "postgresql", "{probe}");
    assert_eq!(probe["message"]["prefix"], "kinesync-check", "{probe}");

    // One side at a time, each with only what its process needs.
    let (code, produce) = check_findings(&p, &["--no-write", "--for", "produce"]).await;
    assert_eq!(code, 0, "{produce:#?}");
    finding(&produce, "slot ops_ready", "ok");
    finding(&produce, "stream ops-ready-cdc", "ok");
    finding(&produce, "configuration", "skipped");
    assert!(!produce.iter().any(|f| f.1 == "Data API"), "{produce:#?}");
    let (code, merge) = check_findings(&p, &["--for", "merge"]).await;
    assert_eq!(code, 0, "{merge:#?}");
    finding(&merge, "Data API", "ok");
    finding(&merge, "table public.orders", "ok");
    finding(&merge, "idle check (schedule.skip_idle)", "ok");
    for producer_only in [
        "slot ops_ready",
        "replication privilege",
        "stream ops-ready-cdc",
        "write",
    ] {
        assert!(
            !merge.iter().any(|f| f.1 == producer_only),
            "{producer_only}: {merge:#?}"
        );
    }

    // The probe record sits in the stream; the merge skips it.
    p.source
        .batch_execute("UPDATE orders SET qty = 4 WHERE id = 1")
        .await
        .expect("update");
    p.assert_merge_converges(&["public.orders"]).await;
    let (code, findings) = check_findings(&p, &["--no-write"]).await;
    assert_eq!(code, 0, "{findings:#?}");
    finding(&findings, "retention margin", "ok");

    // The last merge getting old: a warning at retention_warn_fraction, a
    // failure past the stream's retention.
    for (age, outcome) in [("20 hours", "warn"), ("25 hours", "fail")] {
        p.mirror
            .batch_execute(&format!(
                "UPDATE mirror.kinesync_checkpoint SET merged_at = now()::timestamp - interval '{age}'"
            ))
            .await
            .expect("age the checkpoint");
        let (code, findings) = check_findings(&p, &["--no-write"]).await;
        assert_eq!(code, if outcome == "fail" { 6 } else { 0 }, "{findings:#?}");
        let margin = finding(&findings, "retention margin", outcome);
        assert!(
            margin.3.contains("docs/operations.md") || margin.3.contains("kinesync merge"),
            "{margin:?}"
        );
    }
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn check_fails_and_names_the_fix_for_each_missing_prerequisite() {
    let p = Pipeline::start(
        "ops_missing",
        "CREATE TABLE public.orders (id bigint PRIMARY KEY, item text);
         CREATE TABLE public.audit (at timestamptz, what text);
         CREATE TABLE public.extra (id int PRIMARY KEY);
         CREATE PUBLICATION ops_missing FOR TABLE public.orders;",
        &[
            "public.orders",
            "public.audit",
            "public.extra",
            "public.gone",
        ],
    )
    .await;
    p.set_config(
        "kinesis",
        "stream = \"ops-missing-no-such-stream\"\nregion = \"us-east-1\"",
    );

    let (code, findings) = check_findings(&p, &["--no-write"]).await;
    assert_eq!(code, 6, "missing prerequisites exit 6: {findings:#?}");
    let audit = finding(&findings, "table public.audit", "fail");
    assert!(
        audit
            .3
            .contains("ALTER TABLE \"public\".\"audit\" REPLICA IDENTITY USING INDEX"),
        "{audit:?}"
    );
    let gone = finding(&findings, "table public.gone", "fail");
    assert!(gone.2.contains("does not exist"), "{gone:?}");
    let publication = finding(&findings, "publication ops_missing", "fail");
    assert!(
        publication
            .3
            .contains("ALTER PUBLICATION \"ops_missing\" ADD TABLE \"public\".\"audit\", \"public\".\"extra\""),
        "{publication:?}"
    );
    let stream = finding(&findings, "stream ops-missing-no-such-stream", "fail");
    assert!(stream.3.contains("aws kinesis create-stream"), "{stream:?}");
    // The daemon would run every tick: a warning naming the grants.
    let idle = finding(&findings, "idle check (schedule.skip_idle)", "warn");
    assert!(idle.3.contains("kinesis:GetRecords"), "{idle:?}");
    // Redshift before `kinesync setup`: to do, not a failure.
    for object in [
        "external schema kinesync_stream",
        "events view mirror.kinesync_events",
        "checkpoint mirror.kinesync_checkpoint",
    ] {
        let missing = finding(&findings, object, "todo");
        assert!(missing.2.contains("to do: run setup"), "{missing:?}");
        assert!(missing.3.contains("kinesync setup"), "{missing:?}");
    }
    let (code, merge) = check_findings(&p, &["--for", "merge"]).await;
    assert_eq!(code, 6, "public.gone is still missing: {merge:#?}");
    assert!(
        merge
            .iter()
            .all(|f| f.0 != "fail" || f.1 == "table public.gone" || f.1 == "table public.audit"),
        "before setup only the tables fail for the merge side: {merge:#?}"
    );

    // A role without REPLICATION and without SELECT.
    p.source
        .batch_execute(
            "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ops_weak') THEN \
               EXECUTE 'DROP OWNED BY ops_weak'; EXECUTE 'DROP ROLE ops_weak'; END IF; END $$;
             CREATE ROLE ops_weak LOGIN;",
        )
        .await
        .expect("role");
    let url = format!("{}/ops_missing_src", p.stack.pg_url).replacen("postgres@", "ops_weak@", 1);
    p.set_config("source", &format!("url = \"{url}\""));
    let (code, findings) = check_findings(&p, &["--no-write"]).await;
    assert_eq!(code, 6);
    let replication = finding(&findings, "replication privilege", "fail");
    assert!(
        replication
            .3
            .contains("ALTER ROLE \"ops_weak\" REPLICATION"),
        "{replication:?}"
    );
    let orders = finding(&findings, "table public.orders", "fail");
    assert!(
        orders
            .3
            .contains("GRANT SELECT ON \"public\".\"orders\" TO \"ops_weak\""),
        "{orders:?}"
    );

    // Unreachable source and Data API: each named, nothing else attempted on them.
    p.set_config(
        "source",
        "url = \"postgres://postgres@127.0.0.1:1/nowhere\"",
    );
    let mut p = p;
    p.set_env("AWS_ENDPOINT_URL_REDSHIFT_DATA", "http://127.0.0.1:1");
    p.set_env("AWS_MAX_ATTEMPTS", "1");
    let (code, findings) = check_findings(&p, &["--no-write"]).await;
    assert_eq!(code, 6);
    finding(&findings, "connection", "fail");
    let api = finding(&findings, "Data API", "fail");
    assert!(api.3.contains("redshift-data:ExecuteStatement"), "{api:?}");
    assert!(
        api.2
            .contains("could not connect to the endpoint URL \"http://127.0.0.1:1\""),
        "{api:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_asks_for_shards_when_the_expected_rate_exceeds_the_stream() {
    let p = Pipeline::start("ops_shards", ORDERS, &["public.orders"]).await;
    // The test stream has 2 shards: 2,000 records/s, 1,600 with headroom.
    let (code, findings) = check_findings(&p, &["--no-write", "--expected-rate", "5000"]).await;
    assert_eq!(code, 6);
    let shards = finding(&findings, "shard capacity", "fail");
    assert!(
        shards.3.contains("update-shard-count") && shards.3.contains("--target-shard-count 7"),
        "{shards:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_slot_lag_and_the_last_merge_and_its_failure() {
    let mut p = Pipeline::start("ops_status", ORDERS, &["public.orders"]).await;
    let status = |out: (i32, String, String)| -> Value {
        assert_eq!(out.0, 0, "status exits 0: {}{}", out.1, out.2);
        serde_json::from_str(&out.1).unwrap_or_else(|e| panic!("{e}: {}", out.1))
    };
    // Before anything ran: no slot, no merge, and it says so.
    p.setup().await;
    let s = status(p.run_bounded(&["status", "--json"]).await);
    assert_eq!(s["slot"]["exists"], false, "{s:#}");
    assert_eq!(s["merge"]["last_success_at"], Value::Null, "{s:#}");

    p.start_producer().await;
    p.sync_producer().await;
    p.merge_once().await;
    let s = status(p.run_bounded(&["status", "--json"]).await);
    assert_eq!(s["slot"]["exists"], true, "{s:#}");
    assert_eq!(s["slot"]["active"], true, "{s:#}");
    assert!(
        s["slot"]["confirmed_lsn"]
            .as_str()
            .is_some_and(|l| l.contains('/')),
        "{s:#}"
    );
    assert!(
        s["slot"]["lag_bytes"].as_i64().is_some_and(|b| b >= 0),
        "{s:#}"
    );
    assert_eq!(s["merge"]["last_run_result"], "ok", "{s:#}");
    assert!(s["merge"]["last_success_at"].is_string(), "{s:#}");
    let margin = s["merge"]["retention_margin_seconds"]
        .as_i64()
        .expect("margin");
    assert!(
        margin > 23 * 3600,
        "a fresh merge leaves almost the whole retention: {s:#}"
    );

    // A failed merge is reported with its reason.
    p.mirror
        .batch_execute(
            "ALTER TABLE mirror.orders ADD CONSTRAINT no_poison CHECK (item <> 'poison')",
        )
        .await
        .expect("constraint");
    p.source
        .batch_execute("INSERT INTO orders VALUES (3, 'poison', 1)")
        .await
        .expect("insert");
    p.sync_producer().await;
    let (code, _, _) = p.run(&["merge", "--once"]).await;
    assert_eq!(code, 3);
    let s = status(p.run_bounded(&["status", "--json"]).await);
    assert_eq!(s["merge"]["last_run_result"], "failed", "{s:#}");
    assert!(
        s["merge"]["last_run_detail"]
            .as_str()
            .is_some_and(|d| d.contains("no_poison")),
        "{s:#}"
    );
    let (_, text, _) = p.run_bounded(&["status"]).await;
    assert!(
        text.contains("slot ops_status: producer connected"),
        "{text}"
    );
    assert!(text.contains(": failed: merge failed"), "{text}");
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_finds_every_type_equal_and_then_names_injected_differences() {
    let mut p = Pipeline::start(
        "ops_verify",
        &format!("{EVERYTHING}{ORDERS}"),
        &["public.everything", "public.orders"],
    )
    .await;
    p.setup_and_produce().await;
    p.sync_producer().await;
    p.merge_once().await;

    let (code, stdout, stderr) = p.run_bounded(&["verify"]).await;
    assert_eq!(
        code, 0,
        "every type compares equal after a merge:\n{stdout}{stderr}"
    );
    assert!(
        stdout.contains("equal      public.everything = mirror.everything (3 rows)"),
        "{stdout}"
    );
    assert!(stdout.contains("newest event committed"), "{stdout}");

    // Inject: a changed row, a lost row, an extra row.
    p.mirror
        .batch_execute(
            "UPDATE mirror.orders SET qty = 99 WHERE id = 1;
             UPDATE mirror.orders SET id = 77 WHERE id = 2;
             UPDATE mirror.everything SET code = 'zz' WHERE id = 1;",
        )
        .await
        .expect("inject");
    let (code, stdout, stderr) = p.run_bounded(&["verify", "--json"]).await;
    assert_eq!(code, 7, "a difference exits 7: {stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("json");
    let table = |name: &str| {
        report["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|t| t["table"] == name)
            .cloned()
            .expect("table in report")
    };
    let orders = table("public.orders");
    assert_eq!(orders["equal"], false);
    assert_eq!(orders["source_rows"], 2);
    assert_eq!(orders["mirror_rows"], 2);
    assert_eq!(orders["only_in_source"], serde_json::json!(["2"]));
    assert_eq!(orders["only_in_mirror"], serde_json::json!(["77"]));
    assert_eq!(orders["different_rows"], serde_json::json!(["1"]));
    assert_eq!(
        table("public.everything")["different_rows"],
        serde_json::json!(["1"])
    );

    // --table narrows it; the text names the keys.
    let (code, stdout, _) = p.run_bounded(&["verify", "--table", "public.orders"]).await;
    assert_eq!(code, 7);
    assert!(
        stdout.contains("only in source: (2); only in mirror: (77); rows differ: (1)"),
        "{stdout}"
    );
    assert!(!stdout.contains("everything"), "{stdout}");
    p.stop_producer().await;
}

/// The SQL recipe of docs/security.md ("Recipe, run as a superuser"), for
/// `role` and `tables`: the test runs exactly what the docs tell users to run.
fn documented_grants(role: &str, tables: &str, publication: &str) -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/security.md"))
        .expect("docs/security.md");
    let start = doc
        .find("Recipe, run as a superuser")
        .expect("recipe in docs/security.md");
    let block = &doc[start..];
    let sql_start = block.find("```sql\n").expect("sql block") + 7;
    let sql = &block[sql_start..sql_start + block[sql_start..].find("```").expect("block end")];
    sql.replace("PASSWORD '...'", "PASSWORD 'unused-trust-auth'")
        .replace("public.orders, public.customers", tables)
        .replace(
            "PUBLICATION kinesync",
            &format!("PUBLICATION {publication}"),
        )
        .replace("kinesync", role)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_producer_streams_under_exactly_the_documented_grants() {
    let role = "ops_documented";
    let mut p = Pipeline::start(
        "ops_grants",
        "CREATE TABLE public.orders (id bigint PRIMARY KEY, item text);
         CREATE TABLE public.customers (id bigint PRIMARY KEY, name text);
         INSERT INTO orders VALUES (1, 'a'); INSERT INTO customers VALUES (1, 'c');",
        &["public.orders", "public.customers"],
    )
    .await;
    let recipe = documented_grants(role, "public.orders, public.customers", "ops_grants");
    assert!(
        recipe.contains(&format!("CREATE ROLE {role} WITH LOGIN REPLICATION")),
        "{recipe}"
    );
    p.source
        .batch_execute(&format!(
            "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN \
               EXECUTE 'DROP OWNED BY {role}'; EXECUTE 'DROP ROLE {role}'; END IF; END $$;
             {recipe}"
        ))
        .await
        .unwrap_or_else(|e| panic!("the documented recipe runs: {e}\n{recipe}"));
    let url =
        format!("{}/ops_grants_src", p.stack.pg_url).replacen("postgres@", &format!("{role}@"), 1);
    // The recipe names everything after the role, its request table too.
    p.set_config(
        "source",
        &format!("url = \"{url}\"\nresync_table = \"public.{role}_resync\""),
    );
    let superuser: bool = p
        .source
        .query_one(
            &format!("SELECT rolsuper FROM pg_roles WHERE rolname = '{role}'"),
            &[],
        )
        .await
        .expect("role")
        .get(0);
    assert!(!superuser);

    let (code, findings) = check_findings(&p, &["--no-write"]).await;
    assert!(
        findings
            .iter()
            .filter(|f| f.1.starts_with("table ")
                || f.1.starts_with("publication")
                || f.1 == "replication privilege")
            .all(|f| f.0 == "ok"),
        "the documented grants pass check (exit {code}): {findings:#?}"
    );

    p.setup_and_produce().await;
    p.source
        .batch_execute("INSERT INTO orders VALUES (2, 'b'); UPDATE customers SET name = 'd'; DELETE FROM orders WHERE id = 1;")
        .await
        .expect("writes");
    p.assert_merge_converges(&["public.orders", "public.customers"])
        .await;
    // Restart: the snapshot marker (publication comment) was written by the role.
    p.stop_producer().await;
    p.start_producer().await;
    p.source
        .batch_execute("INSERT INTO orders VALUES (3, 'c')")
        .await
        .expect("write");
    p.assert_merge_converges(&["public.orders"]).await;
    // A resync, through the documented request table.
    p.run_ok(&["resync", "public.orders", "--wait"]).await;
    p.assert_merge_converges(&["public.orders"]).await;
    p.stop_producer().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn check_names_the_wal_level_fix_on_a_server_without_logical_decoding() {
    // A cluster of its own: the shared one must keep wal_level = logical.
    let cluster = support::pg_cluster::Cluster::start_with("ops_wal", "wal_level = replica");
    let url = format!("{}/postgres", cluster.url);
    let admin = support::connect(&url).await;
    admin
        .batch_execute("CREATE TABLE public.orders (id bigint PRIMARY KEY)")
        .await
        .expect("table");
    let p = Pipeline::start("ops_wal", ORDERS, &["public.orders"]).await;
    p.set_config("source", &format!("url = \"{url}\""));
    let (code, findings) = check_findings(&p, &["--no-write"]).await;
    assert_eq!(code, 6, "{findings:#?}");
    let wal = finding(&findings, "wal_level", "fail");
    assert!(wal.2.starts_with("replica"), "{wal:?}");
    assert!(
        wal.3.contains("ALTER SYSTEM SET wal_level = logical")
            && wal.3.contains("rds.logical_replication"),
        "{wal:?}"
    );
    finding(&findings, "table public.orders", "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_refuses_a_publication_that_skips_operations_and_a_foreign_slot_of_the_same_name() {
    let p = Pipeline::start(
        "ops_foreign",
        "CREATE TABLE public.orders (id bigint PRIMARY KEY);
         CREATE PUBLICATION ops_foreign FOR TABLE public.orders WITH (publish = 'insert, update');",
        &["public.orders"],
    )
    .await;
    p.source
        .batch_execute("SELECT pg_create_logical_replication_slot('ops_foreign', 'test_decoding')")
        .await
        .expect("slot");
    let (code, findings) = check_findings(&p, &["--no-write"]).await;
    assert_eq!(code, 6, "{findings:#?}");
    let publication = finding(&findings, "publication ops_foreign", "fail");
    assert!(
        publication
            .3
            .contains("SET (publish = 'insert, update, delete, truncate')"),
        "{publication:?}"
    );
    let slot = finding(&findings, "slot ops_foreign", "fail");
    assert!(slot.2.contains("plugin test_decoding"), "{slot:?}");
    p.source
        .batch_execute("SELECT pg_drop_replication_slot('ops_foreign')")
        .await
        .expect("drop slot");
}

/// Names of the relations and schemas in the mirror database that
/// kinesync's Redshift objects live in (the stand-in keeps them there).
async fn redshift_leftovers(p: &Pipeline) -> Vec<String> {
    let rows = p
        .mirror
        .query(
            "SELECT n.nspname || coalesce('.' || c.relname, '') FROM pg_namespace n \
             LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'v', 'm', 'p') \
             WHERE n.nspname IN ('mirror', 'kinesync_stream') ORDER BY 1",
            &[],
        )
        .await
        .expect("mirror catalog");
    rows.iter().map(|r| r.get(0)).collect()
}

/// The count(*) of `query` (on the mirror database) with `table` as $1.
async fn mirror_count(p: &Pipeline, query: &str, table: &str) -> i64 {
    let row = p
        .mirror
        .query_one(query, &[&table])
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    row.get(0)
}

/// Rows of mirror.kinesync_shapes (the merge's stored table shapes) of
/// `table` (in schema public).
async fn stored_shapes(p: &Pipeline, table: &str) -> i64 {
    let query = "SELECT count(*) FROM mirror.kinesync_shapes WHERE source_schema = 'public' AND source_table = $1";
    mirror_count(p, query, table).await
}

async fn publication_exists(p: &Pipeline) -> bool {
    let row = p
        .source
        .query_one(
            "SELECT count(*) FROM pg_publication WHERE pubname = $1",
            &[&p.name],
        )
        .await
        .expect("publication query");
    row.get::<_, i64>(0) > 0
}

/// docs/operations.md, "Removing a pipeline": teardown refuses while the
/// producer streams and without confirmation, `--print` names every object,
/// and `--yes --redshift` leaves no slot, no publication and no Redshift
/// object; a second teardown finds nothing left and succeeds.
#[tokio::test]
async fn teardown_leaves_no_slot_no_publication_and_no_redshift_object() {
    let mut p = Pipeline::start("ops_teardown", ORDERS, &["public.orders"]).await;
    p.setup_and_produce().await;
    p.sync_producer().await;
    p.merge_once().await;
    p.assert_mirror_equals_source("public.orders").await;
    assert!(!redshift_leftovers(&p).await.is_empty());
    assert_eq!(stored_shapes(&p, "orders").await, 1);

    let refused = p.run(&["teardown", "--yes", "--redshift"]).await;
    assert_one_line_error(&refused, Some(1), &["in use by process", "stop it first"]);
    p.stop_producer().await;

    let unconfirmed = p.run(&["teardown", "--redshift"]).await;
    assert_one_line_error(&unconfirmed, Some(2), &["pass --yes to confirm", "--print"]);
    let printed = p.run_ok(&["teardown", "--redshift", "--print"]).await;
    for needle in [
        "DROP MATERIALIZED VIEW IF EXISTS \"mirror\".\"kinesync_events\";",
        "DROP TABLE IF EXISTS \"mirror\".\"orders\";",
        "DROP TABLE IF EXISTS \"mirror\".\"kinesync_tombstones__orders\";",
        "DROP SCHEMA IF EXISTS \"kinesync_stream\";",
        "DELETE FROM \"mirror\".\"kinesync_shapes\" WHERE source_schema = 'public' AND source_table = 'orders';",
        "DROP TABLE IF EXISTS \"mirror\".\"kinesync_shapes\";",
        "DROP PROCEDURE \"mirror\".\"sp_kinesync_execute\"(VARCHAR(65535), VARCHAR(65535),",
        "SELECT pg_drop_replication_slot('ops_teardown');",
        "DROP PUBLICATION IF EXISTS \"ops_teardown\";",
    ] {
        assert!(printed.contains(needle), "{needle} in\n{printed}");
    }
    assert!(p.slot_exists().await && publication_exists(&p).await);
    assert!(
        !redshift_leftovers(&p).await.is_empty(),
        "--print ran nothing"
    );

    let done = p.run_ok(&["teardown", "--yes", "--redshift"]).await;
    assert!(done.contains("dropped the mirror schema"), "{done}");
    assert!(
        done.contains("removed the stored shapes of 1 tables"),
        "{done}"
    );
    assert!(!p.slot_exists().await, "{done}");
    assert!(!publication_exists(&p).await, "{done}");
    assert_eq!(redshift_leftovers(&p).await, Vec::<String>::new(), "{done}");

    let again = p.run_ok(&["teardown", "--yes", "--redshift"]).await;
    assert!(
        again.contains("nothing to drop there") && again.contains("did not exist"),
        "{again}"
    );
}

const TWO_TABLES: &str = "
CREATE TABLE public.orders (id bigint PRIMARY KEY, item text NOT NULL, qty integer);
CREATE TABLE public.items (id int PRIMARY KEY, name text);
INSERT INTO public.orders VALUES (1, 'apple', 3), (2, 'pear', NULL);
INSERT INTO public.items VALUES (1, 'one'), (2, 'two');
";

/// Rows of the events view naming `table`.
async fn events_of(p: &Pipeline, table: &str) -> i64 {
    let query =
        "SELECT count(*) FROM mirror.kinesync_events WHERE payload->'source'->>'table' = $1";
    mirror_count(p, query, table).await
}

/// docs/operations.md, "Removing a table": a table taken out of
/// source.tables leaves the publication at the producer's next start and
/// its changes stop; its mirror is kept, frozen, until `teardown --table`
/// drops it (refused while the table is still configured); the other
/// tables, the slot and the publication are untouched.
#[tokio::test]
async fn a_removed_table_stops_streaming_and_its_mirror_is_kept_until_dropped() {
    let mut p = Pipeline::start("ops_remove", TWO_TABLES, &["public.orders", "public.items"]).await;
    p.setup_and_produce().await;
    p.assert_merge_converges(&["public.orders", "public.items"])
        .await;
    p.stop_producer().await;

    p.set_config("source", "tables = [\"public.orders\"]");
    p.start_producer().await;
    p.source
        .batch_execute(
            "INSERT INTO public.items VALUES (3, 'three'); INSERT INTO public.orders VALUES (3, 'fig', 1);",
        )
        .await
        .expect("changes");
    let items_before = events_of(&p, "items").await;
    p.assert_merge_converges(&["public.orders"]).await;
    assert_eq!(
        events_of(&p, "items").await,
        items_before,
        "no new items events"
    );
    let kept = p
        .mirror
        .query_one("SELECT count(*) FROM mirror.items", &[])
        .await
        .expect("kept mirror");
    assert_eq!(kept.get::<_, i64>(0), 2, "the mirror is kept as it was");
    let published = p
        .source
        .query(
            "SELECT tablename::text FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1",
            &[&p.name],
        )
        .await
        .expect("publication tables");
    let published: Vec<String> = published.iter().map(|r| r.get(0)).collect();
    assert_eq!(published, ["orders"]);

    let still = p
        .run(&["teardown", "--table", "public.orders", "--yes"])
        .await;
    assert_one_line_error(&still, Some(2), &["still in source.tables"]);
    let printed = p
        .run_ok(&["teardown", "--table", "public.items", "--print"])
        .await;
    for needle in [
        "DROP TABLE IF EXISTS \"mirror\".\"items\";",
        "DELETE FROM \"mirror\".\"kinesync_shapes\" WHERE source_schema = 'public' AND source_table = 'items';",
    ] {
        assert!(printed.contains(needle), "{needle} in\n{printed}");
    }
    assert_eq!(stored_shapes(&p, "items").await, 1, "--print ran nothing");
    p.run_ok(&["teardown", "--table", "public.items", "--yes"])
        .await;
    assert_eq!(stored_shapes(&p, "items").await, 0, "items' shape is gone");
    assert_eq!(
        stored_shapes(&p, "orders").await,
        1,
        "orders' shape is kept"
    );
    let left = p
        .mirror
        .query(
            "SELECT relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'mirror' AND relname LIKE '%items%'",
            &[],
        )
        .await
        .expect("mirror catalog");
    assert!(left.is_empty(), "items' mirror objects are gone");
    assert!(p.slot_exists().await);
    p.assert_merge_converges(&["public.orders"]).await;
    p.stop_producer().await;
}

/// The tombstones of mirror.orders, by key.
async fn tombstone_keys(p: &Pipeline) -> Vec<Vec<Option<String>>> {
    support::text_rows(
        &p.mirror,
        "SELECT id::text FROM mirror.kinesync_tombstones__orders ORDER BY id",
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn pruning_drops_only_the_tombstones_below_the_slots_confirmed_position() {
    let mut p = Pipeline::start("ops_prune", ORDERS, &["public.orders"]).await;
    p.setup_and_produce().await;
    p.source
        .batch_execute(
            "INSERT INTO orders VALUES (3, 'fig', 1); DELETE FROM orders WHERE id IN (1, 2)",
        )
        .await
        .expect("deletes");
    p.sync_producer().await;
    p.merge_once().await;
    let deleted = [[Some("1".to_owned())], [Some("2".to_owned())]];
    assert_eq!(
        tombstone_keys(&p).await,
        deleted,
        "each delete left a tombstone"
    );
    // A delete the slot has not confirmed yet (as if still in flight): its
    // tombstone sits above the confirmed position and must stay.
    p.mirror
        .batch_execute(
            "INSERT INTO mirror.kinesync_tombstones__orders (id, _kinesync_commit_lsn, _kinesync_lsn) \
             VALUES (99, 4611686018427387904, 4611686018427387904)",
        )
        .await
        .expect("unconfirmed tombstone");

    let (code, stdout, stderr) = p.run(&["merge", "--once", "--prune-tombstones"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("pruned the tombstones of 1 table(s) below the slot's confirmed LSN"),
        "{stdout}"
    );
    assert_eq!(tombstone_keys(&p).await, [[Some("99".to_owned())]]);
    p.assert_mirror_equals_source("public.orders").await;

    // Without the slot the position is unknown: nothing is pruned.
    p.stop_producer().await;
    p.source
        .execute("SELECT pg_drop_replication_slot($1)", &[&p.name])
        .await
        .expect("drop slot");
    let out = p.run(&["merge", "--once", "--prune-tombstones"]).await;
    assert_one_line_error(
        &out,
        Some(4),
        &["replication slot", "not found", "source.slot"],
    );
    assert_eq!(tombstone_keys(&p).await, [[Some("99".to_owned())]]);
}

/// Rows of the events view (the stand-in keeps it as a table).
async fn view_rows(p: &Pipeline) -> i64 {
    p.mirror
        .query_one("SELECT count(*) FROM mirror.kinesync_events", &[])
        .await
        .expect("events view")
        .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuilt_events_view_rereads_the_stream_and_changes_nothing_in_the_mirror() {
    let mut p = Pipeline::start("ops_rebuild", ORDERS, &["public.orders"]).await;
    p.setup_and_produce().await;
    p.source
        .batch_execute(
            "INSERT INTO orders VALUES (3, 'fig', 1);
             UPDATE orders SET qty = 7 WHERE id = 3;
             DELETE FROM orders WHERE id IN (1, 2)",
        )
        .await
        .expect("changes");
    p.sync_producer().await;
    // Pruned tombstones: the inserts of keys 1 and 2 come back with the
    // re-read, and only their deletes, re-read too, keep them out.
    p.run_ok(&["merge", "--once", "--prune-tombstones"]).await;
    assert_eq!(tombstone_keys(&p).await, Vec::<Vec<Option<String>>>::new());
    let before = view_rows(&p).await;
    assert!(before > 0);

    let out = p
        .run_ok(&["merge", "--once", "--rebuild-events-view"])
        .await;
    assert!(out.contains("rebuilt the events view"), "{out}");
    assert_eq!(view_rows(&p).await, 0, "the view starts empty");
    p.source
        .batch_execute("INSERT INTO orders VALUES (4, 'kiwi', 2); UPDATE orders SET item = 'fig2' WHERE id = 3")
        .await
        .expect("changes after the rebuild");
    p.sync_producer().await;
    p.merge_once().await;
    p.assert_mirror_equals_source("public.orders").await;
    // The stand-in's stream keeps every record: the new view read them all
    // again (on Redshift, what the retention still holds).
    assert!(view_rows(&p).await > before, "the stream was read again");
    assert_eq!(
        tombstone_keys(&p).await,
        [[Some("1".to_owned())], [Some("2".to_owned())]],
        "the re-read deletes left their tombstones again"
    );
    p.stop_producer().await;
}
