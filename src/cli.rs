//! The command line: subcommands, flags, and the exit codes they end with.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Override;

/// Mirror PostgreSQL tables into Amazon Redshift through Amazon Kinesis.
#[derive(Debug, Parser)]
#[command(name = "kinesync", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (TOML) [default: kinesync.toml if it exists; without
    /// it the environment must set every required key]. Every key can be
    /// overridden by KINESYNC_<SECTION>__<KEY> environment variables.
    #[arg(long, global = true, env = "KINESYNC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format: text on a terminal, json for log collectors. Levels by RUST_LOG.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Serve /metrics, /healthz and /readyz on HOST:PORT (produce and the
    /// merge daemon); overrides telemetry.listen.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Override a configuration key, e.g. --set kinesis.stream=cdc
    /// (repeatable; wins over the file and KINESYNC_* variables; values are
    /// TOML, plain text is a string).
    #[arg(long = "set", global = true, value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<String>,

    /// The Kinesis stream (kinesis.stream).
    #[arg(long, global = true, value_name = "NAME")]
    pub stream: Option<String>,

    /// The source tables, comma-separated (source.tables), e.g.
    /// public.orders,sales.*
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        value_name = "SCHEMA.TABLE"
    )]
    pub tables: Vec<String>,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The configuration values the flags set, each naming its flag.
    pub fn config_overrides(&self) -> Result<Vec<Override>, String> {
        let mut overrides = Vec::new();
        for assignment in &self.set {
            let parsed = assignment
                .split_once('=')
                .and_then(|(key, value)| Some((key.split_once('.')?, value)));
            let Some(((section, key), value)) = parsed else {
                return Err(format!(
                    "--set {assignment:?}: expected SECTION.KEY=VALUE, e.g. --set kinesis.stream=cdc"
                ));
            };
            let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
            overrides.push(Override {
                flag: format!("--set {section}.{key}"),
                section,
                key,
                value: value.to_owned(),
            });
        }
        let mut flag = |flag: &str, section: &str, key: &str, value: String| {
            overrides.push(Override {
                flag: flag.to_owned(),
                section: section.to_owned(),
                key: key.to_owned(),
                value,
            })
        };
        if let Some(stream) = &self.stream {
            flag("--stream", "kinesis", "stream", toml_string(stream));
        }
        if !self.tables.is_empty() {
            let list: Vec<String> = self.tables.iter().map(|t| toml_string(t.trim())).collect();
            flag(
                "--tables",
                "source",
                "tables",
                format!("[{}]", list.join(", ")),
            );
        }
        if let Some(addr) = self.metrics_addr {
            flag(
                "--metrics-addr",
                "telemetry",
                "listen",
                toml_string(&addr.to_string()),
            );
        }
        Ok(overrides)
    }
}

