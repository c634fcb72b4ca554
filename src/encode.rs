//! Column value encodings: Postgres text output -> JSON, by type OID.
//!
//! The merge SQL reads these values directly, so the mapping is a contract
//! (see `docs/events.md`): integers are numbers, numeric is an exact decimal
//! string, floats are numbers except NaN/Infinity (strings), timestamps are
//! ISO-8601 with six fraction digits (timestamptz in UTC with `Z`), bytea is
//! lower-case hex without `\x`, json/jsonb are nested, arrays are JSON arrays
//! of their elements' encodings; anything else is its text form.
//!
//! Inputs are the server's text output under the session settings kinesync
//! pins on every connection ([`SESSION_SETTINGS`]): the same encoder serves
//! pgoutput tuples and snapshot `COPY` rows.

use serde_json::Value;

use crate::source::pgoutput::TupleValue;

/// The placeholder for a TOASTed value an update did not change (Debezium's).
pub const UNAVAILABLE_VALUE: &str = "__debezium_unavailable_value";

pub use crate::postgres::SESSION_SETTINGS;

/// Built-in type OIDs (pg_type.h).
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// The element type of a built-in array type, if we know it.
pub fn array_element(type_oid: u32) -> Option<u32> {
    Some(match type_oid {
        1000 => oid::BOOL,
        1001 => oid::BYTEA,
        1002 => oid::CHAR,
        1003 => oid::NAME,
        1005 => oid::INT2,
        1007 => oid::INT4,
        1009 => oid::TEXT,
        1014 => oid::BPCHAR,
        1015 => oid::VARCHAR,
        1016 => oid::INT8,
        1021 => oid::FLOAT4,
        1022 => oid::FLOAT8,
        1028 => oid::OID,
        1115 => oid::TIMESTAMP,
        1182 => oid::DATE,
        1183 => oid::TIME,
        1185 => oid::TIMESTAMPTZ,
        1187 => oid::INTERVAL,
        1231 => oid::NUMERIC,
        1270 => oid::TIMETZ,
        199 => oid::JSON,
        2951 => oid::UUID,
        3807 => oid::JSONB,
        _ => return None,
    })
}

/// Encode one tuple value of a column of type `type_oid`.
pub fn encode_tuple_value(type_oid: u32, value: &TupleValue) -> Value {
    encode_tuple_value_noted(type_oid, value).0
}

/// [`encode_tuple_value`] and the documented conversion it applied, if any.
pub fn encode_tuple_value_noted(type_oid: u32, value: &TupleValue) -> (Value, Option<Conversion>) {
    match value {
        TupleValue::Null => (Value::Null, None),
        TupleValue::UnchangedToast => (Value::String(UNAVAILABLE_VALUE.to_owned()), None),
        TupleValue::Text(bytes) => encode_text_noted(type_oid, &String::from_utf8_lossy(bytes)),
        // kinesync never asks for binary; if it ever arrives, keep it readable.
        TupleValue::Binary(bytes) => (Value::String(hex::encode(bytes)), None),
    }
}

/// Redshift's limit for one string inside a SUPER value (and for VARCHAR):
/// JSON_PARSE fails on a longer string, and that error fails every refresh
/// of the streaming view. Longer strings are cut to this many bytes.
pub const MAX_STRING_BYTES: usize = 65_535;

/// A documented conversion (docs/events.md, "Conversions") applied to a
/// value on its way into the event, so that Redshift can ingest it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Conversion {
    /// A string longer than [`MAX_STRING_BYTES`] was cut.
    StringCut,
    /// A number Redshift's SUPER cannot hold exactly (see
    /// [`redshift_holds_number`]) was sent as a string of its exact digits.
    NumberAsString,
    /// A json value serde_json cannot parse (nested over 128 levels, or a
    /// json escape of a lone surrogate) was sent as a string holding its text.
    JsonAsText,
}

