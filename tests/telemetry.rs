//! Telemetry against the real local stack: `/metrics`, `/healthz` and
//! `/readyz` of a running producer and merge daemon (docs/operations.md,
//! "Metrics and health").
//!
//! Each process listens on `127.0.0.1:0` (a free port it picks) and the
//! test reads the address from the process's log line. Everything is polled
//! with a deadline.

mod support;

use support::kinesis_proxy::{FaultPlan, KinesisProxy};
use support::telemetry::{get, listen_address, sample};
use support::{assert_one_line_error, poll, Pipeline, Stack};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

const SCHEMA: &str = "CREATE TABLE public.items (id int PRIMARY KEY, note text);";
const ROWS: i64 = 50;

/// Polls `/metrics` until every `(series, minimum)` is at least its minimum.
async fn wait_for_metrics(addr: &str, wanted: &[(&str, f64)]) -> String {
    poll(&format!("metrics {wanted:?} at {addr}"), || async {
        let answer = get(addr, "/metrics").await?;
        (answer.status == 200
            && wanted
                .iter()
                .all(|(series, min)| sample(&answer.body, series).is_some_and(|v| v >= *min)))
        .then_some(answer.body)
    })
    .await
}

/// Polls `path` until it answers `status`; returns the body.
async fn wait_for_status(addr: &str, path: &str, status: u16) -> String {
    poll(&format!("{path} at {addr} to answer {status}"), || async {
        let answer = get(addr, path).await?;
        (answer.status == status).then_some(answer.body)
    })
    .await
}

/// `metrics` names this process in build_info and has no series starting
/// with `foreign` (the other process's families).
fn assert_only_own_families(metrics: &str, process: &str, foreign: &str) {
    let version = env!("CARGO_PKG_VERSION");
    let info = format!("kinesync_build_info{{version=\"{version}\",process=\"{process}\"}}");
    assert_eq!(sample(metrics, &info), Some(1.0), "{info} in\n{metrics}");
    let stray: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with(foreign) || l.contains(&format!(" {foreign}")))
        .collect();
    assert!(stray.is_empty(), "the other process's families: {stray:?}");
}

async fn insert_rows(pipeline: &Pipeline) {
    pipeline
        .source
        .execute(
            "INSERT INTO public.items SELECT g, 'row ' || g FROM generate_series(1, $1::bigint) g",
            &[&ROWS],
        )
        .await
        .expect("insert");
}

