//! Progress of the initial snapshot, for the person or the log collector
//! watching it: a progress bar per table when stderr is a terminal, and
//! otherwise one `snapshot progress` log line per table every
//! [`PROGRESS_LOG_INTERVAL`] (table, rows done, estimated rows from
//! `pg_class.reltuples`, rate). The same counts go to the
//! `kinesync_snapshot_rows*` metrics. The estimate is the planner's: it may
//! be off, or unknown (-1) for a table never vacuumed or analyzed.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use prometheus_client::metrics::counter::Counter;

use crate::telemetry::health;
use crate::telemetry::metrics::{label, metrics};

/// How often a progress line is logged when stderr is not a terminal.
pub const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Rows between two looks at the clock (and liveness beats).
const CLOCK_EVERY_ROWS: u64 = 1024;

/// Progress of the table being copied.
pub struct SnapshotProgress {
    bar: Option<ProgressBar>,
    table: String,
    estimated: Option<u64>,
    rows: u64,
    started: Instant,
    next_log: Instant,
    counter: Counter,
}

impl SnapshotProgress {
    /// Starts the progress of `table`, whose estimated size is `estimated`.
    pub fn start(table: &str, estimated: Option<u64>) -> SnapshotProgress {
        let m = metrics();
        let labels = label("table", table);
        if let Some(estimated) = estimated {
            m.snapshot_rows_estimated
                .get_or_create(&labels)
                .set(i64::try_from(estimated).unwrap_or(i64::MAX));
        }
        let counter = m.snapshot_rows.get_or_create(&labels).clone();
        // Log first: a line written under a drawn bar would leave the bar behind.
        tracing::info!(
            table,
            estimated_rows = estimated.map_or_else(|| "unknown".to_owned(), |e| e.to_string()),
            "copying table"
        );
        let bar = std::io::stderr()
            .is_terminal()
            .then(|| bar(table, estimated));
        let now = Instant::now();
        SnapshotProgress {
            bar,
            table: table.to_owned(),
            estimated,
            rows: 0,
            started: now,
            next_log: now + PROGRESS_LOG_INTERVAL,
            counter,
        }
    }

    /// One more row copied.
    pub fn row(&mut self) {
        self.rows += 1;
        self.counter.inc();
        if !self.rows.is_multiple_of(CLOCK_EVERY_ROWS) {
            return;
        }
        health().beat();
        match &self.bar {
            Some(bar) => {
                if bar.length().is_some_and(|len| self.rows > len) {
                    bar.set_length(self.rows);
                }
                bar.set_position(self.rows);
                bar.set_message(rate(self.rows, self.started.elapsed()));
            }
            None => {
                let now = Instant::now();
                if now >= self.next_log {
                    self.next_log = now + PROGRESS_LOG_INTERVAL;
                    tracing::info!(
                        table = %self.table,
                        "snapshot progress: {}",
                        describe(self.rows, self.estimated, self.started.elapsed())
                    );
                }
            }
        }
    }

    /// The table is copied: clear the bar, log its total.
    pub fn finish(self) -> u64 {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        tracing::info!(
            table = %self.table,
            rows = self.rows,
            "table copied ({})",
            describe(self.rows, self.estimated, self.started.elapsed())
        );
        self.rows
    }
}

fn bar(table: &str, estimated: Option<u64>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(estimated, ProgressDrawTarget::stderr());
    let template = if estimated.is_some() {
        "{prefix} [{bar:30}] {human_pos}/~{human_len} rows, {msg}, eta {eta}"
    } else {
        "{prefix} {spinner} {human_pos} rows, {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(table.to_owned());
    bar
}

/// `1200 / ~5000 rows (24%), 300 rows/s`.
pub fn describe(rows: u64, estimated: Option<u64>, elapsed: Duration) -> String {
    let rate = rate(rows, elapsed);
    match estimated {
        Some(estimate) if estimate > 0 => format!(
            "{rows} / ~{estimate} rows ({:.0}%), {rate}",
            (rows as f64 * 100.0 / estimate as f64).min(100.0)
        ),
        _ => format!("{rows} rows (estimate unknown), {rate}"),
    }
}

/// `300 rows/s`.
fn rate(rows: u64, elapsed: Duration) -> String {
    format!(
        "{:.0} rows/s",
        rows as f64 / elapsed.as_secs_f64().max(0.001)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_says_rows_estimate_share_and_rate() {
        assert_eq!(
            describe(1200, Some(5000), Duration::from_secs(4)),
            "1200 / ~5000 rows (24%), 300 rows/s"
        );
        assert_eq!(
            describe(7000, Some(5000), Duration::from_secs(7)),
            "7000 / ~5000 rows (100%), 1000 rows/s"
        );
        assert_eq!(
            describe(10, None, Duration::from_secs(1)),
            "10 rows (estimate unknown), 10 rows/s"
        );
    }
}
