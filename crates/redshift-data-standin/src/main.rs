//! `redshift-data-standin` binary: parses flags, sets up logging and the
//! Kinesis client from the default AWS configuration, and serves until
//! SIGTERM/SIGINT.

use std::io::Write;

use clap::Parser;
use tracing::info;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Dev/test stand-in for the Amazon Redshift Data API, running SQL on PostgreSQL"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "STANDIN_LISTEN", default_value = "127.0.0.1:4599")]
    listen: String,
    /// PostgreSQL server URL (the request's Database selects the database on it).
    #[arg(long, env = "STANDIN_POSTGRES_URL")]
    postgres_url: String,
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    info!("shutting down");
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run());
    // do not wait for idle blocking threads (SDK internals) on exit
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tokio_postgres=warn")),
        )
        .init();
    let args = Args::parse();
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let kinesis = aws_sdk_kinesis::Client::new(&aws);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {addr}")?;
        out.flush()?;
    }
    info!(%addr, "redshift data api stand-in ready");
    redshift_data_standin::serve(
        listener,
        redshift_data_standin::Config {
            postgres_url: args.postgres_url,
            kinesis,
        },
        shutdown_signal(),
    )
    .await?;
    info!("stopped");
    Ok(())
}
