//! `[redshift]`: where the mirror lives and how the Data API reaches it,
//! its defaults and its validation.

use serde::{Deserialize, Serialize};

use super::checks::{check_assume_role, check_region, is_simple_lowercase_name};

pub const DEFAULT_EXTERNAL_SCHEMA: &str = "kinesync_stream";
pub const DEFAULT_MIRROR_SCHEMA: &str = "mirror";
pub const DEFAULT_EVENTS_VIEW: &str = "kinesync_events";
/// Kinesis stream retention the merge must stay inside (the AWS default).
pub const DEFAULT_RETENTION_HOURS: u64 = 24;
/// Warn when the last merge is older than this fraction of the retention.
pub const DEFAULT_RETENTION_WARN_FRACTION: f64 = 0.5;
/// How long to wait for one Data API statement before giving up.
pub const DEFAULT_STATEMENT_TIMEOUT_SECS: u64 = 900;
/// How long the merge lease lasts after each renewal (renewed every third of
/// it while a run is in progress): a holder that stopped renewing is taken
/// over at most this long after its last renewal.
pub const DEFAULT_LEASE_SECS: u64 = 30;

/// `[redshift]`: where the mirror lives and how the Data API reaches it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedshiftConfig {
    #[serde(default)]
    pub workgroup: Option<String>,
    #[serde(default)]
    pub cluster_id: Option<String>,
    pub database: String,
    #[serde(default)]
    pub secret_arn: Option<String>,
    #[serde(default)]
    pub db_user: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    /// IAM role Redshift assumes to read the stream (`default` for the default role).
    pub stream_role_arn: String,
    #[serde(default = "default_external_schema")]
    pub external_schema: String,
    #[serde(default = "default_mirror_schema")]
    pub mirror_schema: String,
    #[serde(default = "default_events_view")]
    pub events_view: String,
    #[serde(default = "default_statement_timeout_secs")]
    pub statement_timeout_secs: u64,
    /// How long the merge lease lasts after each renewal.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
    /// The stream's retention period, in hours.
    #[serde(default = "default_retention_hours")]
    pub retention_hours: u64,
    /// Warn loudly when the last merge is older than this share of the retention.
    #[serde(default = "default_retention_warn_fraction")]
    pub retention_warn_fraction: f64,
    /// IAM role the scheduler assumes (on top of the default chain) for its
    /// Data API calls. Not `stream_role_arn`, which Redshift itself assumes.
    #[serde(default)]
    pub assume_role_arn: Option<String>,
    /// External ID the role's trust policy asks for, if any.
    #[serde(default)]
    pub assume_role_external_id: Option<String>,
}

fn default_external_schema() -> String {
    DEFAULT_EXTERNAL_SCHEMA.to_owned()
}
fn default_mirror_schema() -> String {
    DEFAULT_MIRROR_SCHEMA.to_owned()
}
fn default_events_view() -> String {
    DEFAULT_EVENTS_VIEW.to_owned()
}
fn default_lease_secs() -> u64 {
    DEFAULT_LEASE_SECS
}
fn default_statement_timeout_secs() -> u64 {
    DEFAULT_STATEMENT_TIMEOUT_SECS
}
fn default_retention_hours() -> u64 {
    DEFAULT_RETENTION_HOURS
}
fn default_retention_warn_fraction() -> f64 {
    DEFAULT_RETENTION_WARN_FRACTION
}

impl RedshiftConfig {
    /// The `[redshift]` section's problems (and the stream name's, which Redshift reads as a relation).
    pub fn validate(&self, stream: &str) -> Vec<String> {
        let mut problems = Vec::new();
        check_region("redshift.region", &self.region, &mut problems);
        check_assume_role(
            "redshift",
            &self.assume_role_arn,
            &self.assume_role_external_id,
            &mut problems,
        );
        match (&self.workgroup, &self.cluster_id) {
            (Some(_), Some(_)) => problems.push(
                "redshift.workgroup and redshift.cluster_id are both set: keep workgroup (serverless) or cluster_id (provisioned)".to_owned(),
            ),
            (None, None) => problems.push(
                "redshift needs redshift.workgroup (serverless) or redshift.cluster_id (provisioned)".to_owned(),
            ),
            _ => {}
        }
        if self.secret_arn.is_some() && self.db_user.is_some() {
            problems
                .push("redshift.secret_arn and redshift.db_user are both set: keep one".to_owned());
        }
        for (key, value) in [
            ("redshift.external_schema", &self.external_schema),
            ("redshift.mirror_schema", &self.mirror_schema),
            ("redshift.events_view", &self.events_view),
        ] {
            if !is_simple_lowercase_name(value) {
                problems.push(format!("{key} {value:?} must be lower-case letters, digits and _ (at most 63 characters)"));
            }
        }
        if !(self.retention_warn_fraction > 0.0 && self.retention_warn_fraction <= 1.0) {
            problems
                .push("redshift.retention_warn_fraction must be above 0 and at most 1".to_owned());
        }
        if !(3..=3600).contains(&self.lease_secs) {
            problems.push(
                "redshift.lease_secs must be between 3 and 3600 (the merge lease, renewed every third of it)"
                    .to_owned(),
            );
        }
        if !(24..=8760).contains(&self.retention_hours) {
            problems.push(
                "redshift.retention_hours must be between 24 and 8760 (the stream's retention)"
                    .to_owned(),
            );
        }
        if self.stream_role_arn != "default" && !self.stream_role_arn.starts_with("arn:") {
            problems.push(format!(
                "redshift.stream_role_arn {:?} must be an IAM role ARN (arn:aws:iam::<account>:role/<name>) or \"default\"",
                self.stream_role_arn
            ));
        }
        if stream.starts_with("arn:") {
            // Redshift names the stream as a relation; it needs the bare name.
        } else if stream.chars().any(|c| c.is_ascii_uppercase()) {
            problems.push(format!(
                "kinesis.stream {:?} has upper-case letters: Redshift streaming ingestion needs a lower-case stream name",
                stream
            ));
        }
        problems
    }
}