#[tokio::test]
async fn a_running_producer_exports_its_progress_and_is_alive_and_ready() {
    let mut p = Pipeline::start("tel_producer", SCHEMA, &["public.items"]).await;
    p.set_env("KINESYNC_TELEMETRY__LISTEN", "127.0.0.1:0");
    p.start_producer().await;
    let addr = listen_address(&p.dir.join("produce.log")).await;
    insert_rows(&p).await;
    p.sync_producer().await;

    let metrics = wait_for_metrics(
        &addr,
        &[
            ("kinesync_events_put_total", ROWS as f64),
            ("kinesync_events_read_total", ROWS as f64),
            ("kinesync_put_bytes_total", 1.0),
            ("kinesync_slot_confirmed_lsn", 1.0),
            ("kinesync_put_records_duration_seconds_count", 1.0),
            ("kinesync_put_requests_total{result=\"ok\"}", 1.0),
            ("kinesync_put_last_success_timestamp_seconds", 1.0),
        ],
    )
    .await;
    let lag = sample(&metrics, "kinesync_commit_to_ack_lag_seconds").expect("lag exported");
    assert!((0.0..60.0).contains(&lag), "commit-to-ack lag {lag}");
    // Only the producer's own families, plus build_info and the slot lag.
    assert_only_own_families(&metrics, "produce", "kinesync_merge_");
    assert!(
        sample(&metrics, "kinesync_slot_lag_bytes").is_some_and(|b| b >= 0.0),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"), "OpenMetrics text:\n{metrics}");

    let alive = wait_for_status(&addr, "/healthz", 200).await;
    assert!(alive.starts_with("ok"), "{alive}");
    let ready = wait_for_status(&addr, "/readyz", 200).await;
    assert_eq!(ready, "ok source\nok kinesis\n");
    // `kinesync health` (the containers' health check) asks the same listener.
    for args in [
        &["health", "--addr", &addr][..],
        &["health", "--ready", "--addr", &addr],
    ] {
        let (code, stdout, stderr) = p.run_bounded(args).await;
        assert_eq!(code, 0, "{args:?}: {stdout}{stderr}");
        assert!(stdout.starts_with("ok"), "{args:?}: {stdout}");
    }

    // `kinesync status` reads the put rate from the same endpoint.
    let (code, stdout, stderr) = p
        .run_bounded(&["--metrics-addr", &addr, "status", "--json"])
        .await;
    assert_eq!(code, 0, "{stderr}");
    let status: serde_json::Value = serde_json::from_str(&stdout).expect("status json");
    assert!(status["events_per_second"].is_f64(), "{status:#}");
    assert!(
        !status["errors"].to_string().contains("producer metrics"),
        "{status:#}"
    );

    // The stream disappears: the producer is alive but not ready, and says why.
    support::kinesis_client(&p.stack)
        .await
        .delete_stream()
        .stream_name(&p.stream)
        .send()
        .await
        .expect("delete stream");
    let not_ready = wait_for_status(&addr, "/readyz", 503).await;
    assert!(
        not_ready.contains("failing kinesis:") && not_ready.contains("does not exist"),
        "{not_ready}"
    );
    assert_eq!(get(&addr, "/healthz").await.map(|a| a.status), Some(200));
    let out = p.run_bounded(&["health", "--ready", "--addr", &addr]).await;
    assert_one_line_error(&out, Some(1), &["/readyz", "503", "failing kinesis"]);
    p.kill_producer().await;
    let out = p.run_bounded(&["health", "--addr", &addr]).await;
    assert_one_line_error(
        &out,
        Some(1),
        &["no kinesync telemetry listener answers", &addr],
    );
}

#[tokio::test]
async fn the_snapshot_reports_progress_against_the_planner_estimate() {
    let schema = format!(
        "{SCHEMA} INSERT INTO public.items SELECT g, 'row ' || g FROM generate_series(1, {ROWS}) g; ANALYZE public.items;"
    );
    let mut p = Pipeline::start("tel_snapshot", &schema, &["public.items"]).await;
    p.set_env("KINESYNC_TELEMETRY__LISTEN", "127.0.0.1:0");
    p.start_producer().await;
    let addr = listen_address(&p.dir.join("produce.log")).await;
    let metrics = wait_for_metrics(
        &addr,
        &[
            (
                "kinesync_snapshot_rows_total{table=\"public.items\"}",
                ROWS as f64,
            ),
            ("kinesync_events_put_total", ROWS as f64),
        ],
    )
    .await;
    assert_eq!(
        sample(
            &metrics,
            "kinesync_snapshot_rows_estimated{table=\"public.items\"}"
        ),
        Some(ROWS as f64),
        "{metrics}"
    );
    // Not a terminal: log lines, no progress bar.
    let log = poll("the snapshot's last progress line", || async {
        let log = p.producer_log();
        log.contains("snapshot delivered").then_some(log)
    })
    .await;
    assert!(log.contains("copying table"), "{log}");
    assert!(
        log.contains(&format!("table copied ({ROWS} / ~{ROWS} rows (100%), ")),
        "{log}"
    );
    p.kill_producer().await;
}

/// A TCP relay to PostgreSQL that the test can cut: the source becomes
/// unreachable (connections dropped, new ones refused).
struct Relay {
    addr: String,
    tasks: JoinSet<()>,
}

impl Relay {
    async fn to(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay address").to_string();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Relay { addr, tasks }
    }

    /// Drops every relayed connection and stops listening.
    fn cut(&mut self) {
        self.tasks.abort_all();
    }
}

#[tokio::test]
async fn a_producer_that_loses_its_source_is_not_ready_but_alive() {
    let mut p = Pipeline::start("tel_source_lost", SCHEMA, &["public.items"]).await;
    let stack = Stack::from_env();
    let pg_host = stack
        .pg_url
        .split('@')
        .nth(1)
        .expect("KINESYNC_TEST_PG_URL has user@host:port")
        .split('/')
        .next()
        .expect("host:port")
        .to_owned();
    let mut relay = Relay::to(pg_host.clone()).await;
    let relayed_url = format!(
        "{}/tel_source_lost_src",
        stack.pg_url.replace(&pg_host, &relay.addr)
    );
    p.set_env("KINESYNC_SOURCE__URL", &relayed_url);
    p.set_env("KINESYNC_TELEMETRY__LISTEN", "127.0.0.1:0");
    p.start_producer().await;
    let log = p.dir.join("produce.log");
    let addr = listen_address(&log).await;
    // Past the snapshot (a connection lost during it ends the run).
    poll("the producer to stream changes", || async {
        std::fs::read_to_string(&log)
            .ok()?
            .contains("streaming changes")
            .then_some(())
    })
    .await;
    wait_for_status(&addr, "/readyz", 200).await;

    relay.cut();
    let not_ready = wait_for_status(&addr, "/readyz", 503).await;
    assert!(not_ready.contains("failing source:"), "{not_ready}");
    assert_eq!(get(&addr, "/healthz").await.map(|a| a.status), Some(200));
    p.kill_producer().await;
}

#[tokio::test]
async fn the_merge_daemon_exports_runs_and_rows_merged_per_table() {
    let mut p = Pipeline::start("tel_merge", SCHEMA, &["public.items"]).await;
    p.setup_and_produce().await;
    insert_rows(&p).await;
    p.sync_producer().await;

    let mut daemon = p.spawn(&["--metrics-addr", "127.0.0.1:0", "merge"], "merge.log");
    let addr = listen_address(&p.dir.join("merge.log")).await;
    let metrics = wait_for_metrics(
        &addr,
        &[
            ("kinesync_merge_runs_total{result=\"ok\"}", 1.0),
            (
                "kinesync_merge_rows_total{table=\"public.items\",op=\"inserted\"}",
                ROWS as f64,
            ),
            (
                "kinesync_merge_events_total{table=\"public.items\"}",
                ROWS as f64,
            ),
            ("kinesync_merge_duration_seconds_count", 1.0),
            ("kinesync_merge_last_success_timestamp_seconds", 1.0),
        ],
    )
    .await;
    assert_eq!(
        sample(
            &metrics,
            "kinesync_merge_rows_total{table=\"public.items\",op=\"inserted\"}"
        ),
        Some(ROWS as f64),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "kinesync_merge_runs_total{result=\"failed\"}"),
        None,
        "{metrics}"
    );
    let ready = wait_for_status(&addr, "/readyz", 200).await;
    assert_eq!(ready, "ok last_merge\nok data_api\n");
    // Only the merge daemon's own families, plus build_info and the
    // mirror's freshness, sampled from the checkpoint after the merge.
    assert_only_own_families(&metrics, "merge", "kinesync_slot_");
    for producer_only in ["kinesync_events_put_total", "kinesync_put_"] {
        assert!(
            !metrics.contains(producer_only),
            "{producer_only} in\n{metrics}"
        );
    }
    wait_for_metrics(&addr, &[("kinesync_mirror_watermark_age_seconds", 1.0)]).await;
    wait_for_status(&addr, "/healthz", 200).await;
    p.assert_mirror_equals_source("public.items").await;
    daemon.kill().await.expect("kill merge daemon");
    p.stop_producer().await;
}

