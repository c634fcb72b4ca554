//! The kinesync configuration: one TOML file shared by `produce`, `setup` and
//! `merge`, every key overridable by `KINESYNC_<SECTION>__<KEY>`.
//!
//! This module owns the typed shape of the file, the defaults (as named
//! constants, so docs and code cite the same number), and validation that
//! reports *every* problem at once, each naming the key and what is accepted.
//! Nothing here talks to a network.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod load;
pub mod show;
pub use load::{load, load_from, stray_variables, Loaded, Origin, Override, DEFAULT_CONFIG_FILE};

/// The sections of the file, in the order `kinesync config` prints them.
pub const SECTIONS: &[&str] = &["source", "kinesis", "redshift", "schedule", "telemetry"];

/// Default publication and slot name.
pub const DEFAULT_PUBLICATION: &str = "kinesync";
pub const DEFAULT_SLOT: &str = "kinesync";
/// Kinesis PutRecords limits, the classic values (kinesalite enforces these).
pub const DEFAULT_MAX_RECORDS_PER_REQUEST: usize = 500;
pub const DEFAULT_MAX_BYTES_PER_REQUEST: usize = 5 * 1024 * 1024;
/// Largest record (data + partition key): 1,024,000 bytes, the most
/// Redshift streaming ingestion reads into `kinesis_data` (VARBYTE,
/// r_VARBYTE_type); Kinesis itself takes 1 MiB or more.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1_024_000;
/// Longest wait for one PutRecords answer before it is retried.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 15;
/// How often an idle producer writes a heartbeat so the slot keeps advancing.
pub const DEFAULT_HEARTBEAT_SECS: u64 = 10;
pub const DEFAULT_EXTERNAL_SCHEMA: &str = "kinesync_stream";
pub const DEFAULT_MIRROR_SCHEMA: &str = "mirror";
pub const DEFAULT_EVENTS_VIEW: &str = "kinesync_events";
pub const DEFAULT_MERGE_SCHEDULE: &str = "0 */5 * * * *";
/// Kinesis stream retention the merge must stay inside (the AWS default).
pub const DEFAULT_RETENTION_HOURS: u64 = 24;
/// Warn when the last merge is older than this fraction of the retention.
pub const DEFAULT_RETENTION_WARN_FRACTION: f64 = 0.5;
/// How long to wait for one Data API statement before giving up.
pub const DEFAULT_STATEMENT_TIMEOUT_SECS: u64 = 900;

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub source: SourceConfig,
    #[serde(default)]
    pub kinesis: KinesisConfig,
    #[serde(default)]
    pub redshift: Option<RedshiftConfig>,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

/// `[source]`: the PostgreSQL database to mirror.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `postgres://user:password@host:port/db?sslmode=...` (or a libpq
    /// `key=value` string); printed with its password redacted.
    #[serde(serialize_with = "serialize_redacted")]
    pub url: String,
    /// `schema.table` entries; `schema.*` selects every table of a schema.
    pub tables: Vec<String>,
    #[serde(default = "default_publication")]
    pub publication: String,
    #[serde(default = "default_slot")]
    pub slot: String,
    #[serde(default)]
    pub snapshot: SnapshotMode,
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_interval_secs: u64,
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceConfig")
            .field("url", &redact_url(&self.url))
            .field("tables", &self.tables)
            .field("publication", &self.publication)
            .field("slot", &self.slot)
            .field("snapshot", &self.snapshot)
            .field("heartbeat_interval_secs", &self.heartbeat_interval_secs)
            .finish()
    }
}

/// Whether the producer copies the tables before streaming.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMode {
    /// Copy the tables when the slot is created, then stream.
    #[default]
    Initial,
    /// Stream only; never copy.
    Never,
    /// Copy the tables when the slot is created, then exit.
    InitialOnly,
}

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
        }
    }
}

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

/// `[schedule]`: when the merge daemon runs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Cron expression with a seconds field, e.g. `0 */5 * * * *`.
    #[serde(default = "default_merge_schedule")]
    pub merge: String,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            merge: default_merge_schedule(),
        }
    }
}

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

