//! The `kinesync` binary: parse the command line, load the configuration,
//! dispatch, and turn the outcome into a one-line message and an exit code.

use std::process::ExitCode;

use clap::Parser;
use kinesync::cli::{exit, CheckSide, Cli, Command, LogFormat, SinkArg};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::OnceLock;

use kinesync::config::{self, Loaded};
use kinesync::ops;
use kinesync::produce::{run_produce, SinkChoice};
use kinesync::scheduler::{self, SchedulerError};
use kinesync::shutdown::{trigger_on_signals, Shutdown};
use kinesync::telemetry::{set_process, Process};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let overrides = match cli.config_overrides() {
        Ok(overrides) => overrides,
        Err(error) => return fail(exit::CONFIG, &error),
    };
    let env: BTreeMap<String, String> = std::env::vars().collect();
    for warning in config::stray_variables(&env) {
        tracing::warn!("{warning}");
    }
    let loaded = match config::load(cli.config.as_deref(), &env, &overrides) {
        Ok(loaded) => loaded,
        Err(error) => return fail(exit::CONFIG, &error),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(exit::FAILURE, &error),
    };
    runtime.block_on(dispatch(cli.command, loaded))
}

async fn dispatch(command: Command, loaded: Loaded) -> ExitCode {
    let config = loaded.config.clone();
    let shutdown = Shutdown::new();
    if let Err(error) = trigger_on_signals(shutdown.clone()) {
        return fail(exit::FAILURE, &error);
    }
    match command {
        Command::Config { json } => {
            if json {
                print_json(&config::show::to_json(&loaded));
            } else {
                print!("{}", config::show::to_toml(&loaded));
            }
            ExitCode::SUCCESS
        }
        Command::Produce { sink, advance_slot } => {
            produce(&config, sink, advance_slot, shutdown).await
        }
        Command::Setup { print } => {
            scheduler_outcome(scheduler::setup(&config, print, shutdown).await)
        }
        command @ Command::Merge { .. } => merge(command, &config, shutdown).await,
        Command::Check {
            expected_rate,
            no_write,
            side,
            json,
        } => {
            let options = ops::check::CheckOptions {
                expected_rate,
                no_write,
                side: check_side(side),
            };
            check(&config, &options, json, shutdown).await
        }
        Command::Health { ready, addr } => health(&config, ready, addr).await,
        Command::Status { json } => status(&config, json, shutdown).await,
        Command::Verify { tables, json } => verify(&config, &tables, json, shutdown).await,
        Command::Resync { tables, wait } => resync(&config, &tables, wait, shutdown).await,
        Command::Teardown {
            print,
            redshift,
            yes,
            tables,
        } => {
            let options = ops::teardown::TeardownOptions {
                tables,
                print,
                redshift,
                confirmed: yes,
            };
            teardown(&config, options, shutdown).await
        }
    }
}

/// `kinesync merge`: once (plain, pruning tombstones, rebuilding the
/// events view), printed, or as the daemon.
async fn merge(command: Command, config: &config::Config, shutdown: Shutdown) -> ExitCode {
    match command {
        Command::Merge {
            once: true,
            prune_tombstones: true,
            ..
        } => printed_outcome(scheduler::merge_and_prune(config, shutdown).await),
        Command::Merge {
            once: true,
            rebuild_events_view: true,
            ..
        } => printed_outcome(scheduler::merge_and_rebuild(config, shutdown).await),
        Command::Merge {
            once: true,
            print,
            accept_data_loss,
            ..
        }
        | Command::Merge {
            once: false,
            print: print @ true,
            accept_data_loss,
            ..
        } => merge_once(config, print, accept_data_loss, shutdown).await,
        Command::Merge {
            once: false,
            print: false,
            ..
        } => {
            start_telemetry(config, Process::Merge, &shutdown);
            log_schedule(config);
            scheduler_outcome(scheduler::run_daemon(config.clone(), shutdown).await)
        }
        // dispatch passes only Merge here.
        _ => ExitCode::SUCCESS,
    }
}

/// Exit status of a scheduler command whose success prints nothing.
fn scheduler_outcome<T>(outcome: Result<T, SchedulerError>) -> ExitCode {
    match outcome {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => fail(scheduler_exit_code(&error), &error),
    }
}

/// Exit status of a scheduler command that prints what it did.
fn printed_outcome(outcome: Result<impl std::fmt::Display, SchedulerError>) -> ExitCode {
    match outcome {
        Ok(done) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(error) => fail(scheduler_exit_code(&error), &error),
    }
}