impl Conversion {
    /// The metric label and log field.
    pub fn as_str(self) -> &'static str {
        match self {
            Conversion::StringCut => "string_cut",
            Conversion::NumberAsString => "number_as_string",
            Conversion::JsonAsText => "json_as_text",
        }
    }

    /// What happened, for the warning.
    pub fn describe(self) -> &'static str {
        match self {
            Conversion::StringCut => "a string longer than 65,535 bytes (Redshift's SUPER/VARCHAR limit) was truncated to 65,535 bytes",
            Conversion::NumberAsString => "a number Redshift cannot hold exactly (over 38 digits, scale over 37, or beyond DOUBLE's range) was sent as a JSON string of its exact digits",
            Conversion::JsonAsText => "a json value that cannot be parsed (nested deeper than 128 levels, or a lone surrogate escape) was sent as a JSON string holding its text",
        }
    }
}

/// Encode the text output `text` of a value of type `type_oid`, with every
/// string (also inside json and arrays) at most [`MAX_STRING_BYTES`] long.
pub fn encode_text(type_oid: u32, text: &str) -> Value {
    encode_text_noted(type_oid, text).0
}

/// [`encode_text`], also saying which documented conversion (if any) the
/// value went through, so the caller can report it with the table, column
/// and row key.
pub fn encode_text_noted(type_oid: u32, text: &str) -> (Value, Option<Conversion>) {
    let mut note = None;
    let value = encode_bounded(type_oid, text, &mut note);
    (value, note)
}

fn encode_bounded(type_oid: u32, text: &str, note: &mut Option<Conversion>) -> Value {
    let mut value = encode_text_unbounded(type_oid, text, note);
    // A decoded string is never longer than the text it came from.
    if text.len() > MAX_STRING_BYTES && truncate_long_strings(&mut value) {
        *note = Some(Conversion::StringCut);
    }
    value
}

/// Cuts every string in `value` longer than [`MAX_STRING_BYTES`] at the last
/// UTF-8 character boundary within the limit. Returns whether any was cut.
pub fn truncate_long_strings(value: &mut Value) -> bool {
    rewrite_scalars(value, &mut |v| match v {
        Value::String(s) if s.len() > MAX_STRING_BYTES => {
            let mut end = MAX_STRING_BYTES;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            true
        }
        _ => false,
    })
}

/// Applies `rewrite` to every scalar of `value` (inside arrays and objects
/// too). Returns whether `rewrite` changed any (it returns true when it did).
fn rewrite_scalars(value: &mut Value, rewrite: &mut impl FnMut(&mut Value) -> bool) -> bool {
    match value {
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |hit, v| rewrite_scalars(v, rewrite) | hit),
        Value::Object(map) => map
            .values_mut()
            .fold(false, |hit, v| rewrite_scalars(v, rewrite) | hit),
        scalar => rewrite(scalar),
    }
}

fn encode_text_unbounded(type_oid: u32, text: &str, note: &mut Option<Conversion>) -> Value {
    match type_oid {
        oid::INT2 | oid::INT4 | oid::INT8 => match text.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::String(text.to_owned()),
        },
        oid::OID => match text.parse::<u64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::String(text.to_owned()),
        },
        oid::FLOAT4 | oid::FLOAT8 => encode_float(text, note),
        oid::BOOL => match text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            other => Value::String(other.to_owned()),
        },
        oid::BYTEA => Value::String(text.strip_prefix("\\x").unwrap_or(text).to_owned()),
        oid::JSON | oid::JSONB => encode_json(text, note),
        oid::TIMESTAMP => Value::String(encode_timestamp(text)),
        oid::TIMESTAMPTZ => Value::String(encode_timestamptz(text)),
        // numeric (exact decimal text, NaN/Infinity included), text types,
        // date, time, timetz, interval, uuid, enums and everything else.
        _ => match array_element(type_oid) {
            Some(element) => match parse_array(text) {
                Some(array) => array_to_json(element, array, note),
                None => Value::String(text.to_owned()),
            },
            None => Value::String(text.to_owned()),
        },
    }
}

