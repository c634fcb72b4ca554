//! Shared test support: the local stack's addresses, one isolated pipeline
//! per test (its own source database, Redshift database, stream and slot),
//! running the real `kinesync` binary, and comparing mirror with source.
//!
//! The stack is started by `deploy/local/test`, which exports the
//! `KINESYNC_TEST_*` variables. A missing variable fails the test: a test
//! never silently skips because a service is missing.

#![allow(dead_code)]

pub mod hostile;
pub mod kinesis_proxy;
pub mod pg_cluster;
pub mod ports;
pub mod replay;
pub mod telemetry;
pub mod workload;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls};

/// Longest wait for anything the tests poll for.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// The seed of a randomized fault test: `KINESYNC_FAULT_SEED` if set, else
/// random. Printed (shown when the test fails) with the command that
/// re-runs exactly this case.
pub fn fault_seed(test: &str) -> u64 {
    let seed = match std::env::var("KINESYNC_FAULT_SEED") {
        Ok(text) => text.trim().parse().expect("KINESYNC_FAULT_SEED: a number"),
        Err(_) => rand::random(),
    };
    eprintln!(
        "{test}: seed {seed}; re-run with KINESYNC_FAULT_SEED={seed} deploy/local/test --test faults {test}"
    );
    seed
}

/// Addresses of the local stack.
#[derive(Debug, Clone)]
pub struct Stack {
    pub pg_url: String,
    pub kinesis_url: String,
    pub redshift_url: String,
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with deploy/local/test, which starts the local stack and sets it")
    })
}

impl Stack {
    pub fn from_env() -> Stack {
        Stack {
            pg_url: required_env("KINESYNC_TEST_PG_URL"),
            kinesis_url: required_env("KINESYNC_TEST_KINESIS_URL"),
            redshift_url: required_env("KINESYNC_TEST_REDSHIFT_URL"),
        }
    }
}

pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(connection);
    client
}

/// Polls `check` until it returns `Some`, failing the test after [`DEADLINE`].
pub async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One pipeline under test: source database, stream, slot, Redshift database.
pub struct Pipeline {
    pub name: String,
    pub stack: Stack,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub source: Client,
    pub mirror: Client,
    pub stream: String,
    producer: Option<Child>,
    /// Extra environment for every kinesync run (e.g. config overrides).
    env: Vec<(String, String)>,
}

impl Pipeline {
    /// Creates the databases, runs `schema_sql` on the source, creates the
    /// stream (2 shards) and writes the config for `tables`.
    pub async fn start(name: &str, schema_sql: &str, tables: &[&str]) -> Pipeline {
        Pipeline::start_with(name, schema_sql, tables, "").await
    }

    /// Like [`start`](Self::start), with extra TOML appended to the config.
    pub async fn start_with(
        name: &str,
        schema_sql: &str,
        tables: &[&str],
        extra_toml: &str,
    ) -> Pipeline {
        let stack = Stack::from_env();
        let source_server = stack.pg_url.clone();
        Pipeline::start_on(&source_server, name, schema_sql, tables, extra_toml).await
    }

    /// Like [`start_with`](Self::start_with), with the source database on
    /// the PostgreSQL server `source_server` (e.g. a [`pg_cluster::Cluster`]
    /// of the test's own); the mirror stays on the stack's.
    pub async fn start_on(
        source_server: &str,
        name: &str,
        schema_sql: &str,
        tables: &[&str],
        extra_toml: &str,
    ) -> Pipeline {
        let stack = Stack::from_env();
        let source_admin = connect(&format!("{source_server}/postgres")).await;
        let admin = connect(&format!("{}/postgres", stack.pg_url)).await;
        let source_db = format!("{name}_src");
        let mirror_db = format!("{name}_rs");
        // A previous run of the same test may have left its slot behind.
        source_admin
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active",
                &[&name],
            )
            .await
            .expect("drop old slot");
        for (server, db) in [(&source_admin, &source_db), (&admin, &mirror_db)] {
            server
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                .await
                .expect("drop db");
            server
                .batch_execute(&format!("CREATE DATABASE \"{db}\""))
                .await
                .expect("create db");
        }
        let source = connect(&format!("{source_server}/{source_db}")).await;
        source
            .batch_execute(schema_sql)
            .await
            .expect("source schema");
        let mirror = connect(&format!("{}/{mirror_db}", stack.pg_url)).await;

