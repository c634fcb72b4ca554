//! `[schedule]`: when the merge daemon runs, its default and its
//! validation.

use serde::{Deserialize, Serialize};

pub const DEFAULT_MERGE_SCHEDULE: &str = "0 */5 * * * *";

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

fn default_merge_schedule() -> String {
    DEFAULT_MERGE_SCHEDULE.to_owned()
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