fn check_side(side: CheckSide) -> ops::check::Side {
    match side {
        CheckSide::All => ops::check::Side::All,
        CheckSide::Produce => ops::check::Side::Produce,
        CheckSide::Merge => ops::check::Side::Merge,
    }
}

/// `kinesync teardown`: what was dropped (or would be, with --print).
async fn teardown(
    config: &config::Config,
    options: ops::teardown::TeardownOptions,
    shutdown: Shutdown,
) -> ExitCode {
    use ops::teardown::TeardownError;
    match ops::teardown::teardown(config, options, shutdown).await {
        Ok(report) => {
            report.lines.iter().for_each(|l| println!("{l}"));
            ExitCode::SUCCESS
        }
        Err(
            error @ (TeardownError::NotConfirmed { .. }
            | TeardownError::Declined(_)
            | TeardownError::NoRedshiftConfig
            | TeardownError::BadTable(..)
            | TeardownError::Pattern(_)
            | TeardownError::StillConfigured(_)),
        ) => fail(exit::CONFIG, &error),
        Err(error @ TeardownError::SourceConnect(_)) => fail(exit::SOURCE, &error),
        Err(TeardownError::Scheduler(error)) => fail(scheduler_exit_code(&error), &error),
        Err(error) => fail(exit::FAILURE, &error),
    }
}

/// `kinesync produce`: the sink the flags choose, telemetry, the producer.
async fn produce(
    config: &config::Config,
    sink: SinkArg,
    advance_slot: bool,
    shutdown: Shutdown,
) -> ExitCode {
    let sink = match (sink, advance_slot) {
        (SinkArg::Kinesis, false) => SinkChoice::Kinesis,
        (SinkArg::Kinesis, true) => {
            return fail(
                exit::CONFIG,
                &"--advance-slot applies only to --sink stdout (the Kinesis producer always advances source.slot): drop the flag or add --sink stdout",
            )
        }
        (SinkArg::Stdout, false) => SinkChoice::Stdout,
        (SinkArg::Stdout, true) => SinkChoice::StdoutAdvancingSlot,
    };
    start_telemetry(config, Process::Produce, &shutdown);
    match run_produce(config, sink, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(exit::FAILURE, &error),
    }
}

/// `kinesync merge --once` (or `--print`): one merge, its summary printed.
async fn merge_once(
    config: &config::Config,
    print: bool,
    accept_data_loss: bool,
    shutdown: Shutdown,
) -> ExitCode {
    match scheduler::merge_once(config, print, accept_data_loss, shutdown).await {
        Ok(summary) => {
            if !print {
                println!("{summary}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => fail(scheduler_exit_code(&error), &error),
    }
}

/// `kinesync check`: every finding printed (or the JSON report).
async fn check(
    config: &config::Config,
    options: &ops::check::CheckOptions,
    json: bool,
    shutdown: Shutdown,
) -> ExitCode {
    let report = ops::check::check(config, options, shutdown).await;
    if json {
        print_json(&report);
    } else {
        report.findings.iter().for_each(|f| println!("{f}"));
    }
    exit_code(report.passed(), exit::CHECK_FAILED)
}

/// `kinesync status`: the report printed (or as JSON).
async fn status(config: &config::Config, json: bool, shutdown: Shutdown) -> ExitCode {
    let report = ops::status::status(config, shutdown).await;
    if json {
        print_json(&report);
    } else {
        print!("{report}");
    }
    exit_code(!report.nothing_read(), exit::FAILURE)
}

/// `kinesync verify`: one line per table (or the JSON report).
async fn verify(
    config: &config::Config,
    tables: &[String],
    json: bool,
    shutdown: Shutdown,
) -> ExitCode {
    match ops::verify::verify(config, tables, shutdown).await {
        Ok(report) => {
            if json {
                print_json(&report);
            } else {
                report.tables.iter().for_each(|t| println!("{t}"));
            }
            exit_code(report.all_equal(), exit::DIFFERENT)
        }
        Err(ops::verify::VerifyError::Scheduler(error)) => {
            fail(scheduler_exit_code(&error), &error)
        }
        Err(error) => fail(exit::FAILURE, &error),
    }
}

/// `kinesync resync`: the request, then (with --wait) its progress.
async fn resync(
    config: &config::Config,
    tables: &[String],
    wait: bool,
    shutdown: Shutdown,
) -> ExitCode {
    use ops::resync::ResyncError;
    let requested = match ops::resync::request(config, tables).await {
        Ok(requested) => requested,
        Err(error @ (ResyncError::NotConfigured { .. } | ResyncError::NoTables)) => {
            return fail(exit::CONFIG, &error)
        }
        Err(error @ ResyncError::Source(_)) => return fail(exit::SOURCE, &error),
        Err(error) => return fail(exit::FAILURE, &error),
    };
    println!(
        "resync requested: {}; the producer copies each in chunks while it streams (progress: kinesync status, or --wait)",
        requested.tables.join(", ")
    );
    if !wait {
        return ExitCode::SUCCESS;
    }
    match ops::resync::wait(config, &requested, &shutdown).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(exit::FAILURE),
        Err(error) => fail(exit::FAILURE, &error),
    }
}

/// `kinesync health`: one probe of the listener; without one configured
/// there is nothing to probe, which is not a failure (one-shot commands in
/// the same image have no listener).
async fn health(
    config: &config::Config,
    ready: bool,
    addr: Option<std::net::SocketAddr>,
) -> ExitCode {
    let path = if ready { "/readyz" } else { "/healthz" };
    let Some(listen) = addr.or(config.telemetry.listen_addr()) else {
        println!("telemetry.listen is not set: no listener to probe (set it, or pass --addr)");
        return ExitCode::SUCCESS;
    };
    match kinesync::telemetry::probe::probe(listen, path).await {
        Ok(body) => {
            println!("{body}");
            ExitCode::SUCCESS
        }
        Err(error) => fail(exit::FAILURE, &error),
    }
}

/// Declares the process to its metrics and, when the telemetry listener is
/// on, keeps its sampled gauges current.
fn start_telemetry(config: &config::Config, process: Process, shutdown: &Shutdown) {
    set_process(process);
    if config.telemetry.listen.is_some() {
        tokio::spawn(ops::status::sample_gauges(
            config.clone(),
            process,
            shutdown.clone(),
        ));
    }
}

fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("kinesync: error: cannot print JSON: {error}"),
    }
}

