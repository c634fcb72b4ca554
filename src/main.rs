//! The `kinesync` binary: parse the command line, load the configuration,
//! dispatch, and turn the outcome into a one-line message and an exit code.

use std::process::ExitCode;

use clap::Parser;
use kinesync::cli::{exit, CheckSide, Cli, Command, LogFormat, SinkArg};
use std::collections::BTreeMap;

use kinesync::config::{self, Loaded};
use kinesync::ops;
use kinesync::pipeline::{run_produce, SinkChoice};
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
    let loaded = match config::load(cli.config.as_deref(), &env, &overrides) {
        Ok(loaded) => loaded,
        Err(error) => return fail(exit::CONFIG, &error),
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
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
        Command::Produce { sink } => {
            let sink = match sink {
                SinkArg::Kinesis => SinkChoice::Kinesis,
                SinkArg::Stdout => SinkChoice::Stdout,
            };
            start_telemetry(&config, Process::Produce, &shutdown);
            match run_produce(&config, sink, shutdown).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fail(exit::FAILURE, &error),
            }
        }
        Command::Setup { print } => match scheduler::setup(&config, print, shutdown).await {
            Ok(_) => ExitCode::SUCCESS,
            Err(error) => fail(scheduler_exit_code(&error), &error),
        },
        Command::Merge {
            once: true,
            print,
            accept_data_loss,
        }
        | Command::Merge {
            once: false,
            print: print @ true,
            accept_data_loss,
        } => match scheduler::merge_once(&config, print, accept_data_loss, shutdown).await {
            Ok(summary) => {
                if !print {
                    println!("{summary}");
                }
                ExitCode::SUCCESS
            }
            Err(error) => fail(scheduler_exit_code(&error), &error),
        },
        Command::Merge {
            once: false,
            print: false,
            ..
        } => match {
            start_telemetry(&config, Process::Merge, &shutdown);
            scheduler::run_daemon(config, shutdown).await
        } {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(scheduler_exit_code(&error), &error),
        },
        Command::Check {
            expected_rate,
            no_write,
            side,
            json,
        } => {
            let options = ops::check::CheckOptions {
                expected_rate,
                no_write,
                side: match side {
                    CheckSide::All => ops::check::Side::All,
                    CheckSide::Produce => ops::check::Side::Produce,
                    CheckSide::Merge => ops::check::Side::Merge,
                },
            };
            let report = ops::check::check(&config, &options, shutdown).await;
            if json {
                print_json(&report);
            } else {
                report.findings.iter().for_each(|f| println!("{f}"));
            }
            exit_code(report.passed(), exit::CHECK_FAILED)
        }
        Command::Status { json } => {
            let report = ops::status::status(&config, shutdown).await;
            if json {
                print_json(&report);
            } else {
                print!("{report}");
            }
            exit_code(!report.nothing_read(), exit::FAILURE)
        }
        Command::Verify { tables, json } => {
            match ops::verify::verify(&config, &tables, shutdown).await {
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
        SchedulerError::SourceConnect(_) | SchedulerError::Catalog(_) => exit::SOURCE,
        SchedulerError::Refresh(_) | SchedulerError::Merge(_) | SchedulerError::DataLoss { .. } => {
            exit::MERGE_FAILED
        }
        SchedulerError::LeaseHeld { .. } => exit::SKIPPED,
        SchedulerError::Plan(_) => exit::MERGE_FAILED,
        _ => exit::FAILURE,
    }
}

fn fail(code: u8, error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("kinesync: error: {error}");
    ExitCode::from(code)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