/// docs/operations.md, "Idle runs": a tick whose stream received nothing
/// since the last run asks Kinesis, not Redshift, and skips the warehouse;
/// the next record makes the next tick merge it.
#[tokio::test]
async fn an_idle_scheduled_run_makes_no_data_api_request() {
    let mut p = Pipeline::start("tel_idle", SCHEMA, &["public.items"]).await;
    p.setup_and_produce().await;
    insert_rows(&p).await;
    p.sync_producer().await;
    let data_api = KinesisProxy::start(&p.stack.redshift_url, FaultPlan::NONE).await;
    p.set_env("AWS_ENDPOINT_URL_REDSHIFT_DATA", &data_api.url);
    p.set_config("schedule", "merge = \"* * * * * *\"");

    let mut daemon = p.spawn(&["--metrics-addr", "127.0.0.1:0", "merge"], "merge.log");
    let addr = listen_address(&p.dir.join("merge.log")).await;
    let idle = "kinesync_merge_runs_total{result=\"idle\"}";
    let ok = "kinesync_merge_runs_total{result=\"ok\"}";
    // Ticks never overlap, and once one found the stream idle every later
    // one asks the same question (since the same last run): no more runs.
    // The watermark age is read from Redshift right after each successful
    // run (before, it is the setup's 1900 placeholder), then aged locally.
    let fresh = "kinesync_mirror_watermark_age_seconds";
    let metrics = poll(
        "a run, an idle tick, the age read after the run",
        || async {
            let metrics = get(&addr, "/metrics").await?.body;
            (sample(&metrics, ok)? >= 1.0
                && sample(&metrics, idle)? >= 1.0
                && sample(&metrics, fresh)? < 3600.0)
                .then_some(metrics)
        },
    )
    .await;
    let before = data_api.stats().requests;
    let (idle_before, ok_before) = (sample(&metrics, idle), sample(&metrics, ok));
    let idle_before = idle_before.unwrap_or_default();
    assert!(before > 0, "the first run went through the counting proxy");
    p.assert_mirror_equals_source("public.items").await;

    // Longer than the period at which the daemon used to read the
    // watermark age from Redshift: it is aged locally now.
    let window = std::time::Instant::now();
    poll("idle ticks for longer than the sampling period", || async {
        let metrics = get(&addr, "/metrics").await?.body;
        let idle_now = sample(&metrics, idle)?;
        (window.elapsed() > std::time::Duration::from_secs(32) && idle_now >= idle_before + 2.0)
            .then_some(())
    })
    .await;
    assert_eq!(
        data_api.stats().requests,
        before,
        "idle ticks must not call the Data API"
    );
    let after_idle = wait_for_metrics(&addr, &[(ok, 1.0)]).await;
    assert_eq!(sample(&after_idle, ok), ok_before, "{after_idle}");
    let ok_before = ok_before.unwrap_or_default();

    p.source
        .execute(
            "UPDATE public.items SET note = 'after idle' WHERE id = 7",
            &[],
        )
        .await
        .expect("update");
    p.sync_producer().await;
    wait_for_metrics(&addr, &[(ok, ok_before + 1.0)]).await;
    assert!(data_api.stats().requests > before);
    p.assert_mirror_equals_source("public.items").await;
    daemon.kill().await.expect("kill merge daemon");
    p.stop_producer().await;
}

