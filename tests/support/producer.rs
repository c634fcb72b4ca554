//! The producer under test in the background: started (waiting for its slot
//! to be consistent), synced, stopped, killed, waited for; and the
//! `--sink stdout` producer whose events a test reads line by line.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};
use tokio::time::Instant;

use super::pipeline::Pipeline;
use super::stack::{poll, DEADLINE};

impl Pipeline {
    /// Given a pipeline, runs `kinesync setup` and starts the producer:
    /// the usual "given a running pipeline" of a test.
    pub async fn setup_and_produce(&mut self) {
        self.setup().await;
        self.start_producer().await;
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
    /// Stops the producer with SIGTERM and waits for a clean exit.
    pub async fn stop_producer(&mut self) {
        let Some(mut child) = self.producer.take() else {
            return;
        };
        terminate(&mut child, || self.producer_log()).await;
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

    /// Waits until there are resyncs of this pipeline's slot and every one
    /// finished (its end event accepted by the stream). A producer may
    /// still be about to create the request table.
    pub async fn wait_for_resyncs(&self) {
        self.wait_for_resyncs_of(&[]).await;
    }

    /// [`Self::wait_for_resyncs`], and among them one of each of `tables`.
    pub async fn wait_for_resyncs_of(&self, tables: &[&str]) {
        let tables: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let exists: bool = self
                .source
                .query_one(
                    "SELECT to_regclass('public.kinesync_resync') IS NOT NULL",
                    &[],
                )
                .await
                .expect("resync table")
                .get(0);
            let done = exists
                && self
                    .source
                    .query_one(
                        "SELECT count(*) > 0 AND bool_and(finished_at IS NOT NULL) \
                           AND $2::text[] <@ array_agg(table_name) \
                         FROM public.kinesync_resync WHERE slot = $1",
                        &[&self.name, &tables],
                    )
                    .await
                    .expect("resync state")
                    .get::<_, Option<bool>>(0)
                    .unwrap_or(false);
            if done {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {DEADLINE:?} waiting for the resyncs of {}; producer log:\n{}",
                self.name,
                self.producer_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
}

/// Whether a printed record is a shape record (docs/events.md): those start
/// `{"before":null,"after":null,"shape":`, no change event does.
pub fn is_shape_line(line: &str) -> bool {
    line.starts_with(r#"{"before":null,"after":null,"shape":"#)
}

/// The change events of a `--sink stdout` run's output, shape records left out.
pub fn change_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| !is_shape_line(l)).collect()
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

    /// The next `n` lines as printed (one event each, shape records left
    /// out), with the same deadline.
    pub async fn lines(&mut self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + DEADLINE;
        let mut lines = Vec::with_capacity(n);
        while lines.len() < n {
            match tokio::time::timeout_at(deadline, self.lines.next_line()).await {
                Ok(Ok(Some(line))) if is_shape_line(&line) => {}
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
        let log_path = self.log_path.clone();
        terminate(&mut self.child, || {
            std::fs::read_to_string(&log_path).unwrap_or_default()
        })
        .await;
    }
}

/// SIGTERM to a producer, which must then exit 0 within [`DEADLINE`]
/// (`log` is shown when it does not).
async fn terminate(child: &mut Child, log: impl Fn() -> String) {
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
        log()
    );
}
