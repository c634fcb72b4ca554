//! Shared test support: the local stack's addresses, one isolated pipeline
//! per test (its own source database, Redshift database, stream and slot),
//! running the real `kinesync` binary, and comparing mirror with source.
//!
//! The stack is started by `deploy/local/test`, which exports the
//! `KINESYNC_TEST_*` variables. A missing variable fails the test: a test
//! never silently skips because a service is missing.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls};

/// Longest wait for anything the tests poll for.
pub const DEADLINE: Duration = Duration::from_secs(90);

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
        let admin = connect(&format!("{}/postgres", stack.pg_url)).await;
        let source_db = format!("{name}_src");
        let mirror_db = format!("{name}_rs");
        // A previous run of the same test may have left its slot behind.
        admin
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active",
                &[&name],
            )
            .await
            .expect("drop old slot");
        for db in [&source_db, &mirror_db] {
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                .await
                .expect("drop db");
            admin
                .batch_execute(&format!("CREATE DATABASE \"{db}\""))
                .await
                .expect("create db");
        }
        let source = connect(&format!("{}/{source_db}", stack.pg_url)).await;
        source
            .batch_execute(schema_sql)
            .await
            .expect("source schema");
        let mirror = connect(&format!("{}/{mirror_db}", stack.pg_url)).await;

        let stream = format!("{}-cdc", name.replace('_', "-"));
        create_stream(&stack, &stream).await;

        let dir = std::env::temp_dir().join(format!("kinesync-test-{name}"));
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
url = "{pg}/{source_db}"
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
"#,
            pg = stack.pg_url
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
            .kill_on_drop(true);
        command
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
        // Writes made after this returns are after the slot's start: they
        // reach the stream, not (only) the snapshot.
        let slot = self.name.clone();
        let source = &self.source;
        poll(&format!("slot {slot} to exist"), || async {
            let row = source
                .query_one(
                    "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
                    &[&slot],
                )
                .await
                .ok()?;
            (row.get::<_, i64>(0) == 1).then_some(())
        })
        .await;
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
            let row = self
                .source
                .query_one(
                    "SELECT coalesce(confirmed_flush_lsn >= $2::text::pg_lsn, false) FROM pg_replication_slots WHERE slot_name = $1",
                    &[&self.name, &target],
                )
                .await
                .expect("slot state");
            if row.get::<_, bool>(0) {
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
        let columns: Vec<String> = self
            .source
            .query(
                "SELECT attname FROM pg_attribute WHERE attrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass \
                 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                &[&schema, &name],
            )
            .await
            .expect("columns")
            .iter()
            .map(|r| r.get(0))
            .collect();
        let list = columns
            .iter()
            .map(|c| format!("\"{c}\"::text"))
            .collect::<Vec<_>>()
            .join(", ");
        let order = (1..=columns.len())
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let mirror_name = if schema == "public" {
            name.to_owned()
        } else {
            format!("{schema}__{name}")
        };
        let source_sql = format!("SELECT {list} FROM \"{schema}\".\"{name}\" ORDER BY {order}");
        let mirror_sql =
            format!("SELECT {list} FROM \"mirror\".\"{mirror_name}\" ORDER BY {order}");
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

/// Creates a Kinesis stream with 2 shards on the stand-in and waits until ACTIVE.
pub async fn create_stream(stack: &Stack, stream: &str) {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&stack.kinesis_url)
        .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
            "local", "local", None, None, "test",
        ))
        .load()
        .await;
    let kinesis = aws_sdk_kinesis::Client::new(&config);
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
