//! `kinesync config`: the effective configuration, as TOML a user can copy
//! into a file (or as JSON for scripts), every value followed by where it
//! came from. The source URL's password is printed as `***`.

use serde_json::{json, Map, Value};

use super::{Loaded, Origin, SECTIONS};

/// The configuration as TOML, each line ending in `# <origin>`.
pub fn to_toml(loaded: &Loaded) -> String {
    let mut out = String::from(
        "# The effective configuration: each value, then where it came from\n\
         # (file, variable, flag or default). Secrets are shown as ***.\n",
    );
    let sections = sections(loaded);
    for section in SECTIONS {
        out.push('\n');
        match sections.get(*section).and_then(Value::as_object) {
            Some(keys) => {
                out.push_str(&format!("[{section}]\n"));
                for (key, value) in keys {
                    out.push_str(&toml_line(key, value, &loaded.origin(section, key)));
                }
            }
            None => out.push_str(&format!("# [{section}] is not configured\n")),
        }
    }
    out
}

fn toml_line(key: &str, value: &Value, origin: &Origin) -> String {
    match to_toml_value(value) {
        Some(v) => format!("{key} = {v}  # {origin}\n"),
        None => format!("# {key} is unset  # {origin}\n"),
    }
}

/// `{"section": {"key": {"value": ..., "origin": "file", "from": "..."}}}`.
pub fn to_json(loaded: &Loaded) -> Value {
    let sections = sections(loaded);
    let mut out = Map::new();
    for section in SECTIONS {
        let Some(keys) = sections.get(*section).and_then(Value::as_object) else {
            out.insert((*section).to_owned(), Value::Null);
            continue;
        };
        let entries = keys
            .iter()
            .map(|(key, value)| {
                let origin = loaded.origin(section, key);
                let mut entry = json!({ "value": value, "origin": origin.kind() });
                if let Some(from) = origin_from(&origin) {
                    entry["from"] = Value::String(from);
                }
                (key.clone(), entry)
            })
            .collect();
        out.insert((*section).to_owned(), Value::Object(entries));
    }
    Value::Object(out)
}

/// The file and line, variable or flag an origin names.
fn origin_from(origin: &Origin) -> Option<String> {
    match origin {
        Origin::Default => None,
        Origin::File { path, line } => Some(format!("{}:{line}", path.display())),
        Origin::Variable(name) | Origin::Flag(name) => Some(name.clone()),
    }
}

/// The configuration as JSON (serialization redacts the secrets).
fn sections(loaded: &Loaded) -> Map<String, Value> {
    match serde_json::to_value(&loaded.config) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// A JSON value as a TOML value; `None` for null (unset).
fn to_toml_value(value: &Value) -> Option<toml::Value> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(items) => toml::Value::Array(items.iter().filter_map(to_toml_value).collect()),
        Value::Object(map) => toml::Value::Table(
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), to_toml_value(v)?)))
                .collect(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{load_from, Override};
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    #[test]
    fn the_toml_shows_each_origin_and_hides_the_password_and_parses_back() {
        let text =
            "[source]\nurl = \"host=h password='hunter2' user=u\"\ntables = [\"public.a\"]\n";
        let env = BTreeMap::from([("KINESYNC_SOURCE__SLOT".to_owned(), "from_env".to_owned())]);
        let flags = [Override {
            flag: "--stream".into(),
            section: "kinesis".into(),
            key: "stream".into(),
            value: "\"from-flag\"".into(),
        }];
        let file = Some((PathBuf::from("base.toml"), text.to_owned()));
        let loaded = load_from(file, &env, &flags).unwrap();
        let shown = to_toml(&loaded);
        for needle in [
            "url = \"host=h password=*** user=u\"  # file base.toml line 2\n",
            "slot = \"from_env\"  # variable KINESYNC_SOURCE__SLOT\n",
            "stream = \"from-flag\"  # flag --stream\n",
            "publication = \"kinesync\"  # default\n",
            "# region is unset  # default\n",
            "# [redshift] is not configured\n",
        ] {
            assert!(shown.contains(needle), "{needle:?} not in:\n{shown}");
        }
        assert!(!shown.contains("hunter2"), "{shown}");
        let reparsed = super::super::Config::from_toml_with_env(&shown, &BTreeMap::new()).unwrap();
        assert_eq!(reparsed.source.slot, "from_env");
        let json = to_json(&loaded);
        assert_eq!(json["source"]["slot"]["origin"], "variable");
        assert_eq!(json["source"]["slot"]["from"], "KINESYNC_SOURCE__SLOT");
        assert_eq!(json["source"]["url"]["from"], "base.toml:2");
        assert_eq!(json["source"]["publication"]["origin"], "default");
        assert!(!json.to_string().contains("hunter2"));
    }
}
