//! The `serde_json::Value` encoding of a column value: the reference the
//! event writer ([`super::write`]) agrees with byte for byte, and its rare
//! path (values over [`MAX_STRING_BYTES`], json that needs parsing). The
//! snapshot builds its rows with it too.

use serde_json::Value;

use super::array::{parse_array, ArrayItem};
use super::number::{classify_float, redshift_holds_number, Float};
use super::time::{encode_timestamp, encode_timestamptz};
use super::{array_element, oid, Conversion, MAX_STRING_BYTES, UNAVAILABLE_VALUE};
use crate::source::pgoutput::TupleValue;

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

/// See [`classify_float`].
fn encode_float(text: &str, note: &mut Option<Conversion>) -> Value {
    match classify_float(text) {
        Float::Number(float) => serde_json::Number::from_f64(float)
            .map_or_else(|| Value::String(text.to_owned()), Value::Number),
        Float::Text => Value::String(text.to_owned()),
        Float::Converted(conversion) => {
            *note = Some(conversion);
            Value::String(text.to_owned())
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
