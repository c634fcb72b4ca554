//! The telemetry HTTP listener: `/metrics` (OpenMetrics text), `/healthz`
//! and `/readyz`, on `telemetry.listen`. Plain HTTP, no authentication:
//! bind it to a private address (docs/security.md).

use std::net::SocketAddr;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::health::{health, Verdict};
use super::metrics::metrics;
use crate::shutdown::Shutdown;

/// Content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on telemetry.listen = {addr}: {detail} (choose a free port, or unset telemetry.listen / --metrics-addr)")]
    Bind { addr: SocketAddr, detail: String },
}

/// Binds `addr` now (so a taken port fails the start) and serves until
/// `shutdown`. Returns the bound address (port 0 picks a free one).
pub async fn serve(addr: SocketAddr, shutdown: Shutdown) -> Result<SocketAddr, ServeError> {
    let bind = |e: std::io::Error| ServeError::Bind {
        addr,
        detail: e.to_string(),
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind)?;
    let bound = listener.local_addr().map_err(bind)?;
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            shutdown.wait().await;
        });
        if let Err(error) = server.await {
            tracing::warn!(%error, "telemetry listener stopped");
        }
    });
    tracing::info!("serving /metrics, /healthz and /readyz on http://{bound}");
    Ok(bound)
}

async fn metrics_page() -> Response {
    ([(header::CONTENT_TYPE, OPENMETRICS)], metrics().encode()).into_response()
}

async fn healthz() -> Response {
    verdict(health().liveness())
}

async fn readyz() -> Response {
    verdict(health().readiness().await)
}

fn verdict(v: Verdict) -> Response {
    let status = if v.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, v.body).into_response()
}