        let stream = format!("{}-cdc", name.replace('_', "-"));
        create_stream(&stack, &stream).await;

        // Per process: concurrent test runs (other stacks) must not share files.
        let dir = std::env::temp_dir().join(format!("kinesync-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test dir");
        let config_path = dir.join("kinesync.toml");
        let tables_toml = tables
            .iter()
            .map(|t| format!("{t:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            r#"
[source]
url = "{source_server}/{source_db}"
tables = [{tables_toml}]
publication = "{name}"
slot = "{name}"
heartbeat_interval_secs = 1

[kinesis]
stream = "{stream}"
region = "us-east-1"

[redshift]
workgroup = "local"
database = "{mirror_db}"
region = "us-east-1"
stream_role_arn = "arn:aws:iam::000000000000:role/kinesync-local"
statement_timeout_secs = 120

[schedule]
merge = "*/5 * * * * *"
{extra_toml}
"#
        );
        std::fs::write(&config_path, config).expect("write config");
        Pipeline {
            name: name.to_owned(),
            stack,
            dir,
            config_path,
            source,
            mirror,
            stream,
            producer: None,
            env: Vec::new(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kinesync"));
        command
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .env("AWS_ENDPOINT_URL_KINESIS", &self.stack.kinesis_url)
            .env("AWS_ENDPOINT_URL_REDSHIFT_DATA", &self.stack.redshift_url)
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_REGION", "us-east-1")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .kill_on_drop(true);
        command
    }

    /// Sets an environment variable for every later kinesync run.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Runs `kinesync <args>` to completion; returns (exit code, stdout, stderr).
    pub async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let output = self.command(args).output().await.expect("run kinesync");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Runs `kinesync <args>` with extra environment variables (e.g.
    /// `RUST_LOG`); fails the test if it is still running after [`DEADLINE`].
    pub async fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        let output = tokio::time::timeout(DEADLINE, command.output())
            .await
            .unwrap_or_else(|_| panic!("kinesync {args:?} still running after {DEADLINE:?}"))
            .expect("run kinesync");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Runs `kinesync <args>`, which must stop on its own within [`DEADLINE`].
    pub async fn run_bounded(&self, args: &[&str]) -> (i32, String, String) {
        self.run_with_env(args, &[]).await
    }

    /// Replaces the whole config file.
    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config_path, text).expect("write config");
    }

    /// Whether the replication slot of this pipeline exists.
    pub async fn slot_exists(&self) -> bool {
        let row = self
            .source
            .query_one(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.name],
            )
            .await
            .expect("slot query");
        row.get::<_, i64>(0) > 0
    }

    /// Runs `kinesync <args>` and fails the test unless it exits 0.
    pub async fn run_ok(&self, args: &[&str]) -> String {
        let (code, stdout, stderr) = self.run(args).await;
        assert_eq!(
            code, 0,
            "kinesync {args:?} exited {code}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        stdout
    }

    pub async fn setup(&self) {
        self.run_ok(&["setup"]).await;
    }

    pub async fn merge_once(&self) -> String {
        self.run_ok(&["merge", "--once"]).await
    }

    /// Starts `kinesync <args>` in the background, stderr to `<dir>/<log>`.
    pub fn spawn(&self, args: &[&str], log: &str) -> Child {
        let log = std::fs::File::create(self.dir.join(log)).expect("log file");
        self.command(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn kinesync")
    }

    /// Starts `kinesync produce` in the background (stderr to a log file).
    pub async fn start_producer(&mut self) {
        assert!(self.producer.is_none(), "producer already running");
        let log = std::fs::File::create(self.dir.join("produce.log")).expect("log file");
        let child = self
            .command(&["produce"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn produce");
        self.producer = Some(child);
        self.wait_for_slot().await;
    }

    /// Waits until the replication slot exists and has found its consistent
    /// point (a slot being created is listed before, with no confirmed LSN).
    /// Writes committed after this returns are after the slot's start: they
    /// reach the stream, not the snapshot.
    pub async fn wait_for_slot(&self) {
        self.wait_for_slot_count("to exist", "confirmed_flush_lsn IS NOT NULL", 1)
            .await;
    }

    /// Polls until `count` slots named like this pipeline match `condition`.
    async fn wait_for_slot_count(&self, what: &str, condition: &str, count: i64) {
        let slot = self.name.clone();
        let source = &self.source;
        let query = format!(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND {condition}"
        );
        poll(&format!("slot {slot} {what}"), || async {
            let row = source.query_one(&query, &[&slot]).await.ok()?;
            (row.get::<_, i64>(0) == count).then_some(())
        })
        .await;
    }

    /// Waits (bounded by [`DEADLINE`]) for the background producer to exit
    /// on its own; returns its exit code and log.
    pub async fn wait_for_producer_exit(&mut self) -> (i32, String) {
        let mut child = self.producer.take().expect("no producer running");
        let status = tokio::time::timeout(DEADLINE, child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "producer still running after {DEADLINE:?}; log:\n{}",
                    self.producer_log()
                )
            })
            .expect("wait");
        (status.code().unwrap_or(-1), self.producer_log())
    }

    /// Starts `kinesync produce --sink stdout`, waits for its temporary
    /// slot, and returns a reader of the events it prints.
    pub async fn start_stdout_producer(&self) -> StdoutProducer {
        let log_path = self.dir.join("produce-stdout.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut child = self
            .command(&["produce", "--sink", "stdout"])
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn produce --sink stdout");
        let stdout = child.stdout.take().expect("piped stdout");
        let producer = StdoutProducer {
            child,
            lines: BufReader::new(stdout).lines(),
            log_path,
        };
        self.wait_for_stdout_slot().await;
        producer
    }

    /// Waits until the temporary slot of a `--sink stdout` run (named
    /// `<slot>_stdout_<pid>`) has found its consistent point.
    pub async fn wait_for_stdout_slot(&self) {
        let pattern = format!("{}\\_stdout\\_%", self.name);
        let source = &self.source;
        poll(&format!("temporary slot {pattern}"), || async {
            let row = source
                .query_one(
                    "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1 \
                     AND temporary AND confirmed_flush_lsn IS NOT NULL",
                    &[&pattern],
                )
                .await
                .ok()?;
            (row.get::<_, i64>(0) == 1).then_some(())
        })
        .await;
    }

    /// Sets `key = value` lines (e.g. `max_record_bytes = 2000`) in the
    /// config's `[section]` (one the default config has), replacing the
    /// keys' earlier values.
    pub fn set_config(&self, section: &str, lines: &str) {
        let text = std::fs::read_to_string(&self.config_path).expect("read config");
        let key_of = |line: &str| line.split('=').next().unwrap_or_default().trim().to_owned();
        let keys: Vec<String> = lines.lines().map(key_of).collect();
        let header = format!("[{section}]");
        let mut out = Vec::new();
        let mut in_section = false;
        let mut found = false;
        for line in text.lines() {
            if line.trim_start().starts_with('[') {
                in_section = line.trim() == header;
                out.push(line.to_owned());
                if in_section {
                    found = true;
                    out.extend(lines.lines().map(str::to_owned));
                }
            } else if !(in_section && keys.contains(&key_of(line))) {
                out.push(line.to_owned());
            }
        }
        assert!(found, "config has no {header}");
        std::fs::write(&self.config_path, out.join("\n") + "\n").expect("write config");
    }

    /// Every record in the stream, read from TRIM_HORIZON on every shard.
    pub async fn read_stream(&self) -> Vec<StreamRecord> {
        read_stream(&self.stack, &self.stream).await
    }

    /// Stops the producer with SIGTERM and waits for a clean exit.
    pub async fn stop_producer(&mut self) {
        let Some(mut child) = self.producer.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        let status = tokio::time::timeout(DEADLINE, child.wait())
            .await
            .expect("producer did not stop")
            .expect("wait");
        assert!(
            status.success(),
            "producer exited with {status} on SIGTERM; log:\n{}",
            self.producer_log()
        );
        self.wait_for_slot_released().await;
    }

    /// The server's walsender outlives the client by a moment: until it is
    /// gone the slot is still active (it cannot be dropped or reused).
    pub async fn wait_for_slot_released(&self) {
        self.wait_for_slot_count("released by its walsender", "active", 0)
            .await;
    }

    /// Kills the producer with SIGKILL (a crash).
    pub async fn kill_producer(&mut self) {
        if let Some(mut child) = self.producer.take() {
            child.kill().await.expect("kill producer");
        }
    }

    pub fn producer_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("produce.log")).unwrap_or_default()
    }

    /// Waits until the producer has confirmed everything committed so far:
    /// writes a logical message and polls the slot's confirmed LSN past it.
    pub async fn sync_producer(&mut self) {
        let row = self
            .source
            .query_one(
                "SELECT pg_logical_emit_message(true, 'kinesync_test', 'sync')::text",
                &[],
            )
            .await
            .expect("emit message");
        let target: String = row.get(0);
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(child) = self.producer.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "producer exited with {status} while syncing; log:\n{}",
                        self.producer_log()
                    );
                }
            }
            // No row while a restarted producer recreates its slot (a
            // snapshot cut short is redone on a new slot): not yet.
            let row = self
                .source
                .query_opt(
                    "SELECT coalesce(confirmed_flush_lsn >= $2::text::pg_lsn, false) FROM pg_replication_slots WHERE slot_name = $1",
                    &[&self.name, &target],
                )
                .await
                .expect("slot state");
            if row.is_some_and(|row| row.get::<_, bool>(0)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {DEADLINE:?} waiting for slot {} to confirm {target}; producer log:\n{}",
                self.name,
                self.producer_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every row of `table` in source and mirror, each column as text,
    /// ordered by the key columns, must be equal.
    pub async fn assert_mirror_equals_source(&self, table: &str) {
        let (source_rows, mirror_rows) = self.rows_both(table).await;
        if source_rows != mirror_rows {
            let only_source: Vec<_> = source_rows
                .iter()
                .filter(|r| !mirror_rows.contains(r))
                .take(10)
                .collect();
            let only_mirror: Vec<_> = mirror_rows
                .iter()
                .filter(|r| !source_rows.contains(r))
                .take(10)
                .collect();
            panic!(
                "mirror of {table} differs from source ({} vs {} rows)\nonly in source: {only_source:#?}\nonly in mirror: {only_mirror:#?}",
                source_rows.len(),
                mirror_rows.len()
            );
        }
    }

    /// (source rows, mirror rows) of `table`, as text, ordered alike.
    pub async fn rows_both(
        &self,
        table: &str,
    ) -> (Vec<Vec<Option<String>>>, Vec<Vec<Option<String>>>) {
        let (schema, name) = table.split_once('.').expect("schema.table");
        // The source side applies the documented type mapping: json, jsonb
        // and arrays land in SUPER, compared as jsonb text; NaN, infinities
        // and floats outside Redshift's ranges, BC and 5-digit-year dates
        // and timestamps are NULL; TIMETZ is in UTC (docs/redshift.md).
        let columns: Vec<(String, String)> = self
            .source
            .query(
                "SELECT a.attname, CASE WHEN t.typcategory = 'A' OR t.typname IN ('json', 'jsonb') \
                   THEN 'to_jsonb(' || quote_ident(a.attname) || ')::text' \
                   WHEN t.typname = 'float8' THEN 'CASE WHEN ' || quote_ident(a.attname) || ' = 0 OR abs(' || quote_ident(a.attname) \
                     || ') BETWEEN 1e-307 AND 1e308 THEN ' || quote_ident(a.attname) || '::text END' \
                   WHEN t.typname = 'float4' THEN 'CASE WHEN ' || quote_ident(a.attname) || ' = 0 OR abs(' || quote_ident(a.attname) \
                     || '::text::float8) BETWEEN 1e-37 AND 1e37 THEN ' || quote_ident(a.attname) || '::text END' \
                   WHEN t.typname IN ('date', 'timestamp') THEN 'CASE WHEN EXTRACT(YEAR FROM ' || quote_ident(a.attname) \
                     || ') BETWEEN 1 AND 9999 THEN ' || quote_ident(a.attname) || '::text END' \
                   WHEN t.typname = 'timestamptz' THEN 'CASE WHEN EXTRACT(YEAR FROM ' || quote_ident(a.attname) \
                     || ' AT TIME ZONE ''UTC'') BETWEEN 1 AND 9999 THEN ' || quote_ident(a.attname) || '::text END' \
                   WHEN t.typname = 'timetz' THEN '(' || quote_ident(a.attname) || ' AT TIME ZONE ''UTC'')::text' \
                   ELSE quote_ident(a.attname) || '::text' END \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 WHERE a.attrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass \
                 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&schema, &name],
            )
            .await
            .expect("columns")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let source_list = columns
            .iter()
            .map(|(_, e)| e.clone())
            .collect::<Vec<_>>()
            .join(", ");
        let mirror_list = columns
            .iter()
            // Mirror names as Redshift stores them (ASCII letters folded).
            .map(|(c, _)| format!("\"{}\"::text", c.to_ascii_lowercase()))
            .collect::<Vec<_>>()
            .join(", ");
        let order = (1..=columns.len())
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let mirror_name = if schema == "public" {
            name.to_ascii_lowercase()
        } else {
            format!("{schema}__{name}").to_ascii_lowercase()
        };
        let source_sql =
            format!("SELECT {source_list} FROM \"{schema}\".\"{name}\" ORDER BY {order}");
        let mirror_sql =
            format!("SELECT {mirror_list} FROM \"mirror\".\"{mirror_name}\" ORDER BY {order}");
        let source_rows = text_rows(&self.source, &source_sql).await;
        let mirror_rows = text_rows(&self.mirror, &mirror_sql).await;
        (source_rows, mirror_rows)
    }
}

/// Every row of `sql`'s result, each column as text.
pub async fn text_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| row.get::<_, Option<String>>(i))
                .collect()
        })
        .collect()
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let Some(child) = self.producer.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// A producer started with `--sink stdout`: its events, line by line.
pub struct StdoutProducer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    log_path: PathBuf,
}

