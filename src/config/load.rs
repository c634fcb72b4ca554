//! Loading the configuration from its layers: the defaults, the file, the
//! `KINESYNC_<SECTION>__<KEY>` variables and the command-line flags, each
//! winning over the one before. Every value remembers where it came from
//! ([`Origin`]), so an error names the file line, the variable or the flag
//! that set it, and `kinesync config` can say where each value came from.
//!
//! A value from a variable or a flag is TOML (`10`, `true`, `["a", "b"]`);
//! anything that does not parse is a string, and for a list key a string
//! is a comma-separated list. Every type error is reported at once: the
//! loader takes the faulty key out and tries again until the rest fits.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::{describe_toml_error, Config, ConfigError};

/// The file read when `--config` and `KINESYNC_CONFIG` are both absent. If it
/// does not exist either, the environment must supply every required key.
pub const DEFAULT_CONFIG_FILE: &str = "kinesync.toml";

/// `KINESYNC_*` variables that are not configuration keys: the config file
/// variable, and the development tools' own (the local stack, the tests).
/// Any other `KINESYNC_*` variable that names no key gets a warning.
pub const NOT_CONFIG_VARIABLES: &[&str] = &[
    "KINESYNC_CONFIG",
    "KINESYNC_LOCAL_",
    "KINESYNC_TEST_",
    "KINESYNC_E2E_",
    "KINESYNC_STACK_DIR",
    "KINESYNC_TOOLS_DIR",
    "KINESYNC_FAULT_SEED",
    "KINESYNC_REPLAY_SEED",
    "KINESYNC_UPDATE_GOLDEN",
];

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default (no layer set it).
    Default,
    /// The config file, at this line.
    File { path: PathBuf, line: usize },
    /// An environment variable.
    Variable(String),
    /// A command-line flag, e.g. `--set kinesis.stream` or `--tables`.
    Flag(String),
}

impl Origin {
    /// `default`, `file`, `variable` or `flag`.
    pub fn kind(&self) -> &'static str {
        match self {
            Origin::Default => "default",
            Origin::File { .. } => "file",
            Origin::Variable(_) => "variable",
            Origin::Flag(_) => "flag",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "default"),
            Origin::File { path, line } => write!(f, "file {} line {line}", path.display()),
            Origin::Variable(name) => write!(f, "variable {name}"),
            Origin::Flag(name) => write!(f, "flag {name}"),
        }
    }
}

/// One value a command-line flag sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The flag as the user wrote it, e.g. `--set kinesis.stream` or `--tables`.
    pub flag: String,
    pub section: String,
    pub key: String,
    /// TOML text (plain text is a string).
    pub value: String,
}

/// A loaded configuration with the origin of every value that was set.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// `section.key` -> where it was set; absent keys are defaults.
    pub origins: BTreeMap<String, Origin>,
}

impl Loaded {
    /// Where `section.key` came from.
    pub fn origin(&self, section: &str, key: &str) -> Origin {
        self.origins
            .get(&format!("{section}.{key}"))
            .cloned()
            .unwrap_or(Origin::Default)
    }
}

/// The layered document under construction.
struct Layers {
    doc: toml::Table,
    origins: BTreeMap<String, Origin>,
    /// The file's text, for error positions.
    file: Option<(PathBuf, String)>,
}

/// Loads `file` (or [`DEFAULT_CONFIG_FILE`] if it exists), then `env`, then
/// `overrides`, and validates.
pub fn load(
    file: Option<&Path>,
    env: &BTreeMap<String, String>,
    overrides: &[Override],
) -> Result<Loaded, ConfigError> {
    load_from(read_file(file)?, env, overrides)
}

/// Like [`load`], with the file's path and text already read.
pub fn load_from(
    file: Option<(PathBuf, String)>,
    env: &BTreeMap<String, String>,
    overrides: &[Override],
) -> Result<Loaded, ConfigError> {
    let mut layers = Layers::from_file(file)?;
    let mut problems = Vec::new();
    for (name, raw) in env {
        if let Some((section, key)) = variable_key(name) {
            layers.set(
                &section,
                &key,
                raw,
                Origin::Variable(name.clone()),
                &mut problems,
            );
        }
    }
    for o in overrides {
        let origin = Origin::Flag(o.flag.clone());
        layers.set(&o.section, &o.key, &o.value, origin, &mut problems);
    }
    let config = layers.deserialize(&mut problems);
    let config = match config {
        Some(config) if problems.is_empty() => config,
        _ => return Err(ConfigError::Invalid(problems)),
    };
    config.validate()?;
    Ok(Loaded {
        config,
        origins: layers.origins,
    })
}

