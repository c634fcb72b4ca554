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
//! pins on every connection ([`SESSION_SETTINGS`]): the same encoding
//! serves pgoutput tuples and snapshot `COPY` rows.
//!
//! Two implementations give the same bytes: the streaming path writes each
//! value straight from the tuple into the event ([`plan`] per relation,
//! [`write`] per column: no intermediate value, no allocation), and
//! [`value`] builds a `serde_json::Value`, which the snapshot uses and the
//! writer falls back on for rare values (over [`MAX_STRING_BYTES`], json it
//! cannot pass through). tests/properties.rs checks that they agree.

mod array;
mod json;
mod number;
mod plan;
mod report;
mod time;
mod value;
mod write;

pub use array::{parse_array, ArrayItem};
pub use json::{push_json_str, push_json_value, write_json_str};
pub use number::{push_i64, push_u64, redshift_holds_number};
pub use plan::{message_key_indices, PlanCache, RelationPlan, ShapeMismatch, Tuple};
pub use report::report;
pub use time::{encode_timestamp, encode_timestamptz};
pub use value::{
    encode_text, encode_text_noted, encode_tuple_value, encode_tuple_value_noted,
    truncate_long_strings,
};
pub use write::Writer;

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