impl StdoutProducer {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The next `n` events, parsed. Fails the test if they do not all
    /// arrive within [`DEADLINE`] or the producer exits first.
    pub async fn events(&mut self, n: usize) -> Vec<serde_json::Value> {
        self.lines(n)
            .await
            .iter()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"))
            })
            .collect()
    }

    /// The next `n` lines as printed (one event each), with the same deadline.
    pub async fn lines(&mut self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + DEADLINE;
        let mut lines = Vec::with_capacity(n);
        while lines.len() < n {
            match tokio::time::timeout_at(deadline, self.lines.next_line()).await {
                Ok(Ok(Some(line))) => lines.push(line),
                Ok(Ok(None)) => panic!(
                    "producer closed stdout after {} of {n} events: {lines:#?}\nlog:\n{}",
                    lines.len(),
                    self.log()
                ),
                Ok(Err(e)) => panic!("reading the producer's stdout: {e}"),
                Err(_) => panic!(
                    "timed out after {DEADLINE:?} with {} of {n} events: {lines:#?}\nlog:\n{}",
                    lines.len(),
                    self.log()
                ),
            }
        }
        lines
    }

    /// SIGTERM; the producer must exit 0.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("producer did not stop")
            .expect("wait");
        assert!(
            status.success(),
            "producer exited with {status} on SIGTERM; log:\n{}",
            self.log()
        );
    }
}