/// The file's path and text: the given one (which must exist), else the
/// default file if there is one.
fn read_file(file: Option<&Path>) -> Result<Option<(PathBuf, String)>, ConfigError> {
    let (path, required) = match file {
        Some(path) => (path.to_owned(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some((path, text))),
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

/// `KINESYNC_SOURCE__URL` -> (`source`, `url`).
fn variable_key(name: &str) -> Option<(String, String)> {
    let (section, key) = name.strip_prefix("KINESYNC_")?.split_once("__")?;
    Some((section.to_ascii_lowercase(), key.to_ascii_lowercase()))
}

/// One warning per `KINESYNC_*` variable that is neither a key nor listed
/// in [`NOT_CONFIG_VARIABLES`] (the binary logs them before loading, so
/// they show even when the load fails, often because of them).
pub fn stray_variables(env: &BTreeMap<String, String>) -> Vec<String> {
    env.keys()
        .filter(|name| name.starts_with("KINESYNC_") && variable_key(name).is_none())
        .filter(|name| !NOT_CONFIG_VARIABLES.iter().any(|p| name.starts_with(p)))
        .map(|name| {
            let hint = match name["KINESYNC_".len()..].split_once('_') {
                Some((section, key)) if super::SECTIONS.contains(&section.to_ascii_lowercase().as_str()) => {
                    format!(": did you mean KINESYNC_{section}__{key} (two underscores between section and key)?")
                }
                _ => " (configuration variables are KINESYNC_<SECTION>__<KEY>, e.g. KINESYNC_SOURCE__URL)".to_owned(),
            };
            format!("environment variable {name} names no configuration key and is ignored{hint}")
        })
        .collect()
}

impl Layers {
    fn from_file(file: Option<(PathBuf, String)>) -> Result<Layers, ConfigError> {
        let mut layers = Layers {
            doc: toml::Table::new(),
            origins: BTreeMap::new(),
            file: None,
        };
        let Some((path, text)) = file else {
            return Ok(layers);
        };
        layers.doc = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: path.clone(),
                message: describe_toml_error(&text, e.message(), e.span()),
            })?;
        for (section, value) in &layers.doc {
            let Some(table) = value.as_table() else {
                continue;
            };
            for key in table.keys() {
                let line = line_of(&text, section, key).unwrap_or(0);
                let origin = Origin::File {
                    path: path.clone(),
                    line,
                };
                layers.origins.insert(format!("{section}.{key}"), origin);
            }
        }
        layers.file = Some((path, text));
        Ok(layers)
    }

    /// Sets `section.key` from a variable or flag.
    fn set(
        &mut self,
        section: &str,
        key: &str,
        raw: &str,
        origin: Origin,
        problems: &mut Vec<String>,
    ) {
        let entry = self
            .doc
            .entry(section.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(table) => {
                table.insert(key.to_owned(), parse_value(raw));
                self.origins.insert(format!("{section}.{key}"), origin);
            }
            _ => problems.push(format!("{origin}: [{section}] is not a section")),
        }
    }

    /// The typed configuration, or `None` with every problem in `problems`:
    /// each faulty key is reported and taken out, and the rest tried again.
    fn deserialize(&mut self, problems: &mut Vec<String>) -> Option<Config> {
        let mut removed = Vec::new();
        for _ in 0..100 {
            let error = match toml::Value::Table(self.doc.clone()).try_into::<Config>() {
                Ok(config) => return Some(config),
                Err(error) => error,
            };
            let mut path = error_path(&error);
            if self.retry_as_list(&path, error.message()) {
                continue;
            }
            if let Some((field, _)) = super::unknown_field(error.message()) {
                path.push(field);
            }
            match self.describe(&path, error.message(), &removed) {
                Some(problem) => problems.push(problem),
                // A required key taken out for its own error.
                None => return None,
            }
            if !self.remove(&path) {
                return None;
            }
            removed.push(path);
        }
        None
    }

    /// A list key given a string from a variable or flag: split it on commas.
    fn retry_as_list(&mut self, path: &[String], message: &str) -> bool {
        let [section, key] = path else {
            return false;
        };
        if !message.ends_with("expected a sequence")
            || matches!(self.origin(section, key), Origin::File { .. })
        {
            return false;
        }
        let Some(value) = self.doc.get_mut(section).and_then(|s| s.get_mut(key)) else {
            return false;
        };
        let Some(text) = value.as_str() else {
            return false;
        };
        let items = text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| toml::Value::String(t.to_owned()))
            .collect();
        *value = toml::Value::Array(items);
        true
    }

    fn origin(&self, section: &str, key: &str) -> Origin {
        self.origins
            .get(&format!("{section}.{key}"))
            .cloned()
            .unwrap_or(Origin::Default)
    }

    /// One line for an error at `path`: the key and where it was set.
    /// `None` for a required key that was taken out for its own error.
    fn describe(&self, path: &[String], message: &str, removed: &[Vec<String>]) -> Option<String> {
        let message = one_line(message);
        if let Some(field) = missing_field(&message) {
            let mut full = path.to_vec();
            full.push(field.clone());
            if removed.contains(&full) || removed.iter().any(|r| r.as_slice() == path) {
                return None;
            }
            return Some(self.describe_missing(path, &field));
        }
        let origin = match path {
            [section, key] => self.origin(section, key),
            [section] => self.section_origin(section),
            _ => Origin::Default,
        };
        let text = self.file.as_ref().map_or("", |(_, t)| t.as_str());
        Some(match (&origin, super::unknown_field(&message)) {
            (Origin::File { path: file, .. }, _) => format!(
                "config file {}: {}",
                file.display(),
                describe_toml_error(text, &message, file_span(text, path))
            ),
            (_, Some((field, known))) => {
                format!("{origin}: {}", describe_unknown(path, &field, &known))
            }
            _ => format!("{origin}: {}: {message}", path.join(".")),
        })
    }

    /// A required key or section nobody set, and how to set it.
    fn describe_missing(&self, path: &[String], field: &str) -> String {
        let place = match &self.file {
            Some((file, _)) => format!("in config file {}", file.display()),
            None => {
                format!("no config file ({DEFAULT_CONFIG_FILE} not found; pass --config <file>)")
            }
        };
        let upper = field.to_ascii_uppercase();
        if path.is_empty() {
            return format!(
                "missing section [{field}] ({place}): write it, or set its keys as KINESYNC_{upper}__<KEY>"
            );
        }
        let section = path.join(".");
        let variable = format!("KINESYNC_{}__{upper}", section.to_ascii_uppercase());
        format!("missing field `{field}` in [{section}] ({place}): set {section}.{field}, or {variable}")
    }

    /// Where a whole section came from: its first key's origin.
    fn section_origin(&self, section: &str) -> Origin {
        self.origins
            .iter()
            .find(|(k, _)| k.split('.').next() == Some(section))
            .map(|(_, o)| o.clone())
            .unwrap_or(Origin::Default)
    }

    /// Takes `path` out of the document; false if it was not there.
    fn remove(&mut self, path: &[String]) -> bool {
        match path {
            [section, key] => self
                .doc
                .get_mut(section)
                .and_then(toml::Value::as_table_mut)
                .and_then(|t| t.remove(key))
                .is_some(),
            [section] => self.doc.remove(section).is_some(),
            _ => false,
        }
    }
}

