//! Property tests of the pure encoders and the pgoutput decoder (no stack
//! needed): arbitrary input never panics, and what the encoders promise
//! (docs/events.md) holds for every generated value.

use bytes::Bytes;
use kinesync::encode::{
    encode_text, encode_text_noted, oid, parse_array, redshift_holds_number, truncate_long_strings,
    ArrayItem, Conversion, MAX_STRING_BYTES,
};
use kinesync::event::{bounded_partition_key, MAX_PARTITION_KEY_BYTES};
use kinesync::source::pgoutput::{decode, LogicalMessage, TupleValue};
use proptest::prelude::*;
use serde_json::Value;

/// `text[]` in PostgreSQL's text output: every element quoted, `"` and `\`
/// escaped, NULL bare.
fn array_literal(items: &[Option<String>]) -> String {
    let inner: Vec<String> = items
        .iter()
        .map(|item| match item {
            None => "NULL".to_owned(),
            Some(text) => format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"")),
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// An Insert message (tag `I`, relation id, `N`, tuple) built by hand.
fn insert_message(relation_id: u32, values: &[Option<Vec<u8>>]) -> Bytes {
    let mut out = vec![b'I'];
    out.extend_from_slice(&relation_id.to_be_bytes());
    out.push(b'N');
    out.extend_from_slice(&(values.len() as i16).to_be_bytes());
    for value in values {
        match value {
            None => out.push(b'n'),
            Some(bytes) => {
                out.push(b't');
                out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                out.extend_from_slice(bytes);
            }
        }
    }
    Bytes::from(out)
}

const TEXT_ARRAY: u32 = 1009;
const INT4_ARRAY: u32 = 1007;

/// OIDs with a dedicated encoding, plus some without.
const OIDS: &[u32] = &[
    16,
    17,
    18,
    19,
    20,
    21,
    23,
    25,
    26,
    114,
    700,
    701,
    1042,
    1043,
    1082,
    1083,
    1114,
    1184,
    1186,
    1266,
    1700,
    2950,
    3802,
    1000,
    1001,
    1005,
    1007,
    1009,
    1016,
    1021,
    1022,
    1115,
    1185,
    1231,
    3807,
    199,
    869,
    3904,
    0,
    u32::MAX,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_text_array_survives_parse_array_and_the_json_encoding(
        items in prop::collection::vec(prop::option::of(".{0,12}"), 0..8)
    ) {
        let literal = array_literal(&items);
        let parsed = parse_array(&literal).expect("a quoted array literal always parses");
        let expected: Vec<ArrayItem> = items
            .iter()
            .map(|i| i.clone().map_or(ArrayItem::Null, ArrayItem::Text))
            .collect();
        prop_assert_eq!(parsed, expected);
        let json = encode_text(TEXT_ARRAY, &literal);
        let expected: Vec<Value> = items
            .iter()
            .map(|i| i.clone().map_or(Value::Null, Value::String))
            .collect();
        prop_assert_eq!(json, Value::Array(expected));
    }

    #[test]
    fn any_int_array_becomes_json_numbers(items in prop::collection::vec(prop::option::of(any::<i32>()), 0..8)) {
        let literal = format!(
            "{{{}}}",
            items.iter().map(|i| i.map_or("NULL".to_owned(), |n| n.to_string())).collect::<Vec<_>>().join(",")
        );
        let expected: Vec<Value> = items.iter().map(|i| i.map_or(Value::Null, Value::from)).collect();
        prop_assert_eq!(encode_text(INT4_ARRAY, &literal), Value::Array(expected));
    }

    #[test]
    fn encoding_any_text_as_any_type_never_panics_and_gives_serializable_json(
        oid in prop::sample::select(OIDS),
        text in ".{0,40}",
    ) {
        let value = encode_text(oid, &text);
        prop_assert!(serde_json::to_string(&value).is_ok());
    }

    #[test]
    fn parse_array_never_panics_on_arbitrary_text(text in "[{}\",\\\\a NUL]{0,30}") {
        let _ = parse_array(&text);
    }

    #[test]
    fn long_strings_are_cut_to_a_utf8_prefix_of_at_most_65535_bytes(
        unit in "[a-zé€😀]{1,4}",
        repeat in 0usize..40_000,
    ) {
        let original = unit.repeat(repeat);
        let mut value = Value::Array(vec![Value::String(original.clone())]);
        let cut = truncate_long_strings(&mut value);
        let Value::Array(items) = value else { unreachable!() };
        let Value::String(kept) = &items[0] else { unreachable!() };
        prop_assert!(kept.len() <= MAX_STRING_BYTES);
        prop_assert!(original.starts_with(kept.as_str()));
        prop_assert_eq!(cut, original.len() > MAX_STRING_BYTES);
        if cut {
            // Nothing more of the original would have fitted.
            let next = original[kept.len()..].chars().next().map_or(0, char::len_utf8);
            prop_assert!(kept.len() + next > MAX_STRING_BYTES);
        } else {
            prop_assert_eq!(kept, &original);
        }
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(Bytes::from(data));
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes_after_a_known_tag(
        tag in prop::sample::select(&b"RYOIUDTBCM"[..]),
        data in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut message = vec![tag];
        message.extend(data);
        let _ = decode(Bytes::from(message));
    }

    #[test]
    fn an_insert_decodes_to_exactly_the_values_encoded(
        relation_id in any::<u32>(),
        values in prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 0..64)), 0..12),
    ) {
        let decoded = decode(insert_message(relation_id, &values)).expect("a well-formed insert decodes");
        let expected: Vec<TupleValue> = values
            .iter()
            .map(|v| v.clone().map_or(TupleValue::Null, |b| TupleValue::Text(Bytes::from(b))))
            .collect();
        prop_assert_eq!(decoded, LogicalMessage::Insert { relation_id, new: expected });
    }

    #[test]
    fn a_truncated_insert_is_an_error_not_a_panic(
        values in prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 0..16)), 1..6),
        cut in 1usize..64,
    ) {
        let full = insert_message(7, &values);
        let cut = cut.min(full.len() - 1);
        prop_assert!(decode(full.slice(..full.len() - cut)).is_err());
    }

    #[test]
    fn a_partition_key_fits_kinesis_under_every_count(key in "\\PC{0,300}") {
        let full = format!("public.t:[{}]", Value::String(key));
        let bounded = bounded_partition_key(full.clone());
        prop_assert!(!bounded.is_empty());
        prop_assert!(bounded.len() <= MAX_PARTITION_KEY_BYTES, "UTF-8 bytes");
        prop_assert!(bounded.encode_utf16().count() <= 256, "UTF-16 units (kinesalite)");
        prop_assert!(bounded.chars().count() <= 256, "code points");
        if full.len() <= MAX_PARTITION_KEY_BYTES {
            prop_assert_eq!(bounded, full, "a short key is kept as it is");
        }
    }

    #[test]
    fn a_json_number_keeps_its_digits_or_becomes_a_string_of_them(
        negative in any::<bool>(),
        int in "(0|[1-9][0-9]{0,45})",
        frac in prop::option::of("[0-9]{1,45}"),
    ) {
        // jsonb prints numbers as numeric text: sign, digits, fraction.
        let number = format!(
            "{}{int}{}",
            if negative { "-" } else { "" },
            frac.map(|f| format!(".{f}")).unwrap_or_default()
        );
        let (value, note) = encode_text_noted(oid::JSONB, &format!("[{number}]"));
        if redshift_holds_number(&number) {
            prop_assert_eq!(note, None);
            prop_assert_eq!(serde_json::to_string(&value).unwrap(), format!("[{number}]"));
        } else {
            prop_assert_eq!(note, Some(Conversion::NumberAsString));
            prop_assert_eq!(value, Value::Array(vec![Value::String(number)]));
        }
    }
}