fn default_publication() -> String {
    DEFAULT_PUBLICATION.to_owned()
}
fn default_slot() -> String {
    DEFAULT_SLOT.to_owned()
}
fn default_stream() -> String {
    "kinesync-cdc".to_owned()
}
fn default_heartbeat_secs() -> u64 {
    DEFAULT_HEARTBEAT_SECS
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
fn default_external_schema() -> String {
    DEFAULT_EXTERNAL_SCHEMA.to_owned()
}
fn default_mirror_schema() -> String {
    DEFAULT_MIRROR_SCHEMA.to_owned()
}
fn default_events_view() -> String {
    DEFAULT_EVENTS_VIEW.to_owned()
}
fn default_merge_schedule() -> String {
    DEFAULT_MERGE_SCHEDULE.to_owned()
}
fn default_retention_hours() -> u64 {
    DEFAULT_RETENTION_HOURS
}
fn default_retention_warn_fraction() -> f64 {
    DEFAULT_RETENTION_WARN_FRACTION
}
fn default_statement_timeout_secs() -> u64 {
    DEFAULT_STATEMENT_TIMEOUT_SECS
}

/// Why a configuration could not be loaded. Every variant is a user error.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source} (pass --config <file>)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl Config {
    /// Parses TOML text, applies overrides from `env`, and validates.
    pub fn from_toml_with_env(
        text: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let file = Some((PathBuf::from("<text>"), text.to_owned()));
        load::load_from(file, env, &[]).map(|loaded| loaded.config)
    }

    /// Every problem, not just the first: each section's, in section order.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = self.source.validate();
        problems.extend(self.kinesis.validate());
        problems.extend(self.telemetry.validate());
        if let Some(redshift) = &self.redshift {
            problems.extend(redshift.validate(&self.kinesis.stream));
        }
        problems.extend(self.schedule.validate());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The stream's bare name (the last path segment of an ARN).
    pub fn stream_name(&self) -> &str {
        self.kinesis
            .stream
            .rsplit('/')
            .next()
            .unwrap_or(&self.kinesis.stream)
    }
}

/// A region, when set, is a region name like `eu-west-1` (an empty one
/// would reach the SDK as "no region").
impl SourceConfig {
    /// The `[source]` section's problems.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.url.trim().is_empty() {
            problems.push(
                "source.url is empty: set it to postgres://user:password@host:port/db".to_owned(),
            );
        } else if let Err(error) = crate::postgres::SourceUrl::parse(&self.url) {
            problems.push(error.to_string());
        }
        if self.tables.is_empty() {
            problems.push(
                "source.tables is empty: list tables as \"schema.table\" (or \"schema.*\")"
                    .to_owned(),
            );
        }
        for table in &self.tables {
            if table
                .split_once('.')
                .is_none_or(|(s, t)| s.is_empty() || t.is_empty())
            {
                problems.push(format!(
                    "source.tables entry {table:?} must be \"schema.table\" or \"schema.*\""
                ));
            }
        }
        for (key, value) in [
            ("source.publication", &self.publication),
            ("source.slot", &self.slot),
        ] {
            if !is_simple_lowercase_name(value) {
                problems.push(format!("{key} {value:?} must be lower-case letters, digits and _ (at most 63 characters)"));
            }
        }
        if self.heartbeat_interval_secs == 0 {
            problems.push("source.heartbeat_interval_secs must be at least 1".to_owned());
        }
        problems
    }
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

impl ScheduleConfig {
    /// The `[schedule]` section's problems.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(message) =
            tokio_cron_scheduler::Job::new_async(self.merge.as_str(), |_, _| Box::pin(async {}))
        {
            problems.push(format!(
                "schedule.merge {:?} is not a cron expression with a seconds field (e.g. \"0 */5 * * * *\"): {message}",
                self.merge
            ));
        }
        problems
    }
}

fn check_region(key: &str, region: &Option<String>, problems: &mut Vec<String>) {
    let Some(region) = region else {
        return;
    };
    let valid = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    if !valid {
        problems.push(format!(
            "{key} {region:?} is not an AWS region: set it like \"eu-west-1\", or remove it to use AWS_REGION"
        ));
    }
}

/// `<section>.assume_role_arn` is an IAM role ARN; an external ID needs it.
fn check_assume_role(
    section: &str,
    arn: &Option<String>,
    external_id: &Option<String>,
    problems: &mut Vec<String>,
) {
    if let Some(arn) = arn {
        if !is_role_arn(arn) {
            problems.push(format!(
                "{section}.assume_role_arn {arn:?} must be an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)"
            ));
        }
    }
    match external_id {
        Some(_) if arn.is_none() => problems.push(format!(
            "{section}.assume_role_external_id is set without {section}.assume_role_arn: set the role, or remove the external ID"
        )),
        Some(id) if !(2..=1224).contains(&id.len()) => problems.push(format!(
            "{section}.assume_role_external_id must be 2 to 1224 characters"
        )),
        _ => {}
    }
}