fn exit_code(ok: bool, otherwise: u8) -> ExitCode {
    ExitCode::from(if ok { exit::OK } else { otherwise })
}

fn scheduler_exit_code(error: &SchedulerError) -> u8 {
    match error {
        SchedulerError::NoRedshiftConfig | SchedulerError::Schedule(_) => exit::CONFIG,
        SchedulerError::SourceConnect(_)
        | SchedulerError::Catalog(_)
        | SchedulerError::NoSlotPosition { .. } => exit::SOURCE,
        SchedulerError::Refresh(_)
        | SchedulerError::Merge(_)
        | SchedulerError::UnresolvedToast(_)
        | SchedulerError::DataLoss { .. } => exit::MERGE_FAILED,
        SchedulerError::LeaseHeld { .. } => exit::SKIPPED,
        SchedulerError::Plan(_) => exit::MERGE_FAILED,
        _ => exit::FAILURE,
    }
}

/// The log format in force, for [`fail`].
static LOG_FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The final error: one `kinesync: error: ...` line, or with
/// `--log-format json` one JSON record like every other log line.
fn fail(code: u8, error: &dyn std::fmt::Display) -> ExitCode {
    match LOG_FORMAT.get() {
        Some(LogFormat::Json) => tracing::error!(exit_code = code, "kinesync: error: {error}"),
        _ => eprintln!("kinesync: error: {error}"),
    }
    ExitCode::from(code)
}

/// Without `RUST_LOG`: kinesync at info, libraries (the AWS SDK, hyper,
/// tokio-postgres, the cron scheduler, ...) only at warn, and the AWS
/// default chain's lookups (a multi-line dump per provider tried) only at
/// error: kinesync's own messages say what is missing.
const DEFAULT_LOG_FILTER: &str = "warn,kinesync=info,aws_config=error";

fn init_logging(format: LogFormat) {
    let _ = LOG_FORMAT.set(format);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours_wanted())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// ANSI colours only on a terminal, and never with `NO_COLOR` set (to
/// anything but the empty string, as no-color.org asks).
fn colours_wanted() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    std::io::stderr().is_terminal() && !no_color
}

/// The merge daemon's first line: its schedule and the next run (UTC, the
/// scheduler's time zone).
fn log_schedule(config: &config::Config) {
    let schedule = &config.schedule.merge;
    let next = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(schedule)
        .and_then(|cron| cron.find_next_occurrence(&chrono::Utc::now(), false));
    match next {
        Ok(next) => {
            let next = next.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            tracing::info!(
                schedule = %schedule,
                next_run = %next,
                "merge daemon: runs on schedule.merge {schedule:?} (UTC), next run at {next}"
            );
        }
        Err(error) => {
            tracing::warn!(schedule = %schedule, %error, "merge daemon: cannot compute the next run")
        }
    }
}
