//! One isolated pipeline per test (its own source database, Redshift
//! database, stream and slot) and running the real `kinesync` binary
//! against it, or against a config file alone.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::{Child, Command};
use tokio_postgres::Client;

use super::stack::{connect, Stack, DEADLINE};
use super::stream::create_stream;

/// One pipeline under test: source database, stream, slot, Redshift database.
pub struct Pipeline {
    pub name: String,
    pub stack: Stack,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub source: Client,
    /// The source database's URL (for a test's own extra sessions).
    pub source_url: String,
    pub mirror: Client,
    pub stream: String,
    pub(super) producer: Option<Child>,
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
        let source_url = format!("{source_server}/{source_db}");
        let source = connect(&source_url).await;
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
            source_url,
            mirror,
            stream,
            producer: None,
            env: Vec::new(),
        }
    }

    pub(super) fn command(&self, args: &[&str]) -> Command {
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
        let (code, stderr) = (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        );
        self.keep_in_history(args, code, &stderr);
        (
            code,
            String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr,
        )
    }

    /// Appends a run's exit code and stderr to `<dir>/runs.log`, shown when
    /// a later run fails (what came before often explains it).
    fn keep_in_history(&self, args: &[&str], code: i32, stderr: &str) {
        use std::io::Write;
        let entry = format!("--- kinesync {args:?} exited {code}\n{stderr}");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("runs.log"));
        if let Ok(mut file) = file {
            let _ = file.write_all(entry.as_bytes());
        }
    }

    /// The earlier runs of this pipeline (see [`Self::keep_in_history`]).
    fn history(&self) -> String {
        std::fs::read_to_string(self.dir.join("runs.log")).unwrap_or_default()
    }

    /// Runs `kinesync <args>` with extra environment variables (e.g.
    /// `RUST_LOG`); fails the test if it is still running after [`DEADLINE`].
    pub async fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        run_bounded(args, &mut command).await
    }

    /// Runs `kinesync <args>`, which must stop on its own within [`DEADLINE`].
    pub async fn run_bounded(&self, args: &[&str]) -> (i32, String, String) {
        self.run_with_env(args, &[]).await
    }

    /// The source server's `server_version_num` (e.g. 150004).
    pub async fn server_version_num(&self) -> i32 {
        self.source
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .expect("server version")
            .get(0)
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
            code,
            0,
            "kinesync {args:?} exited {code}\nstdout:\n{stdout}\nstderr:\n{stderr}\nthis pipeline's runs so far:\n{}",
            self.history()
        );
        stdout
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
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let Some(child) = self.producer.as_mut() {
            let _ = child.start_kill();
        }
    }
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
    let mut command = Command::new(env!("CARGO_BIN_EXE_kinesync"));
    command
        .arg("--config")
        .arg(&path)
        .args(args)
        .env("RUST_LOG", "info")
        .kill_on_drop(true);
    run_bounded(args, &mut command).await
}

/// Runs `command` (kinesync with `args`) to completion, failing the test if
/// it is still running after [`DEADLINE`]; returns (exit code, stdout, stderr).
async fn run_bounded(args: &[&str], command: &mut Command) -> (i32, String, String) {
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
