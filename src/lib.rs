//! kinesync: mirror PostgreSQL tables into Amazon Redshift through Amazon Kinesis.
//!
//! Two halves share this crate: the producer (`source` -> `event` -> `sink`,
//! driven by `pipeline`) and the merge scheduler (`redshift` + `scheduler`).
//! `main.rs` only parses the command line and dispatches.

pub mod config;
