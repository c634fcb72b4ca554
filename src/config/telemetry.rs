//! `[telemetry]`: the metrics and health listener of `produce` and the
//! merge daemon (off by default), and its validation.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// `[telemetry]`: the metrics and health listener of `produce` and the merge daemon.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `host:port` to serve `/metrics`, `/healthz` and `/readyz` on; off when unset.
    #[serde(default)]
    pub listen: Option<String>,
}

impl TelemetryConfig {
    /// The listen address, when set and valid (validation reports a bad one).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.as_deref()?.parse().ok()
    }
}

impl TelemetryConfig {
    /// The `[telemetry]` section's problems.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(listen) = &self.listen {
            if listen.parse::<SocketAddr>().is_err() {
                problems.push(format!(
                    "telemetry.listen {listen:?} must be an IP address and port, e.g. \"127.0.0.1:9464\" (\"0.0.0.0:9464\" for every interface)"
                ));
            }
        }
        problems
    }
}
