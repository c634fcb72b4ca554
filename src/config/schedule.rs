//! `[schedule]`: when the merge daemon runs, its default and its
//! validation.

use serde::{Deserialize, Serialize};

pub const DEFAULT_MERGE_SCHEDULE: &str = "0 */5 * * * *";
/// A tick whose stream received nothing since the last run skips Redshift.
pub const DEFAULT_SKIP_IDLE: bool = true;
/// Even when idle, run at least this often (seconds): keeps the last refresh
/// well inside any stream retention, so an idle stretch never reads as loss.
pub const DEFAULT_MAX_IDLE_SECS: u64 = 6 * 3600;
/// The shortest `max_idle_secs` accepted.
pub const MIN_MAX_IDLE_SECS: u64 = 60;

/// `[schedule]`: when the merge daemon runs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Cron expression with a seconds field, e.g. `0 */5 * * * *`.
    #[serde(default = "default_merge_schedule")]
    pub merge: String,
    /// Ask Kinesis, before each tick's run, whether any record arrived since
    /// the previous run; skip Redshift entirely when none did.
    #[serde(default = "default_skip_idle")]
    pub skip_idle: bool,
    /// With `skip_idle`, still run when the last run is older than this.
    #[serde(default = "default_max_idle_secs")]
    pub max_idle_secs: u64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            merge: default_merge_schedule(),
            skip_idle: DEFAULT_SKIP_IDLE,
            max_idle_secs: DEFAULT_MAX_IDLE_SECS,
        }
    }
}

fn default_merge_schedule() -> String {
    DEFAULT_MERGE_SCHEDULE.to_owned()
}

fn default_skip_idle() -> bool {
    DEFAULT_SKIP_IDLE
}

fn default_max_idle_secs() -> u64 {
    DEFAULT_MAX_IDLE_SECS
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
        if self.max_idle_secs < MIN_MAX_IDLE_SECS {
            problems.push(format!(
                "schedule.max_idle_secs = {} is too short: use at least {MIN_MAX_IDLE_SECS} (seconds), or schedule.skip_idle = false",
                self.max_idle_secs
            ));
        }
        problems
    }
}
