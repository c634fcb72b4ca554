//! Redshift Data API stand-in: a dev/test server speaking the Amazon Redshift
//! Data API wire protocol and running the SQL on PostgreSQL, with the
//! Redshift-only parts kinesync uses emulated (Kinesis external schemas,
//! streaming materialized views and their REFRESH, JSON_PARSE, SUPER
//! navigation with lax casts, Redshift types and limits, catalog views,
//! stored procedures interpreted at CALL time).
//!
//! Modules: [`http`] (wire format), [`statements`] (store, state machine),
//! [`exec`] (statement tasks, stored procedure calls), [`rewrite`]
//! (Redshift -> PostgreSQL SQL, stored procedure statements and bodies),
//! [`catalog`] (the `kinesync_standin` schema), [`kinesis_reader`]
//! (streaming view refresh), [`pg`] (connections), [`faults`] (fault
//! injection for tests).

pub mod catalog;
pub mod exec;
pub mod faults;
pub mod http;
pub mod kinesis_reader;
pub mod pg;
pub mod rewrite;
pub mod statements;

use std::future::Future;
use std::sync::Arc;

/// Server settings.
pub struct Config {
    /// PostgreSQL server URL; the request's Database replaces its dbname.
    pub postgres_url: String,
    /// Kinesis client used by streaming view refreshes.
    pub kinesis: aws_sdk_kinesis::Client,
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let engine = Arc::new(exec::Engine {
        pg: pg::Pg::new(&config.postgres_url)?,
        kinesis: config.kinesis,
        store: statements::Store::default(),
    });
    axum::serve(listener, http::router(engine))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
