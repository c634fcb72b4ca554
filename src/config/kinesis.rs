//! `[kinesis]`: the stream the producer writes, its defaults (the
//! PutRecords limits) and its validation.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::checks::{check_assume_role, check_region};

/// Stream the producer writes when `kinesis.stream` is not set.
pub const DEFAULT_STREAM: &str = "kinesync-cdc";
/// Kinesis PutRecords limits, the classic values (kinesalite enforces these).
pub const DEFAULT_MAX_RECORDS_PER_REQUEST: usize = 500;
pub const DEFAULT_MAX_BYTES_PER_REQUEST: usize = 5 * 1024 * 1024;
/// Largest record (data + partition key): 1,024,000 bytes, the most
/// Redshift streaming ingestion reads into `kinesis_data` (VARBYTE,
/// r_VARBYTE_type); Kinesis itself takes 1 MiB or more.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1_024_000;
/// Longest wait for one PutRecords answer before it is retried.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 15;

/// What to do with an event larger than the Kinesis record limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OversizePolicy {
    /// Stop the producer with an error naming table and key (nothing confirmed past it).
    #[default]
    Fail,
    /// Append the event to `kinesis.dead_letter_path` and go on.
    DeadLetter,
}

/// Which records of one row may be in flight at once (docs/architecture.md,
/// "Hot rows").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    /// A row's events reach its shard in commit order: at most one of its
    /// records in flight, so a row changed by every transaction (a counter,
    /// a balance) moves one event per PutRecords round trip.
    #[default]
    Key,
    /// A row's events may be in flight together and land in any order;
    /// consumers order them by `(commit_lsn, lsn)`, as kinesync's merge
    /// does. Only an update that left a TOASTed value unchanged (whose value
    /// the merge takes from the row's previous version) still waits for the
    /// row's older events.
    Position,
}

/// `[kinesis]`: the stream the producer writes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KinesisConfig {
    /// Stream name or ARN.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// AWS region; when absent the default chain decides.
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default = "default_max_records")]
    pub max_records_per_request: usize,
    #[serde(default = "default_max_request_bytes")]
    pub max_bytes_per_request: usize,
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
    #[serde(default)]
    pub oversize: OversizePolicy,
    #[serde(default)]
    pub dead_letter_path: Option<PathBuf>,
    /// IAM role the producer assumes (on top of the default chain) for its Kinesis calls.
    #[serde(default)]
    pub assume_role_arn: Option<String>,
    /// External ID the role's trust policy asks for, if any.
    #[serde(default)]
    pub assume_role_external_id: Option<String>,
    /// Seconds one PutRecords call may take before it counts as failed and
    /// is retried (a hung request must not block its keys forever).
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Per-row delivery order: `key` (default) or `position`.
    #[serde(default)]
    pub ordering: Ordering,
}

impl Default for KinesisConfig {
    fn default() -> Self {
        KinesisConfig {
            stream: default_stream(),
            region: None,
            max_records_per_request: DEFAULT_MAX_RECORDS_PER_REQUEST,
            max_bytes_per_request: DEFAULT_MAX_BYTES_PER_REQUEST,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            oversize: OversizePolicy::Fail,
            dead_letter_path: None,
            assume_role_arn: None,
            assume_role_external_id: None,
            request_timeout_secs: DEFAULT_REQUEST_TIMEOUT_SECS,
            ordering: Ordering::Key,
        }
    }
}

fn default_stream() -> String {
    DEFAULT_STREAM.to_owned()
}
fn default_max_records() -> usize {
    DEFAULT_MAX_RECORDS_PER_REQUEST
}
fn default_max_request_bytes() -> usize {
    DEFAULT_MAX_BYTES_PER_REQUEST
}
fn default_max_record_bytes() -> usize {
    DEFAULT_MAX_RECORD_BYTES
}
fn default_request_timeout_secs() -> u64 {
    DEFAULT_REQUEST_TIMEOUT_SECS
}

impl KinesisConfig {
    /// The `[kinesis]` section's problems.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.stream.is_empty() {
            problems.push(
                "kinesis.stream is empty: name the Kinesis stream (or give its ARN)".to_owned(),
            );
        }
        if self.request_timeout_secs == 0 {
            problems.push("kinesis.request_timeout_secs must be at least 1".to_owned());
        }
        if !(1..=500).contains(&self.max_records_per_request) {
            problems.push("kinesis.max_records_per_request must be between 1 and 500".to_owned());
        }
        if self.max_record_bytes == 0 || self.max_record_bytes > 10 * 1024 * 1024 {
            problems.push(
                "kinesis.max_record_bytes must be between 1 and 10485760 (10 MiB)".to_owned(),
            );
        }
        if self.max_bytes_per_request < self.max_record_bytes {
            problems.push(
                "kinesis.max_bytes_per_request must be at least kinesis.max_record_bytes"
                    .to_owned(),
            );
        }
        if self.oversize == OversizePolicy::DeadLetter && self.dead_letter_path.is_none() {
            problems.push(
                "kinesis.oversize = \"dead_letter\" needs kinesis.dead_letter_path".to_owned(),
            );
        }
        check_region("kinesis.region", &self.region, &mut problems);
        check_assume_role(
            "kinesis",
            &self.assume_role_arn,
            &self.assume_role_external_id,
            &mut problems,
        );
        problems
    }
}
