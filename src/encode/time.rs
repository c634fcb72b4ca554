//! Timestamps: PostgreSQL's text output (under `DateStyle=ISO`) to
//! ISO-8601 with six fraction digits; `timestamptz` in UTC with `Z`.
//!
//! kinesync's sessions run with `TimeZone=UTC`, so a timestamptz already
//! arrives as UTC (`+00`): only the separator and the fraction change, and
//! [`Stamp::Iso`] borrows the pieces from the text. Another offset (a
//! session someone else configured) is converted with chrono, the rare
//! path. Infinities, BC values and anything unparsable keep their text.

use super::json::{push_json_str_body, write_json_str};

/// What the text of a timestamp becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamp<'a> {
    /// ISO-8601, from pieces of the text.
    Iso(Iso<'a>),
    /// A timestamptz at another offset, converted to UTC.
    Converted(String),
    /// Unchanged text.
    Text,
}

/// `{date}T{hms}.{frac, six digits}` (+ `Z` when `utc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iso<'a> {
    date: &'a str,
    hms: &'a str,
    frac: &'a str,
    utc: bool,
}

impl Iso<'_> {
    /// Append the ISO text; its date JSON-escaped when `escaped` (the
    /// clock part is digits, `:` and `.` only).
    fn push(&self, out: &mut Vec<u8>, escaped: bool) {
        if escaped {
            push_json_str_body(out, self.date);
        } else {
            out.extend_from_slice(self.date.as_bytes());
        }
        out.push(b'T');
        out.extend_from_slice(self.hms.as_bytes());
        out.push(b'.');
        let frac = self.frac.as_bytes();
        out.extend_from_slice(&frac[..frac.len().min(6)]);
        for _ in frac.len()..6 {
            out.push(b'0');
        }
        if self.utc {
            out.push(b'Z');
        }
    }
}

impl Stamp<'_> {
    /// Append the JSON string of the value whose text was `text`.
    pub fn write(&self, out: &mut Vec<u8>, text: &str) {
        match self {
            Stamp::Iso(iso) => {
                out.push(b'"');
                iso.push(out, true);
                out.push(b'"');
            }
            Stamp::Converted(s) => write_json_str(out, s),
            Stamp::Text => write_json_str(out, text),
        }
    }

    /// The value as a string (for the `serde_json::Value` path).
    pub fn into_string(self, text: &str) -> String {
        match self {
            Stamp::Iso(iso) => {
                let mut out = Vec::with_capacity(28);
                iso.push(&mut out, false);
                String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
            }
            Stamp::Converted(s) => s,
            Stamp::Text => text.to_owned(),
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS[.f]` -> `YYYY-MM-DDTHH:MM:SS.ffffff`.
pub fn timestamp(text: &str) -> Stamp<'_> {
    if text.ends_with(" BC") {
        return Stamp::Text;
    }
    match text.split_once(' ') {
        Some((date, time)) if is_clock(time) => iso(date, time, false),
        _ => Stamp::Text,
    }
}

/// `YYYY-MM-DD HH:MM:SS[.f]±HH[:MM[:SS]]` -> UTC `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn timestamptz(text: &str) -> Stamp<'_> {
    if text.ends_with(" BC") {
        return Stamp::Text;
    }
    if let Some((date, rest)) = text.split_once(' ') {
        if let Some(time) = rest.strip_suffix("+00") {
            if date.len() == 10 && is_clock(time) {
                return iso(date, time, true);
            }
        }
    }
    convert_timestamptz(text).map_or(Stamp::Text, Stamp::Converted)
}

fn iso<'a>(date: &'a str, time: &'a str, utc: bool) -> Stamp<'a> {
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    Stamp::Iso(Iso {
        date,
        hms,
        frac,
        utc,
    })
}

/// [`timestamp`] as a string.
pub fn encode_timestamp(text: &str) -> String {
    timestamp(text).into_string(text)
}

/// [`timestamptz`] as a string.
pub fn encode_timestamptz(text: &str) -> String {
    timestamptz(text).into_string(text)
}

/// `HH:MM:SS[.f]` with nothing after.
fn is_clock(time: &str) -> bool {
    let b = time.as_bytes();
    b.len() >= 8
        && b[2] == b':'
        && b[5] == b':'
        && time
            .bytes()
            .all(|c| c.is_ascii_digit() || c == b':' || c == b'.')
}

fn convert_timestamptz(text: &str) -> Option<String> {
    use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime};
    let (date, rest) = text.split_once(' ')?;
    let sign_at = rest.find(['+', '-'])?;
    let (time, offset) = rest.split_at(sign_at);
    if !is_clock(time) {
        return None;
    }
    let sign: i64 = if offset.starts_with('-') { -1 } else { 1 };
    let mut offset_secs = 0i64;
    for (i, part) in offset[1..].split(':').enumerate() {
        if i > 2 || part.len() != 2 {
            return None;
        }
        offset_secs += part.parse::<i64>().ok()? * [3600, 60, 1][i];
    }
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let hms = NaiveTime::parse_from_str(hms, "%H:%M:%S").ok()?;
    let micros: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}")[..6].parse().ok()?
    };
    let local = NaiveDateTime::new(date, hms) + chrono::Duration::microseconds(micros);
    let utc = local - chrono::Duration::seconds(sign * offset_secs);
    if !(1..=9999).contains(&utc.year()) {
        return None;
    }
    Some(utc.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}
