//! The event writer's side of a column value: one [`Writer`] per column,
//! chosen from its type OID when the relation's plan is built, writes a
//! tuple value's JSON straight from its text into the event buffer.
//!
//! No `serde_json::Value`, no allocation and no `core::fmt` on the common
//! path: integers are parsed and written back in decimal, floats through
//! `zmij` (as serde_json), timestamps by moving their pieces, json by the checked
//! pass-through, arrays element by element. The rare cases (a value over
//! [`MAX_STRING_BYTES`], json the pass-through leaves) take the `Value`
//! path of [`super::value`], whose bytes these agree with exactly.

use super::array::{walk_array, ArrayVisitor};
use super::json::{pass_through, push_json_value, write_json_str};
use super::number::{classify_float, push_f64, push_i64, push_u64, Float};
use super::time::{timestamp, timestamptz};
use super::value::encode_text_noted;
use super::{array_element, oid, Conversion, MAX_STRING_BYTES, UNAVAILABLE_VALUE};
use crate::source::pgoutput::TupleValue;

/// How values of one type are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Oid,
    Float,
    Bool,
    Bytea,
    Json,
    Timestamp,
    Timestamptz,
    /// An array of the given element type.
    Array(u32),
    /// A JSON string of the text (numeric, text types, dates, ...).
    Text,
}

/// The writer of one column's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writer {
    kind: Kind,
    type_oid: u32,
}

impl Writer {
    pub fn for_type(type_oid: u32) -> Writer {
        let kind = match type_oid {
            oid::INT2 | oid::INT4 | oid::INT8 => Kind::Int,
            oid::OID => Kind::Oid,
            oid::FLOAT4 | oid::FLOAT8 => Kind::Float,
            oid::BOOL => Kind::Bool,
            oid::BYTEA => Kind::Bytea,
            oid::JSON | oid::JSONB => Kind::Json,
            oid::TIMESTAMP => Kind::Timestamp,
            oid::TIMESTAMPTZ => Kind::Timestamptz,
            other => array_element(other).map_or(Kind::Text, Kind::Array),
        };
        Writer { kind, type_oid }
    }

    /// Append the JSON of one tuple value; a documented conversion it
    /// went through is left in `note`.
    pub fn write_value(self, out: &mut Vec<u8>, value: &TupleValue, note: &mut Option<Conversion>) {
        self.write_tuple_value(out, value, note, Place::Alone);
    }

    /// [`Writer::write_value`] for a row's key: the JSON array of the key
    /// values as serde_json writes it (see [`Place`]).
    pub fn write_key_value(self, out: &mut Vec<u8>, value: &TupleValue) {
        self.write_tuple_value(out, value, &mut None, Place::Nested);
    }

    fn write_tuple_value(
        self,
        out: &mut Vec<u8>,
        value: &TupleValue,
        note: &mut Option<Conversion>,
        place: Place,
    ) {
        match value {
            TupleValue::Null => out.extend_from_slice(b"null"),
            TupleValue::UnchangedToast => write_json_str(out, UNAVAILABLE_VALUE),
            TupleValue::Text(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => self.write_text_at(out, text, note, place),
                Err(_) => self.write_text_at(out, &String::from_utf8_lossy(bytes), note, place),
            },
            // kinesync never asks for binary; if it ever arrives, keep it readable.
            TupleValue::Binary(bytes) => write_json_str(out, &hex::encode(bytes)),
        }
    }

    /// Append the JSON of the value whose text output is `text`.
    pub fn write_text(self, out: &mut Vec<u8>, text: &str, note: &mut Option<Conversion>) {
        self.write_text_at(out, text, note, Place::Alone);
    }

    fn write_text_at(
        self,
        out: &mut Vec<u8>,
        text: &str,
        note: &mut Option<Conversion>,
        place: Place,
    ) {
        if text.len() > MAX_STRING_BYTES {
            return self.write_by_value(out, text, note, place);
        }
        match self.kind {
            Kind::Int => match text.parse::<i64>() {
                Ok(n) => push_i64(out, n),
                Err(_) => write_json_str(out, text),
            },
            Kind::Oid => match text.parse::<u64>() {
                Ok(n) => push_u64(out, n),
                Err(_) => write_json_str(out, text),
            },
            Kind::Float => match classify_float(text) {
                Float::Number(float) => push_f64(out, float),
                Float::Text => write_json_str(out, text),
                Float::Converted(conversion) => {
                    *note = Some(conversion);
                    write_json_str(out, text);
                }
            },
            Kind::Bool => match text {
                "t" => out.extend_from_slice(b"true"),
                "f" => out.extend_from_slice(b"false"),
                other => write_json_str(out, other),
            },
            Kind::Bytea => write_json_str(out, text.strip_prefix("\\x").unwrap_or(text)),
            Kind::Json => {
                if !pass_through(out, text) {
                    self.write_by_value(out, text, note, place);
                }
            }
            Kind::Timestamp => timestamp(text).write(out, text),
            Kind::Timestamptz => timestamptz(text).write(out, text),
            Kind::Array(element) => write_array(out, Writer::for_type(element), text, note),
            Kind::Text => write_json_str(out, text),
        }
    }

    /// The rare path: through `serde_json::Value`.
    fn write_by_value(
        self,
        out: &mut Vec<u8>,
        text: &str,
        note: &mut Option<Conversion>,
        place: Place,
    ) {
        let (value, conversion) = encode_text_noted(self.type_oid, text);
        if conversion.is_some() {
            *note = conversion;
        }
        match place {
            Place::Alone => push_json_value(out, &value),
            // Writing to a Vec cannot fail, nor can serializing a Value.
            Place::Nested => drop(serde_json::to_writer(&mut *out, &value)),
        }
    }
}

/// Where a value is written. A column's value alone goes through
/// [`push_json_value`], which writes a number that reads as an `i64` in
/// canonical form; inside an array (an array column, a row's key) serde_json
/// writes every number as its text. They differ for a json value that is a
/// number alone (`-0`), which the pass-through leaves to the `Value` path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Alone,
    Nested,
}

/// An array's JSON, element by element; its text as a string when the
/// text is not an array literal we read.
fn write_array(out: &mut Vec<u8>, element: Writer, text: &str, note: &mut Option<Conversion>) {
    let start = out.len();
    let before = *note;
    let mut writer = ArrayWriter { out, element, note };
    if walk_array(text, &mut writer).is_none() {
        out.truncate(start);
        *note = before;
        write_json_str(out, text);
    }
}

struct ArrayWriter<'a> {
    out: &'a mut Vec<u8>,
    element: Writer,
    note: &'a mut Option<Conversion>,
}

impl ArrayVisitor for ArrayWriter<'_> {
    fn open(&mut self) {
        self.out.push(b'[');
    }

    fn close(&mut self) {
        self.out.push(b']');
    }

    fn separator(&mut self) {
        self.out.push(b',');
    }

    fn null(&mut self) {
        self.out.extend_from_slice(b"null");
    }

    fn text(&mut self, text: &str) {
        self.element
            .write_text_at(self.out, text, self.note, Place::Nested);
    }
}