/// One record read back from the stream.
#[derive(Debug, Clone)]
pub struct StreamRecord {
    pub shard: String,
    pub partition_key: String,
    pub event: serde_json::Value,
}

/// A Kinesis client for the stand-in.
pub async fn kinesis_client(stack: &Stack) -> aws_sdk_kinesis::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&stack.kinesis_url)
        .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
            "local", "local", None, None, "test",
        ))
        .load()
        .await;
    aws_sdk_kinesis::Client::new(&config)
}

/// Every record of `stream`: per shard, GetShardIterator(TRIM_HORIZON) and
/// GetRecords until a call returns nothing and is not behind the tip.
/// Records of one shard keep their order; shards follow one another.
pub async fn read_stream(stack: &Stack, stream: &str) -> Vec<StreamRecord> {
    let kinesis = kinesis_client(stack).await;
    let description = kinesis
        .describe_stream()
        .stream_name(stream)
        .send()
        .await
        .unwrap_or_else(|e| panic!("describe stream {stream}: {e:?}"));
    let shards: Vec<String> = description
        .stream_description()
        .expect("stream description")
        .shards()
        .iter()
        .map(|s| s.shard_id().to_owned())
        .collect();
    let mut records = Vec::new();
    for shard in shards {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(&shard)
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap_or_else(|e| panic!("shard iterator {shard}: {e:?}"))
            .shard_iterator()
            .map(str::to_owned);
        let deadline = Instant::now() + DEADLINE;
        while let Some(it) = iterator {
            assert!(
                Instant::now() < deadline,
                "reading shard {shard} took over {DEADLINE:?}"
            );
            let page = kinesis
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .unwrap_or_else(|e| panic!("get records {shard}: {e:?}"));
            for record in page.records() {
                let data = record.data().as_ref();
                let event = serde_json::from_slice(data).unwrap_or_else(|e| {
                    panic!(
                        "record is not JSON ({e}): {}",
                        String::from_utf8_lossy(data)
                    )
                });
                records.push(StreamRecord {
                    shard: shard.clone(),
                    partition_key: record.partition_key().unwrap_or_default().to_owned(),
                    event,
                });
            }
            let caught_up =
                page.records().is_empty() && page.millis_behind_latest().is_none_or(|ms| ms == 0);
            iterator = if caught_up {
                None
            } else {
                page.next_shard_iterator().map(str::to_owned)
            };
        }
    }
    records
}

