//! The value encoder on arbitrary text: the first two bytes pick a type OID
//! (from the ones with an encoding of their own), the rest is the text. It
//! must never panic, always give serializable JSON, and never leave a
//! string over the 65,535-byte limit.
#![no_main]

use kinesync::encode::{encode_text, MAX_STRING_BYTES};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const OIDS: &[u32] = &[
    16, 17, 18, 19, 20, 21, 23, 25, 26, 114, 700, 701, 1042, 1043, 1082, 1083, 1114, 1184, 1186,
    1266, 1700, 2950, 3802, 1000, 1001, 1005, 1007, 1009, 1016, 1021, 1022, 1115, 1185, 1231, 3807,
    199, 869,
];

fn longest_string(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(longest_string).max().unwrap_or(0),
        Value::Object(map) => map.values().map(longest_string).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let oid = OIDS[usize::from(selector) % OIDS.len()];
    let value = encode_text(oid, text);
    assert!(serde_json::to_string(&value).is_ok());
    assert!(longest_string(&value) <= MAX_STRING_BYTES);
});
