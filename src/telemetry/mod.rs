//! Telemetry of the long-running commands (`produce`, the `merge` daemon):
//! Prometheus metrics, liveness and readiness, and the HTTP listener that
//! serves them when `telemetry.listen` (or `--metrics-addr`) is set.
//!
//! Metrics and health are process-wide (one process, one pipeline): the code
//! that moves a number reaches them through [`metrics()`] and [`health()`]
//! instead of threading handles through every signature. Logs are `tracing`,
//! set up by the binary.

pub mod health;
pub mod metrics;
pub mod probe;
mod server;

pub use health::{health, Health, Probe};
pub use metrics::{label, metrics, set_process, Metrics, Process};
pub use server::{serve, ServeError};

use crate::config::Config;
use crate::shutdown::Shutdown;

/// Starts the listener if the configuration asks for one.
pub async fn serve_if_configured(config: &Config, shutdown: &Shutdown) -> Result<(), ServeError> {
    if let Some(addr) = config.telemetry.listen_addr() {
        serve(addr, shutdown.clone()).await?;
    }
    Ok(())
}