/// json/jsonb text -> the same JSON, numbers digit for digit and keys in
/// PostgreSQL's order (serde_json's `arbitrary_precision` and
/// `preserve_order`). A json (not jsonb) object with a repeated key keeps
/// the last value, as PostgreSQL's json operators and jsonb do.
fn encode_json(text: &str, note: &mut Option<Conversion>) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(mut value) => {
            if unheld_numbers_to_strings(&mut value) {
                *note = Some(Conversion::NumberAsString);
            }
            value
        }
        Err(_) => {
            *note = Some(Conversion::JsonAsText);
            Value::String(text.to_owned())
        }
    }
}

/// Replaces every number in `value` that Redshift cannot hold exactly by a
/// string of its digits. Returns whether any was replaced.
fn unheld_numbers_to_strings(value: &mut Value) -> bool {
    rewrite_scalars(value, &mut |v| match v {
        Value::Number(n) if !redshift_holds_number(n.as_str()) => {
            *v = Value::String(n.as_str().to_owned());
            true
        }
        _ => false,
    })
}

/// Whether Redshift can hold the JSON number `lexeme` exactly in SUPER,
/// under either reading of its documentation: as a DECIMAL (at most 38
/// digits, scale at most 37, r_Numeric_types201) or as a DOUBLE PRECISION
/// that prints back the same digits (at most 15 significant digits, which
/// every double keeps, and within 1E-307..1E+308). Zero always fits.
pub fn redshift_holds_number(lexeme: &str) -> bool {
    let unsigned = lexeme.strip_prefix('-').unwrap_or(lexeme);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], &unsigned[at + 1..]),
        None => (unsigned, "0"),
    };
    let Ok(exponent) = exponent.parse::<i64>() else {
        return false;
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = int.bytes().chain(frac.bytes());
    let leading = all.clone().take_while(|&b| b == b'0').count();
    let total = int.len() + frac.len();
    if leading == total {
        return true;
    }
    let trailing = frac
        .bytes()
        .rev()
        .chain(int.bytes().rev())
        .take_while(|&b| b == b'0')
        .count();
    let digits = (total - leading - trailing) as i64;
    // value = digits (an integer) x 10^power
    let power = exponent.saturating_sub(frac.len() as i64) + trailing as i64;
    let scale = (-power).max(0);
    let int_digits = (digits + power).max(0);
    let as_decimal = scale <= 37 && int_digits.saturating_add(scale) <= 38;
    let magnitude = digits.saturating_add(power) - 1;
    let as_double = digits <= 15
        && (-307..=308).contains(&magnitude)
        && (magnitude < 308 || lexeme.parse::<f64>().is_ok_and(|f| f.abs() <= 1e308));
    as_decimal || as_double
}

/// Floats are numbers; NaN, the infinities and negative zero (whose sign a
/// JSON number may lose in SUPER) are strings, and so are finite values
/// outside Redshift's DOUBLE range (1E-307..1E+308 in magnitude:
/// subnormals, r_Numeric_types201), a documented conversion.
fn encode_float(text: &str, note: &mut Option<Conversion>) -> Value {
    if matches!(text, "NaN" | "Infinity" | "-Infinity" | "-0") {
        return Value::String(text.to_owned());
    }
    let Some(float) = text.parse::<f64>().ok().filter(|f| f.is_finite()) else {
        return Value::String(text.to_owned());
    };
    let magnitude = float.abs();
    if magnitude != 0.0 && !(1e-307..=1e308).contains(&magnitude) {
        *note = Some(Conversion::NumberAsString);
        return Value::String(text.to_owned());
    }
    serde_json::Number::from_f64(float)
        .map_or_else(|| Value::String(text.to_owned()), Value::Number)
}

