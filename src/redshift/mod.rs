//! The Redshift Data API client: the only way kinesync talks to Redshift.
//!
//! The Data API is asynchronous: a submit returns a statement id, and the
//! statement's fate (FINISHED, FAILED with Redshift's error text, ABORTED)
//! is learned by polling DescribeStatement. [`DataApi`] hides that behind
//! `execute`, `batch` and `query`, polls with capped exponential backoff,
//! gives up after the configured statement timeout, and cancels the
//! statement when shutdown is requested. Each submit carries its own random
//! `ClientToken`, which the SDK's retries of it reuse, so a retried submit
//! never runs a statement twice and two submits never share one.

mod client;

pub use client::{DataApi, RedshiftError, Row, Value, MAX_STATEMENT_BYTES};

/// A timestamp as Redshift returns it as text (`GETDATE()`, `TIMESTAMP`
/// columns cast to VARCHAR): `2026-01-01 10:00:00` with optional fractions.
pub fn parse_timestamp(text: &str) -> Option<chrono::NaiveDateTime> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok()
}
