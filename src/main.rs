//! The `kinesync` binary: parse the command line, load the configuration,
//! dispatch, and turn the outcome into a one-line message and an exit code.

use std::process::ExitCode;

use clap::Parser;
use kinesync::cli::{exit, Cli, Command, LogFormat, SinkArg};
use kinesync::config::Config;
use kinesync::ops;
use kinesync::pipeline::{run_produce, SinkChoice};
use kinesync::scheduler::{self, SchedulerError};
use kinesync::shutdown::{trigger_on_signals, Shutdown};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let overrides = match cli.config_overrides() {
        Ok(overrides) => overrides,
        Err(error) => return fail(exit::CONFIG, &error),
    };
    let mut config = match Config::load_with_overrides(&cli.config, &overrides) {
        Ok(config) => config,
        Err(error) => return fail(exit::CONFIG, &error),
    };
    if let Some(addr) = cli.metrics_addr {
        config.telemetry.listen = Some(addr.to_string());
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(exit::FAILURE, &error),
    };
    runtime.block_on(dispatch(cli.command, config))
}

async fn dispatch(command: Command, config: Config) -> ExitCode {
    let shutdown = Shutdown::new();
    if let Err(error) = trigger_on_signals(shutdown.clone()) {
        return fail(exit::FAILURE, &error);
    }
    match command {
        Command::Config => {
            println!("{config:#?}");
            ExitCode::SUCCESS
        }
        Command::Produce { sink, advance_slot } => {
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
        } => match scheduler::run_daemon(config, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(scheduler_exit_code(&error), &error),
        },
        Command::Check {
            expected_rate,
            no_write,
            json,
        } => {
            let options = ops::check::CheckOptions {
                expected_rate,
                no_write,
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