/// `arn:<partition>:iam::<12 digits>:role/<path/name>`.
fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if partition.starts_with("aws")
            && account.len() == 12
            && account.chars().all(|c| c.is_ascii_digit())
            && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty()))
}

/// One line describing a TOML error: the line and key it is at (when
/// known) and, for an unknown key or section, the closest known name.
fn describe_toml_error(text: &str, message: &str, span: Option<std::ops::Range<usize>>) -> String {
    let message = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    let span = span.filter(|s| s.start <= text.len());
    let mut located = String::new();
    let mut place = String::new();
    let mut section = None;
    let mut on_header = false;
    if let Some(span) = &span {
        let line_number = text[..span.start].matches('\n').count() + 1;
        let line = text.lines().nth(line_number - 1).unwrap_or_default().trim();
        // The section the error is in: the last header above its line.
        section = text
            .lines()
            .take(line_number - 1)
            .filter_map(|l| {
                let l = l.trim();
                l.strip_prefix('[')?.split(']').next().map(str::trim)
            })
            .last()
            .map(str::to_owned);
        located = format!("line {line_number}: ");
        on_header = line.starts_with('[');
        let key = line.split('=').next().unwrap_or_default().trim();
        place = match &section {
            _ if line.starts_with('[') => format!("{line}: "),
            Some(section) if !key.is_empty() => format!("{section}.{key}: "),
            _ => String::new(),
        };
    }
    let Some((field, expected)) = unknown_field(&message) else {
        return format!("{located}{place}{message}");
    };
    let what = match (&section, span.is_some(), on_header) {
        (_, true, true) => format!("unknown section [{field}]"),
        (Some(section), true, false) => format!("unknown key {section}.{field}"),
        (None, true, false) => format!("unknown top-level key `{field}`"),
        (_, false, _) => format!("unknown key or section `{field}`"),
    };
    let known = expected
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match closest(&field, &expected) {
        Some(best) => format!("{located}{what}: did you mean `{best}`? (known: {known})"),
        None => format!("{located}{what} (known: {known})"),
    }
}

/// `unknown field `x`, expected one of `a`, `b`` -> ("x", ["a", "b"]).
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((field.to_owned(), expected))
}

/// The known name nearest to `name` by edit distance, if near enough to be
/// a typo (at most a third of its length, and at least 2, edits away).
fn closest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    known
        .iter()
        .map(|k| (edit_distance(&name.to_ascii_lowercase(), k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Levenshtein distance where swapping two neighbours counts as one edit
/// (optimal string alignment), the commonest typo.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

fn is_simple_lowercase_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !value.starts_with(|c: char| c.is_ascii_digit())
}

fn serialize_redacted<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url))
}

