//! The kinesync configuration: one TOML file shared by `produce`, `setup` and
//! `merge`, every key overridable by `KINESYNC_<SECTION>__<KEY>`.
//!
//! This module owns the typed shape of the file, the defaults (as named
//! constants, so docs and code cite the same number), and validation that
//! reports *every* problem at once, each naming the key and what is accepted.
//! Nothing here talks to a network.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod checks;
mod kinesis;
mod load;
mod redshift;
mod schedule;
pub mod show;
mod source;
mod telemetry;
mod toml_error;

pub use kinesis::*;
pub use load::{load, load_from, stray_variables, Loaded, Origin, Override, DEFAULT_CONFIG_FILE};
pub use redshift::*;
pub use schedule::*;
pub use source::*;
pub use telemetry::*;
use toml_error::{closest, describe_toml_error, unknown_field};

/// The sections of the file, in the order `kinesync config` prints them.
pub const SECTIONS: &[&str] = &["source", "kinesis", "redshift", "schedule", "telemetry"];

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

#[cfg(test)]
mod tests {
    use super::checks::is_role_arn;
    use super::toml_error::edit_distance;
    use super::*;
    use crate::postgres::redact_url;

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