/// An unknown key (or section, at the top) set by a variable or flag, with
/// the nearest known name.
fn describe_unknown(path: &[String], field: &str, known: &[String]) -> String {
    let what = match path {
        [section, _] => format!("unknown key {section}.{field}"),
        _ => format!("unknown section [{field}]"),
    };
    let hint = match super::closest(field, known) {
        Some(best) => format!(": did you mean `{best}`?"),
        None => String::new(),
    };
    let known: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
    format!("{what}{hint} (known: {})", known.join(", "))
}

/// The key path a deserialization error is at (`in `a.b`` in its text).
fn error_path(error: &toml::de::Error) -> Vec<String> {
    let text = error.to_string();
    let path = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("in `")?.strip_suffix('`'))
        .unwrap_or_default();
    path.split('.')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `missing field `x`` -> `x`.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

/// The span of `section.key`'s line in the file (or the section header).
fn file_span(text: &str, path: &[String]) -> Option<std::ops::Range<usize>> {
    let line = match path {
        [section, key] => line_of(text, section, key),
        [section] => header_line(text, section),
        _ => None,
    }?;
    let start: usize = text
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum();
    Some(start..start)
}

/// The 1-based line of `section.key` in the file, if it is written there.
pub(super) fn line_of(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            current = header
                .split(']')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
        } else if current == section && line.split('=').next().map(str::trim) == Some(key) {
            return Some(i + 1);
        }
    }
    None
}

