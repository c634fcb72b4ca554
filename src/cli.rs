//! The command line: subcommands, flags, and the exit codes they end with.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Mirror PostgreSQL tables into Amazon Redshift through Amazon Kinesis.
#[derive(Debug, Parser)]
#[command(name = "kinesync", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (TOML). Every key can be overridden by
    /// KINESYNC_<SECTION>__<KEY> environment variables.
    #[arg(
        long,
        global = true,
        env = "KINESYNC_CONFIG",
        default_value = "kinesync.toml"
    )]
    pub config: PathBuf,

    /// Log format: text on a terminal, json for log collectors. Levels by RUST_LOG.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
        #[arg(long, value_enum, default_value_t = SinkArg::Kinesis)]
        sink: SinkArg,
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
    },
    /// Print the effective configuration, secrets redacted.
    Config,
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
}
