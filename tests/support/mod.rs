//! Shared test support: the local stack's addresses, one isolated pipeline
//! per test (its own source database, Redshift database, stream and slot),
//! running the real `kinesync` binary, and comparing mirror with source.
//!
//! The stack is started by `deploy/local/test`, which exports the
//! `KINESYNC_TEST_*` variables. A missing variable fails the test: a test
//! never silently skips because a service is missing.
//!
//! One module per concern: [`stack`] (addresses, connect, poll),
//! [`pipeline`] (one isolated pipeline, running the binary), [`producer`]
//! (the background producer), [`merge`] (setup, merge once), [`stream`]
//! (Kinesis), [`assertions`] (mirror equals source, one-line errors). The
//! names most tests use are re-exported here.

// Cargo compiles all of tests/support into every test binary (tests/*.rs)
// and each uses a part of it, so "never used" is a property of the whole
// suite, not of one binary: `tests/support/find-unused` lists the helpers
// no binary uses (there must be none).
#[allow(dead_code)]
pub mod assertions;
#[allow(dead_code)]
pub mod evolving;
#[allow(dead_code)]
pub mod hostile;
#[allow(dead_code)]
pub mod kinesis_proxy;
#[allow(dead_code)]
pub mod merge;
#[allow(dead_code)]
pub mod pg_cluster;
#[allow(dead_code)]
pub mod pipeline;
#[allow(dead_code)]
pub mod ports;
#[allow(dead_code)]
pub mod producer;
#[allow(dead_code)]
pub mod replay;
#[allow(dead_code)]
pub mod stack;
#[allow(dead_code)]
pub mod stream;
#[allow(dead_code)]
pub mod telemetry;
#[allow(dead_code)]
pub mod workload;

// The names most tests use, at `support::` (each binary uses some).
#[allow(unused_imports)]
pub use self::{
    assertions::assert_one_line_error,
    pipeline::{run_with_config_text, Pipeline},
    stack::{connect, fault_seed, poll, text_rows, Stack, DEADLINE},
    stream::{kinesis_client, StreamRecord},
};
