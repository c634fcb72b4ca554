//! The Redshift Data API client: the only way kinesync talks to Redshift.
//!
//! The Data API is asynchronous: a submit returns a statement id, and the
//! statement's fate (FINISHED, FAILED with Redshift's error text, ABORTED)
//! is learned by polling DescribeStatement. [`DataApi`] hides that behind
//! `execute`, `batch` and `query`, polls with capped exponential backoff,
//! gives up after the configured statement timeout, and cancels the
//! statement when shutdown is requested. The SDK fills `ClientToken` itself,
//! so its own retries of a submit never run a statement twice.

mod client;

pub use client::{BatchOutcome, DataApi, RedshiftError, Row, Value};