/// `text` as a TOML string literal.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Which process `check` checks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckSide {
    /// Everything: source, stream and Redshift.
    All,
    /// `kinesync produce`: the source's replication prerequisites and the stream.
    Produce,
    /// The merge daemon (and setup): the source catalog and Redshift.
    Merge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SinkArg {
    /// PutRecords into the configured Kinesis stream.
    Kinesis,
    /// One JSON event per line on standard output.
    Stdout,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stream committed changes from PostgreSQL into Kinesis (snapshot first).
    Produce {
        /// Where events go. `stdout` prints them from a temporary slot of
        /// its own: the configured slot, its snapshot marker and the
        /// publication are left as they are.
        #[arg(long, value_enum, default_value_t = SinkArg::Kinesis)]
        sink: SinkArg,
        /// With --sink stdout: read and confirm source.slot and record the
        /// snapshot as delivered, like the Kinesis producer (a Kinesis
        /// producer started later on that slot never sends what was printed).
        #[arg(long)]
        advance_slot: bool,
    },
    /// Create the external schema, streaming view and mirror tables in Redshift.
    Setup {
        /// Print the SQL instead of running it.
        #[arg(long)]
        print: bool,
    },
    /// Refresh the streaming view and merge into the mirror tables on the
    /// [schedule] merge cron expression (or once, with --once).
    Merge {
        /// Run one refresh + merge now and exit (0 ok, 3 refresh/merge
        /// failed, 5 skipped because another scheduler holds the lease).
        #[arg(long)]
        once: bool,
        /// Print the SQL one run would execute instead of running it.
        #[arg(long)]
        print: bool,
        /// Merge even though records may have expired from the stream before
        /// a refresh read them (after re-syncing the tables; see
        /// docs/operations.md, "Kinesis retention").
        #[arg(long, requires = "once")]
        accept_data_loss: bool,
        /// After the merge, drop the tombstones no event can still need
        /// (those below the slot's confirmed LSN, read from the source before
        /// the run; docs/operations.md, "Pruning tombstones").
        #[arg(long, requires = "once", conflicts_with_all = ["print", "accept_data_loss"])]
        prune_tombstones: bool,
        /// After the merge, drop and create the events view again, so that
        /// it holds only what the stream still holds; the next run reads the
        /// stream's retention window again (docs/operations.md, "Bounding
        /// the events view").
        #[arg(long, requires = "once", conflicts_with_all = ["print", "accept_data_loss", "prune_tombstones"])]
        rebuild_events_view: bool,
    },
    /// Print the effective configuration as TOML, secrets redacted, each
    /// value with where it came from (file, variable, flag or default).
    Config {
        /// Print as JSON instead: {"section": {"key": {"value", "origin", "from"}}}.
        #[arg(long)]
        json: bool,
    },
    /// Preflight: check every prerequisite of the source, the stream and
    /// Redshift, and print the fix for each one missing (exit 0 all in
    /// place, 6 something missing).
    Check {
        /// Events per second the stream must carry: fail if its shards
        /// cannot (1,000 records/s per shard, 80% headroom).
        #[arg(long, value_name = "EVENTS_PER_SEC")]
        expected_rate: Option<u64>,
        /// Do not put the probe record that proves the stream is writable
        /// (a Debezium-style message event, `op` = "m", that consumers skip:
        /// docs/events.md).
        #[arg(long)]
        no_write: bool,
        /// Check only what one process needs, with that process's identity:
        /// produce (source replication and the stream) or merge (the source
        /// catalog and Redshift).
        #[arg(long = "for", value_enum, default_value_t = CheckSide::All)]
        side: CheckSide,
        /// Print the findings as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask the running produce or merge process (its telemetry.listen
    /// address, or --addr) whether it is alive (/healthz) or, with --ready,
    /// ready (/readyz): exit 0 yes, 1 no. For container health checks.
    Health {
        /// Probe /readyz instead of /healthz.
        #[arg(long)]
        ready: bool,
        /// The listener's address (default: telemetry.listen, or --metrics-addr).
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<std::net::SocketAddr>,
    },
    /// How far behind the pipeline is: slot lag, put rate, last merge,
    /// watermark age, retention margin.
    Status {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove the pipeline: drop the replication slot and the publication
    /// on the source and, with --redshift, this pipeline's Redshift objects.
    /// Refuses while a producer streams from the slot, and without --yes
    /// (or the slot name typed on a terminal).
    Teardown {
        /// Print the statements instead of running them.
        #[arg(long)]
        print: bool,
        /// Also drop the streaming view, the mirror and tombstone tables and
        /// this pipeline's bookkeeping rows (shared objects only when no
        /// other pipeline uses them).
        #[arg(long)]
        redshift: bool,
        /// Confirm: nothing is dropped without it (or a typed confirmation).
        #[arg(long)]
        yes: bool,
        /// Only drop the mirror objects of this table (schema.table), already
        /// removed from source.tables; repeatable. Slot and publication stay.
        /// (Its own id: the global --tables flag must not capture it.)
        #[arg(long = "table", id = "teardown_table", value_name = "SCHEMA.TABLE")]
        tables: Vec<String>,
    },
    /// Copy tables again while the producer streams (in chunks in key
    /// order; rows the source no longer has leave the mirror): writes a
    /// request the running producer picks up (docs/operations.md,
    /// "Re-syncing one table").
    Resync {
        /// The tables (schema.table, as in source.tables).
        #[arg(id = "resync_tables", value_name = "SCHEMA.TABLE", required = true)]
        tables: Vec<String>,
        /// Wait until every table is copied and its sweep is in the
        /// stream, printing progress.
        #[arg(long)]
        wait: bool,
    },
    /// Compare each mirror table with its source (row counts and checksums
    /// per key bucket) and name the keys that differ (exit 0 equal, 7 a
    /// difference). Rows changed since the last merge differ until the next.
    Verify {
        /// Only this source table (schema.table); repeatable.
        #[arg(long = "table", id = "verify_table", value_name = "SCHEMA.TABLE")]
        tables: Vec<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Process exit codes.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A runtime failure (connection lost for good, unexpected error).
    pub const FAILURE: u8 = 1;
    /// Bad configuration or command line: nothing was done.
    pub const CONFIG: u8 = 2;
    /// A Redshift refresh or merge statement failed; the mirror is unchanged.
    pub const MERGE_FAILED: u8 = 3;
    /// The source database could not be read.
    pub const SOURCE: u8 = 4;
    /// `merge --once` skipped: another scheduler holds the merge lease.
    pub const SKIPPED: u8 = 5;
    /// `check` found a prerequisite missing.
    pub const CHECK_FAILED: u8 = 6;
    /// `verify` found a mirror table that differs from its source.
    pub const DIFFERENT: u8 = 7;
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    #[test]
    fn a_subcommand_table_flag_is_not_taken_for_the_global_tables_flag() {
        let cli = Cli::try_parse_from(["kinesync", "verify", "--table", "public.orders"]).unwrap();
        assert!(cli.tables.is_empty(), "source.tables untouched");
        let Command::Verify { tables, .. } = cli.command else {
            panic!("not verify");
        };
        assert_eq!(tables, ["public.orders"]);
        let cli = Cli::try_parse_from(["kinesync", "teardown", "--table", "public.t"]).unwrap();
        assert!(cli.tables.is_empty(), "source.tables untouched");
    }
}