/// Creates a Kinesis stream with 2 shards on the stand-in and waits until ACTIVE.
pub async fn create_stream(stack: &Stack, stream: &str) {
    let kinesis = kinesis_client(stack).await;
    let _ = kinesis.delete_stream().stream_name(stream).send().await;
    poll(&format!("stream {stream} to be deleted"), || async {
        kinesis
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .is_err()
            .then_some(())
    })
    .await;
    kinesis
        .create_stream()
        .stream_name(stream)
        .shard_count(2)
        .send()
        .await
        .expect("create stream");
    poll(&format!("stream {stream} to be ACTIVE"), || async {
        let summary = kinesis
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .ok()?;
        let status = summary
            .stream_description_summary()?
            .stream_status()
            .clone();
        (status == aws_sdk_kinesis::types::StreamStatus::Active).then_some(())
    })
    .await;
}

/// Runs the real `kinesync` binary with `config_text` as its config file
/// (written to a fresh temporary directory named after `name`), with no
/// stack needed; returns (exit code, stdout, stderr).
pub async fn run_with_config_text(
    name: &str,
    config_text: &str,
    args: &[&str],
) -> (i32, String, String) {
    let dir = std::env::temp_dir().join(format!("kinesync-cfg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    let path = dir.join("kinesync.toml");
    std::fs::write(&path, config_text).expect("write config");
    let output = tokio::time::timeout(
        DEADLINE,
        Command::new(env!("CARGO_BIN_EXE_kinesync"))
            .arg("--config")
            .arg(&path)
            .args(args)
            .env("RUST_LOG", "info")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("kinesync {args:?} still running after {DEADLINE:?}"))
    .expect("run kinesync");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The user-facing failure standard: a non-zero exit (`expected_code` when
/// given), exactly one `kinesync: error: ...` line on stderr, which is its
/// last line and contains every one of `needles`; no panic, no backtrace.
/// Returns the error line.
pub fn assert_one_line_error(
    (code, stdout, stderr): &(i32, String, String),
    expected_code: Option<i32>,
    needles: &[&str],
) -> String {
    let context = format!("exit {code}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert_ne!(*code, 0, "expected a failure; {context}");
    if let Some(expected) = expected_code {
        assert_eq!(*code, expected, "wrong exit code; {context}");
    }
    for bad in ["panicked", "stack backtrace", "RUST_BACKTRACE"] {
        assert!(
            !stderr.contains(bad),
            "stderr shows a panic ({bad}); {context}"
        );
    }
    let error_lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("kinesync: error:"))
        .collect();
    assert_eq!(
        error_lines.len(),
        1,
        "expected exactly one error line; {context}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last, error_lines[0],
        "the error line must be the last line of stderr; {context}"
    );
    for needle in needles {
        assert!(
            last.contains(needle),
            "the error line does not mention {needle:?}: {last}\n{context}"
        );
    }
    last.to_owned()
}