/// `YYYY-MM-DD HH:MM:SS[.f]` -> `YYYY-MM-DDTHH:MM:SS.ffffff`. Infinities and
/// BC values keep their text form.
pub fn encode_timestamp(text: &str) -> String {
    if text.ends_with(" BC") {
        return text.to_owned();
    }
    match text.split_once(' ') {
        Some((date, time)) if is_clock(time) => format!("{date}T{}", six_digit_fraction(time)),
        _ => text.to_owned(),
    }
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

fn six_digit_fraction(time: &str) -> String {
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut out = String::with_capacity(15);
    out.push_str(hms);
    out.push('.');
    out.push_str(&frac[..frac.len().min(6)]);
    for _ in frac.len()..6 {
        out.push('0');
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS[.f]±HH[:MM[:SS]]` -> UTC `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
/// Infinities, BC values and anything unparsable keep their text form.
pub fn encode_timestamptz(text: &str) -> String {
    if text.ends_with(" BC") {
        return text.to_owned();
    }
    // Fast path: kinesync's sessions run with TimeZone=UTC, so the text
    // already is UTC ("+00"); only the separator and fraction change.
    if let Some((date, rest)) = text.split_once(' ') {
        if let Some(time) = rest.strip_suffix("+00") {
            if date.len() == 10 && is_clock(time) {
                return format!("{date}T{}Z", six_digit_fraction(time));
            }
        }
    }
    convert_timestamptz(text).unwrap_or_else(|| text.to_owned())
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

/// A parsed array literal: nested lists of optional element texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArrayItem {
    Null,
    Text(String),
    Array(Vec<ArrayItem>),
}

/// Parse an array's text output (`{1,2,NULL}`, `{"a b","c\"d"}`, nested
/// `{{1,2},{3,4}}`). `None` for forms we do not parse (explicit bounds like
/// `[0:1]={...}`, or anything malformed): the caller keeps the text.
pub fn parse_array(text: &str) -> Option<Vec<ArrayItem>> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let items = parse_array_at(bytes, &mut pos)?;
    (pos == bytes.len()).then_some(items)
}

fn parse_array_at(b: &[u8], pos: &mut usize) -> Option<Vec<ArrayItem>> {
    if b.get(*pos) != Some(&b'{') {
        return None;
    }
    *pos += 1;
    let mut items = Vec::new();
    if b.get(*pos) == Some(&b'}') {
        *pos += 1;
        return Some(items);
    }
    loop {
        match b.get(*pos)? {
            b'{' => items.push(ArrayItem::Array(parse_array_at(b, pos)?)),
            b'"' => {
                *pos += 1;
                let mut out = Vec::new();
                loop {
                    match *b.get(*pos)? {
                        b'\\' => {
                            out.push(*b.get(*pos + 1)?);
                            *pos += 2;
                        }
                        b'"' => {
                            *pos += 1;
                            break;
                        }
                        c => {
                            out.push(c);
                            *pos += 1;
                        }
                    }
                }
                items.push(ArrayItem::Text(String::from_utf8(out).ok()?));
            }
            _ => {
                let start = *pos;
                while !matches!(b.get(*pos)?, b',' | b'}') {
                    if b[*pos] == b'\\' || b[*pos] == b'"' || b[*pos] == b'{' {
                        return None;
                    }
                    *pos += 1;
                }
                let raw = std::str::from_utf8(&b[start..*pos]).ok()?;
                items.push(if raw.eq_ignore_ascii_case("NULL") {
                    ArrayItem::Null
                } else {
                    ArrayItem::Text(raw.to_owned())
                });
            }
        }
        match b.get(*pos)? {
            b',' => *pos += 1,
            b'}' => {
                *pos += 1;
                return Some(items);
            }
            _ => return None,
        }
    }
}

fn array_to_json(element: u32, items: Vec<ArrayItem>, note: &mut Option<Conversion>) -> Value {
    Value::Array(
        items
            .into_iter()
            .map(|item| match item {
                ArrayItem::Null => Value::Null,
                ArrayItem::Text(t) => encode_bounded(element, &t, note),
                ArrayItem::Array(inner) => array_to_json(element, inner, note),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::json;

    fn enc(oid: u32, text: &str) -> Value {
        encode_text(oid, text)
    }

    #[test]
    fn strings_over_redshifts_limit_are_cut_at_a_character_boundary() {
        let long = format!("{}é{}", "a".repeat(MAX_STRING_BYTES - 1), "b".repeat(10));
        let Value::String(cut) = enc(oid::TEXT, &long) else {
            panic!("not a string")
        };
        assert_eq!(
            cut.len(),
            MAX_STRING_BYTES - 1,
            "the 2-byte character would cross the limit"
        );
        let nested = format!("{{\"k\": [\"{}\"]}}", "x".repeat(70_000));
        let value = enc(oid::JSONB, &nested);
        assert_eq!(value["k"][0].as_str().map(str::len), Some(MAX_STRING_BYTES));
        assert_eq!(enc(oid::TEXT, "short"), Value::String("short".to_owned()));
    }

    #[test]
    fn json_numbers_reach_the_event_digit_for_digit() {
        for text in [
            "12345678901234567890123",
            "0.1000000000000000055511151231257827",
            "-18446744073709551617",
            "1.50",
            "1e+300",
            "-0",
            "0.000",
        ] {
            let doc = format!("{{\"n\": {text}, \"a\": [{text}]}}");
            for oid in [oid::JSON, oid::JSONB] {
                let (value, note) = encode_text_noted(oid, &doc);
                assert_eq!(note, None, "{text}");
                assert_eq!(value["n"].to_string(), text);
                assert_eq!(
                    serde_json::to_string(&value).unwrap(),
                    format!("{{\"n\":{text},\"a\":[{text}]}}")
                );
            }
        }
    }

    #[test]
    fn json_keys_keep_postgres_order_and_the_last_duplicate_wins() {
        // jsonb prints keys shortest first; json keeps them as written.
        let value = enc(
            oid::JSONB,
            r#"{"b": 1, "aa": 2, "ccc": {"z": null, "y": "\u00e9"}}"#,
        );
        assert_eq!(
            value.to_string(),
            r#"{"b":1,"aa":2,"ccc":{"z":null,"y":"é"}}"#
        );
        let value = enc(oid::JSON, r#"{"k": 1, "j": [], "k": "last"}"#);
        assert_eq!(value.to_string(), r#"{"k":"last","j":[]}"#);
    }

    #[test]
    fn json_numbers_redshift_cannot_hold_become_strings_of_their_digits() {
        for text in [
            "123456789012345678901234567890123456789", // 39 digits
            "1e+400",
            "1.5e-320",
            "0.00000000000000000000000000000000000000123456789012345678",
        ] {
            let (value, note) = encode_text_noted(oid::JSONB, &format!("[{text}]"));
            assert_eq!(note, Some(Conversion::NumberAsString), "{text}");
            assert_eq!(value, json!([text]));
        }
        let (value, note) = encode_text_noted(oid::JSONB, "[1, 1e400]");
        assert_eq!(
            (value.to_string(), note),
            (
                "[1,\"1e+400\"]".to_owned(),
                Some(Conversion::NumberAsString)
            )
        );
    }

    #[test]
    fn redshift_number_limits() {
        let holds = [
            "0",
            "-0.0",
            "99999999999999999999999999999999999999", // 38 nines
            "0.1234567890123456789012345678901234567", // scale 37
            "1e308",
            "-1.23456789012345e-307",
            "123e35",
            "1.000000000000000000000000000000000000000000",
        ];
        for text in holds {
            assert!(redshift_holds_number(text), "{text} fits");
        }
        let unheld = [
            "999999999999999999999999999999999999999",  // 39 nines
            "0.12345678901234567890123456789012345678", // scale 38
            "1e309",
            "1e-308",
            "1.2345678901234567e300",
            "1e99999999999999999999",
        ];
        for text in unheld {
            assert!(!redshift_holds_number(text), "{text} does not fit");
        }
    }

    #[test]
    fn floats_outside_redshifts_double_range_become_strings() {
        let (value, note) = encode_text_noted(oid::FLOAT8, "4.9406564584124654e-324");
        assert_eq!(
            (value, note),
            (
                json!("4.9406564584124654e-324"),
                Some(Conversion::NumberAsString)
            )
        );
        assert_eq!(
            encode_text_noted(oid::FLOAT8, "1e-300"),
            (json!(1e-300), None)
        );
        assert_eq!(encode_text_noted(oid::FLOAT8, "0"), (json!(0.0), None));
        assert_eq!(encode_text_noted(oid::FLOAT4, "-0"), (json!("-0"), None));
    }

    #[test]
    fn json_nested_too_deep_to_parse_is_sent_as_text() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let (value, note) = encode_text_noted(oid::JSONB, &deep);
        assert_eq!(
            (value, note),
            (Value::String(deep.clone()), Some(Conversion::JsonAsText))
        );
    }

    #[test]
    fn integers_are_numbers() {
        assert_eq!(enc(oid::INT2, "-32768"), json!(-32768));
        assert_eq!(enc(oid::INT4, "42"), json!(42));
        assert_eq!(
            enc(oid::INT8, "9223372036854775807"),
            json!(9223372036854775807i64)
        );
        assert_eq!(enc(oid::OID, "4294967295"), json!(4294967295u64));
    }

    #[test]
    fn numeric_is_exact_string() {
        assert_eq!(
            enc(oid::NUMERIC, "12345678901234567890.000000001"),
            json!("12345678901234567890.000000001")
        );
        assert_eq!(enc(oid::NUMERIC, "NaN"), json!("NaN"));
        assert_eq!(enc(oid::NUMERIC, "Infinity"), json!("Infinity"));
        assert_eq!(enc(oid::NUMERIC, "-Infinity"), json!("-Infinity"));
    }

    #[test]
    fn floats() {
        assert_eq!(enc(oid::FLOAT8, "1.5"), json!(1.5));
        assert_eq!(enc(oid::FLOAT4, "0.1"), json!(0.1));
        assert_eq!(enc(oid::FLOAT8, "-1e+300"), json!(-1e300));
        for special in ["NaN", "Infinity", "-Infinity"] {
            assert_eq!(enc(oid::FLOAT8, special), json!(special));
            assert_eq!(enc(oid::FLOAT4, special), json!(special));
        }
        assert_eq!(
            serde_json::to_string(&enc(oid::FLOAT8, "0.30000000000000004")).unwrap(),
            "0.30000000000000004"
        );
    }

    #[test]
    fn bool_and_text_types() {
        assert_eq!(enc(oid::BOOL, "t"), json!(true));
        assert_eq!(enc(oid::BOOL, "f"), json!(false));
        for o in [oid::TEXT, oid::VARCHAR, oid::BPCHAR, oid::NAME, oid::CHAR] {
            assert_eq!(enc(o, "a \"q\" ü "), json!("a \"q\" ü "));
        }
        assert_eq!(
            enc(oid::UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        );
        // enum or unknown type: text form
        assert_eq!(enc(123456, "happy"), json!("happy"));
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(enc(oid::DATE, "2024-02-29"), json!("2024-02-29"));
        assert_eq!(enc(oid::DATE, "infinity"), json!("infinity"));
        assert_eq!(enc(oid::DATE, "-infinity"), json!("-infinity"));
        assert_eq!(enc(oid::TIME, "13:45:00.5"), json!("13:45:00.5"));
        assert_eq!(enc(oid::TIMETZ, "13:45:00+05:30"), json!("13:45:00+05:30"));
        assert_eq!(
            enc(oid::INTERVAL, "1 year 2 mons 3 days 04:05:06"),
            json!("1 year 2 mons 3 days 04:05:06")
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            enc(oid::TIMESTAMP, "2024-01-02 03:04:05"),
            json!("2024-01-02T03:04:05.000000")
        );
        assert_eq!(
            enc(oid::TIMESTAMP, "2024-01-02 03:04:05.123"),
            json!("2024-01-02T03:04:05.123000")
        );
        assert_eq!(
            enc(oid::TIMESTAMP, "2024-01-02 03:04:05.123456"),
            json!("2024-01-02T03:04:05.123456")
        );
        assert_eq!(enc(oid::TIMESTAMP, "infinity"), json!("infinity"));
        assert_eq!(enc(oid::TIMESTAMP, "-infinity"), json!("-infinity"));
        assert_eq!(
            enc(oid::TIMESTAMP, "0044-03-15 12:00:00 BC"),
            json!("0044-03-15 12:00:00 BC")
        );
    }

    #[test]
    fn timestamptz_to_utc() {
        assert_eq!(
            enc(oid::TIMESTAMPTZ, "2024-01-02 03:04:05+00"),
            json!("2024-01-02T03:04:05.000000Z")
        );
        assert_eq!(
            enc(oid::TIMESTAMPTZ, "2024-01-02 03:04:05.5+02"),
            json!("2024-01-02T01:04:05.500000Z")
        );
        assert_eq!(
            enc(oid::TIMESTAMPTZ, "2024-01-01 01:00:00.000001+05:30"),
            json!("2023-12-31T19:30:00.000001Z")
        );
        assert_eq!(
            enc(oid::TIMESTAMPTZ, "2024-12-31 23:00:00-03"),
            json!("2025-01-01T02:00:00.000000Z")
        );
        assert_eq!(
            enc(oid::TIMESTAMPTZ, "1900-01-01 00:00:00+01:13:20"),
            json!("1899-12-31T22:46:40.000000Z")
        );
        assert_eq!(enc(oid::TIMESTAMPTZ, "infinity"), json!("infinity"));
        assert_eq!(enc(oid::TIMESTAMPTZ, "-infinity"), json!("-infinity"));
        assert_eq!(
            enc(oid::TIMESTAMPTZ, "0044-03-15 12:00:00+00 BC"),
            json!("0044-03-15 12:00:00+00 BC")
        );
    }

    #[test]
    fn bytea_json_uuid() {
        assert_eq!(enc(oid::BYTEA, "\\xdeadBEEF"), json!("deadBEEF"));
        assert_eq!(enc(oid::BYTEA, "\\x"), json!(""));
        assert_eq!(
            enc(oid::JSONB, r#"{"a": [1, "x", null]}"#),
            json!({"a": [1, "x", null]})
        );
        assert_eq!(enc(oid::JSON, "\"s\""), json!("s"));
        assert_eq!(enc(oid::JSON, "not json"), json!("not json"));
    }

    #[test]
    fn arrays() {
        assert_eq!(enc(1007, "{1,2,NULL}"), json!([1, 2, null]));
        assert_eq!(
            enc(1009, r#"{"a b","c\"d",NULL,"NULL",plain,"x\\y"}"#),
            json!(["a b", "c\"d", null, "NULL", "plain", "x\\y"])
        );
        assert_eq!(enc(1009, "{}"), json!([]));
        assert_eq!(enc(1007, "{{1,2},{3,4}}"), json!([[1, 2], [3, 4]]));
        assert_eq!(enc(1231, "{1.50,NaN}"), json!(["1.50", "NaN"]));
        assert_eq!(enc(1022, "{1.5,Infinity}"), json!([1.5, "Infinity"]));
        assert_eq!(enc(1000, "{t,f}"), json!([true, false]));
        assert_eq!(
            enc(1185, r#"{"2024-01-02 03:04:05+02"}"#),
            json!(["2024-01-02T01:04:05.000000Z"])
        );
        assert_eq!(enc(3807, r#"{"{\"a\": 1}"}"#), json!([{"a": 1}]));
        assert_eq!(enc(1001, r#"{"\\x0102"}"#), json!(["0102"]));
        // Explicit bounds and malformed: text form.
        assert_eq!(enc(1007, "[0:1]={1,2}"), json!("[0:1]={1,2}"));
        assert_eq!(enc(1007, "{1,2"), json!("{1,2"));
    }

    #[test]
    fn tuple_values() {
        assert_eq!(
            encode_tuple_value(oid::INT4, &TupleValue::Null),
            Value::Null
        );
        assert_eq!(
            encode_tuple_value(oid::TEXT, &TupleValue::UnchangedToast),
            json!(UNAVAILABLE_VALUE)
        );
        assert_eq!(
            encode_tuple_value(oid::INT4, &TupleValue::Text(Bytes::from_static(b"7"))),
            json!(7)
        );
    }
}