#[tokio::test]
async fn a_merge_daemon_that_cannot_reach_the_data_api_is_alive_but_not_ready() {
    let mut p = Pipeline::start("tel_merge_down", SCHEMA, &["public.items"]).await;
    p.setup().await;
    // Nothing listens on port 1 of loopback: every Data API call is refused.
    p.set_env("AWS_ENDPOINT_URL_REDSHIFT_DATA", "http://127.0.0.1:1");
    let mut daemon = p.spawn(&["--metrics-addr", "127.0.0.1:0", "merge"], "merge.log");
    let addr = listen_address(&p.dir.join("merge.log")).await;
    wait_for_metrics(
        &addr,
        &[("kinesync_merge_runs_total{result=\"failed\"}", 1.0)],
    )
    .await;
    let not_ready = wait_for_status(&addr, "/readyz", 503).await;
    assert!(
        not_ready.contains("failing last_merge: ") && not_ready.contains("failing data_api: "),
        "{not_ready}"
    );
    assert_eq!(get(&addr, "/healthz").await.map(|a| a.status), Some(200));
    daemon.kill().await.expect("kill merge daemon");
}

#[tokio::test]
async fn a_taken_metrics_port_stops_the_producer_with_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    let p = Pipeline::start("tel_port_taken", SCHEMA, &["public.items"]).await;
    let outcome = p.run_bounded(&["--metrics-addr", &addr, "produce"]).await;
    assert_one_line_error(
        &outcome,
        Some(1),
        &[
            &format!("cannot listen on telemetry.listen = {addr}"),
            "choose a free port",
        ],
    );
    assert!(!p.slot_exists().await, "nothing was started");
}

#[tokio::test]
async fn a_bad_listen_address_is_a_configuration_error() {
    let config = "[source]\nurl = \"postgres://u@localhost/db\"\ntables = [\"public.t\"]\n[telemetry]\nlisten = \"localhost:9464\"\n";
    let outcome = support::run_with_config_text("tel_bad_listen", config, &["config"]).await;
    assert_one_line_error(
        &outcome,
        Some(2),
        &["telemetry.listen \"localhost:9464\" must be an IP address and port"],
    );
}