fn header_line(text: &str, section: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.trim()
                .strip_prefix('[')
                .and_then(|h| h.split(']').next())
                .map(str::trim)
                == Some(section)
        })
        .map(|i| i + 1)
}

/// A variable's or flag's value: TOML if it parses, else a string.
fn parse_value(raw: &str) -> toml::Value {
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.a\"]\n";

    fn load_text(text: &str, env: &[(&str, &str)], flags: &[Override]) -> Result<Loaded, String> {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let file = Some((PathBuf::from("base.toml"), text.to_owned()));
        load_from(file, &env, flags).map_err(|e| e.to_string())
    }

    fn flag(flag: &str, section: &str, key: &str, value: &str) -> Override {
        Override {
            flag: flag.to_owned(),
            section: section.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
        }
    }

    #[test]
    fn every_type_error_is_reported_naming_the_variable_flag_or_line() {
        let text = format!("{FILE}heartbeat_interval_secs = \"often\"\n");
        let err = load_text(
            &text,
            &[("KINESYNC_SOURCE__SNAPSHOT", "bogus")],
            &[flag(
                "--set kinesis.max_records_per_request",
                "kinesis",
                "max_records_per_request",
                "many",
            )],
        )
        .unwrap_err();
        for needle in [
            "variable KINESYNC_SOURCE__SNAPSHOT: source.snapshot: unknown variant `bogus`",
            "flag --set kinesis.max_records_per_request: kinesis.max_records_per_request: invalid type: string \"many\"",
            "line 4: source.heartbeat_interval_secs: invalid type: string \"often\"",
        ] {
            assert!(err.contains(needle), "{needle} not in {err}");
        }
        assert!(!err.contains("is not valid"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn a_list_key_takes_a_comma_list_from_a_variable_or_flag() {
        let loaded = load_text(
            FILE,
            &[("KINESYNC_SOURCE__TABLES", "public.a, public.b")],
            &[],
        )
        .unwrap();
        assert_eq!(loaded.config.source.tables, ["public.a", "public.b"]);
        assert_eq!(
            loaded.origin("source", "tables"),
            Origin::Variable("KINESYNC_SOURCE__TABLES".into())
        );
        assert!(matches!(
            loaded.origin("source", "url"),
            Origin::File { line: 2, .. }
        ));
        assert_eq!(loaded.origin("source", "slot"), Origin::Default);
    }

    #[test]
    fn the_environment_alone_is_enough_without_a_file() {
        let env = BTreeMap::from([
            (
                "KINESYNC_SOURCE__URL".to_owned(),
                "postgres://u@h/db".to_owned(),
            ),
            ("KINESYNC_SOURCE__TABLES".to_owned(), "public.a".to_owned()),
        ]);
        let loaded = load_from(None, &env, &[]).unwrap();
        assert_eq!(loaded.config.source.tables, ["public.a"]);
        let err = load_from(None, &BTreeMap::new(), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing section [source] (no config file (kinesync.toml not found"),
            "{err}"
        );
    }

    #[test]
    fn a_variable_that_names_no_key_is_warned_about() {
        let env = BTreeMap::from([
            ("KINESYNC_SOURCE_SLOT".to_owned(), "x".to_owned()),
            ("KINESYNC_TEST_PG_URL".to_owned(), "y".to_owned()),
            ("KINESYNC_SOURCE__SLOT".to_owned(), "y".to_owned()),
        ]);
        let warnings = stray_variables(&env);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("did you mean KINESYNC_SOURCE__SLOT"),
            "{warnings:?}"
        );
    }
}
