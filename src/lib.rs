//! kinesync: mirror PostgreSQL tables into Amazon Redshift through Amazon Kinesis.
//!
//! Two halves share this crate: the producer (`source` -> `event` -> `sink`,
//! driven by `pipeline`) and the merge scheduler (`redshift` + `scheduler`).
//! `main.rs` only parses the command line and dispatches.

pub mod aws;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod encode;
pub mod event;
pub mod lsn;
pub mod ops;
pub mod postgres;
pub mod produce;
pub mod redshift;
pub mod scheduler;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod sql;
pub mod telemetry;