/// A connection URL or libpq `key=value` string with every password
/// replaced by `***`, safe to print and log.
pub fn redact_url(url: &str) -> String {
    crate::postgres::redact_connection_string(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [source]
        url = "postgres://kinesync:secret@localhost:5432/app"
        tables = ["public.orders"]
    "#;

    #[test]
    fn minimal_file_gets_defaults() {
        let config = Config::from_toml_with_env(MINIMAL, &BTreeMap::new()).unwrap();
        assert_eq!(config.source.slot, DEFAULT_SLOT);
        assert_eq!(config.kinesis.max_records_per_request, 500);
        assert_eq!(config.schedule.merge, DEFAULT_MERGE_SCHEDULE);
    }

    #[test]
    fn environment_overrides_file() {
        let env = BTreeMap::from([
            ("KINESYNC_SOURCE__SLOT".to_owned(), "other".to_owned()),
            (
                "KINESYNC_KINESIS__MAX_RECORDS_PER_REQUEST".to_owned(),
                "10".to_owned(),
            ),
        ]);
        let config = Config::from_toml_with_env(MINIMAL, &env).unwrap();
        assert_eq!(config.source.slot, "other");
        assert_eq!(config.kinesis.max_records_per_request, 10);
    }

    #[test]
    fn unknown_key_is_rejected() {
        let text = format!("{MINIMAL}\nslto = \"x\"\n");
        let err = Config::from_toml_with_env(
            &text.replace("tables", "slto2 = 1\ntables"),
            &BTreeMap::new(),
        )
        .unwrap_err();
        let err = err.to_string();
        assert!(err.contains("unknown key") && err.contains("slto"), "{err}");
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let text = r#"
            [source]
            url = ""
            tables = []
            [redshift]
            workgroup = "a"
            cluster_id = "b"
            database = "dev"
            stream_role_arn = "nope"
            [schedule]
            merge = "every minute"
        "#;
        let err = Config::from_toml_with_env(text, &BTreeMap::new())
            .unwrap_err()
            .to_string();
        for needle in [
            "source.url",
            "source.tables",
            "cluster_id",
            "stream_role_arn",
            "schedule.merge",
        ] {
            assert!(err.contains(needle), "missing {needle} in {err}");
        }
    }

    #[test]
    fn a_typo_gets_its_line_section_and_a_suggestion() {
        let text = MINIMAL.replace("tables", "slto = 1\n        tables");
        let err = Config::from_toml_with_env(&text, &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 4: unknown key source.slto: did you mean `slot`?"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn an_unknown_key_from_the_environment_still_gets_a_suggestion() {
        let env = BTreeMap::from([("KINESYNC_SOURCE__PUBLICATON".to_owned(), "x".to_owned())]);
        let err = Config::from_toml_with_env(MINIMAL, &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean `publication`?"), "{err}");
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("slto", "slot"), 1);
        assert_eq!(edit_distance("redshfit", "redshift"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(closest("zzzz", &["slot".to_owned()]), None);
    }

    #[test]
    fn telemetry_listen_is_off_by_default_and_overridable() {
        let config = Config::from_toml_with_env(MINIMAL, &BTreeMap::new()).unwrap();
        assert_eq!(config.telemetry.listen_addr(), None);
        let env = BTreeMap::from([(
            "KINESYNC_TELEMETRY__LISTEN".to_owned(),
            "127.0.0.1:9464".to_owned(),
        )]);
        let config = Config::from_toml_with_env(MINIMAL, &env).unwrap();
        assert_eq!(
            config.telemetry.listen_addr(),
            Some("127.0.0.1:9464".parse().unwrap())
        );
    }

    #[test]
    fn a_bad_telemetry_address_or_key_is_one_line_naming_the_key() {
        let text = format!("{MINIMAL}\n[telemetry]\nlisten = \"localhost\"\n");
        let err = Config::from_toml_with_env(&text, &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("telemetry.listen \"localhost\" must be an IP address and port"),
            "{err}"
        );
        let text = format!("{MINIMAL}\n[telemetry]\nlisen = \"127.0.0.1:1\"\n");
        let err = Config::from_toml_with_env(&text, &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown key telemetry.lisen: did you mean `listen`?"),
            "{err}"
        );
    }

    #[test]
    fn assume_role_needs_a_role_arn() {
        let text = format!(
            "{MINIMAL}\n[kinesis]\nassume_role_arn = \"arn:aws:iam::123456789012:role/kinesync-producer\"\nassume_role_external_id = \"abc123\"\n"
        );
        let config = Config::from_toml_with_env(&text, &BTreeMap::new()).unwrap();
        assert_eq!(
            config.kinesis.assume_role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/kinesync-producer")
        );
        let env = BTreeMap::from([
            (
                "KINESYNC_KINESIS__ASSUME_ROLE_ARN".to_owned(),
                "arn:aws:iam::123:role/x".to_owned(),
            ),
            (
                "KINESYNC_KINESIS__ASSUME_ROLE_EXTERNAL_ID".to_owned(),
                "x".to_owned(),
            ),
        ]);
        let err = Config::from_toml_with_env(MINIMAL, &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "kinesis.assume_role_arn \"arn:aws:iam::123:role/x\" must be an IAM role ARN"
            ),
            "{err}"
        );
        assert!(
            err.contains("kinesis.assume_role_external_id must be 2 to 1224"),
            "{err}"
        );
        let env = BTreeMap::from([(
            "KINESYNC_KINESIS__ASSUME_ROLE_EXTERNAL_ID".to_owned(),
            "abc".to_owned(),
        )]);
        let err = Config::from_toml_with_env(MINIMAL, &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("set without kinesis.assume_role_arn"), "{err}");
        assert!(is_role_arn(
            "arn:aws-us-gov:iam::123456789012:role/path/name"
        ));
        assert!(!is_role_arn("arn:aws:iam::123456789012:user/name"));
    }

    #[test]
    fn password_is_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}
