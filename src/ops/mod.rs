//! Operating commands: `check` (is every prerequisite in place?), `status`
//! (how far behind is the pipeline?), `verify` (is each mirror equal to
//! its source?) and `teardown` (remove the pipeline).
//!
//! All but `teardown` only read: the source catalog and slot, the Kinesis stream's
//! description (plus one probe record, see [`check`]), and Redshift's
//! catalog, checkpoint and tables through the Data API. Each answers with a
//! report that prints as text for people and serializes as JSON for
//! scripts, and decides the process's exit code.

pub mod check;
pub mod resync;
pub mod status;
pub mod teardown;
pub mod verify;

use std::fmt;

use serde::Serialize;

/// Which part of the pipeline a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Source,
    Kinesis,
    Redshift,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Part::Source => "source",
            Part::Kinesis => "kinesis",
            Part::Redshift => "redshift",
        })
    }
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// In place.
    Ok,
    /// Works, but deserves attention (the fix says what to do).
    Warn,
    /// Missing: the pipeline will not run until it is fixed.
    Fail,
    /// Not checked because an earlier check failed, or not asked for.
    Skipped,
    /// Not there yet, and `kinesync setup` (the fix) creates it: not a failure.
    Todo,
}

/// One checked prerequisite.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub part: Part,
    /// What was checked, e.g. `wal_level`, `table public.orders`.
    pub check: String,
    pub outcome: Outcome,
    /// What was found.
    pub detail: String,
    /// The exact fix (a statement, a setting, an IAM action), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(part: Part, check: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            part,
            check: check.into(),
            outcome: Outcome::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn warn(
        part: Part,
        check: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding::ok(part, check, detail).needing(Outcome::Warn, fix)
    }

    pub fn fail(
        part: Part,
        check: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding::ok(part, check, detail).needing(Outcome::Fail, fix)
    }

    fn needing(self, outcome: Outcome, fix: impl Into<String>) -> Finding {
        Finding {
            outcome,
            fix: Some(fix.into()),
            ..self
        }
    }

    /// An object a later step creates (the fix says which), e.g. `setup`.
    pub fn todo(
        part: Part,
        check: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding::ok(part, check, detail).needing(Outcome::Todo, fix)
    }

    pub fn skipped(part: Part, check: impl Into<String>, reason: impl Into<String>) -> Finding {
        Finding {
            outcome: Outcome::Skipped,
            ..Finding::ok(part, check, reason)
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.outcome {
            Outcome::Ok => "ok  ",
            Outcome::Warn => "WARN",
            Outcome::Fail => "FAIL",
            Outcome::Skipped => "skip",
            Outcome::Todo => "todo",
        };
        write!(
            f,
            "{label}  {:<8}  {}: {}",
            self.part, self.check, self.detail
        )?;
        if let Some(fix) = &self.fix {
            write!(f, "\n                fix: {fix}")?;
        }
        Ok(())
    }
}

pub(crate) use crate::scheduler::checkpoint::seconds_between;

/// `3725` -> `1h 2m 5s`.
pub(crate) fn human_duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(65), "1m 5s");
        assert_eq!(human_duration(3725), "1h 2m 5s");
    }

    #[test]
    fn redshift_timestamps_subtract_with_or_without_fractions() {
        assert_eq!(
            seconds_between("2026-01-01 00:00:00", "2026-01-01 01:00:00.5"),
            Some(3600)
        );
        assert_eq!(seconds_between("garbage", "2026-01-01 01:00:00"), None);
    }

    #[test]
    fn a_failure_prints_its_fix_on_the_next_line() {
        let f = Finding::fail(Part::Source, "wal_level", "replica", "ALTER SYSTEM ...");
        assert_eq!(
            f.to_string(),
            "FAIL  source    wal_level: replica\n                fix: ALTER SYSTEM ..."
        );
    }
}
