//! How each PostgreSQL type lands in Redshift: the mirror column type, the
//! SQL that reads the value out of an event, and the SQL that turns it into
//! the mirror's type.
//!
//! The producer's value encodings (docs/events.md) decide the casts: a JSON
//! number is cast straight to a number, a JSON string goes through
//! `::varchar` first. Redshift's SUPER casts are lax (a wrong type yields
//! NULL, not an error), so a cast always matches the JSON type the producer
//! writes for that column. The table is documented in docs/redshift.md.

use crate::catalog::SourceColumn;

/// Redshift's longest VARCHAR, in bytes.
pub const MAX_VARCHAR_BYTES: u32 = 65_535;
/// Redshift's largest DECIMAL precision.
pub const MAX_DECIMAL_PRECISION: u32 = 38;
/// VARBYTE size used for bytea (Redshift's maximum is 1,024,000 bytes).
pub const VARBYTE_BYTES: u32 = 1_024_000;
/// The producer's stand-in for an unchanged TOASTed value.
pub const TOAST_PLACEHOLDER: &str = "__debezium_unavailable_value";

/// How a column travels from event to mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    /// JSON number -> SMALLINT / INTEGER / BIGINT.
    Integer(&'static str),
    /// JSON string with the exact decimal -> DECIMAL(p,s).
    Decimal { precision: u32, scale: u32 },
    /// JSON number, or "NaN"/"Infinity"/"-Infinity" -> REAL / DOUBLE PRECISION.
    Float(&'static str),
    /// JSON boolean.
    Boolean,
    /// JSON string kept as VARCHAR(n bytes): text, varchar, char, uuid,
    /// numeric without a fitting precision, intervals, enums and every type
    /// without a mapping of its own (their text form).
    Text { bytes: u32 },
    /// JSON string in an ISO form cast to DATE / TIME / TIMETZ / TIMESTAMP / TIMESTAMPTZ.
    Temporal(&'static str),
    /// JSON string of hex digits -> VARBYTE.
    Bytes,
    /// Nested JSON (json, jsonb, arrays) -> SUPER.
    Super,
}

// Type OIDs of PostgreSQL's built-in types (pg_type.dat).
const INT2: u32 = 21;
const INT4: u32 = 23;
const INT8: u32 = 20;
const OID: u32 = 26;
const NUMERIC: u32 = 1700;
const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;
const BOOL: u32 = 16;
const DATE: u32 = 1082;
const TIME: u32 = 1083;
const TIMETZ: u32 = 1266;
const TIMESTAMP: u32 = 1114;
const TIMESTAMPTZ: u32 = 1184;
const BYTEA: u32 = 17;
const JSON: u32 = 114;
const JSONB: u32 = 3802;
const UUID: u32 = 2950;
const VARCHAR: u32 = 1043;
const BPCHAR: u32 = 1042;

impl ColumnKind {
    pub fn of(column: &SourceColumn) -> ColumnKind {
        if column.category == 'A' {
            return ColumnKind::Super;
        }
        match column.type_oid {
            INT2 => ColumnKind::Integer("SMALLINT"),
            INT4 => ColumnKind::Integer("INTEGER"),
            INT8 | OID => ColumnKind::Integer("BIGINT"),
            NUMERIC => match numeric_precision(&column.type_name) {
                Some((precision, scale)) if precision <= MAX_DECIMAL_PRECISION => {
                    ColumnKind::Decimal { precision, scale }
                }
                _ => ColumnKind::Text { bytes: 1000 },
            },
            FLOAT4 => ColumnKind::Float("REAL"),
            FLOAT8 => ColumnKind::Float("DOUBLE PRECISION"),
            BOOL => ColumnKind::Boolean,
            DATE => ColumnKind::Temporal("DATE"),
            TIME => ColumnKind::Temporal("TIME"),
            TIMETZ => ColumnKind::Temporal("TIMETZ"),
            TIMESTAMP => ColumnKind::Temporal("TIMESTAMP"),
            TIMESTAMPTZ => ColumnKind::Temporal("TIMESTAMPTZ"),
            BYTEA => ColumnKind::Bytes,
            JSON | JSONB => ColumnKind::Super,
            UUID => ColumnKind::Text { bytes: 36 },
            VARCHAR | BPCHAR => match type_length(&column.type_name) {
                // Redshift counts bytes; a UTF-8 character takes up to 4.
                Some(chars) => ColumnKind::Text {
                    bytes: (chars.saturating_mul(4)).min(MAX_VARCHAR_BYTES),
                },
                None => ColumnKind::Text {
                    bytes: MAX_VARCHAR_BYTES,
                },
            },
            _ => ColumnKind::Text {
                bytes: MAX_VARCHAR_BYTES,
            },
        }
    }

    /// The mirror column's Redshift type.
    pub fn redshift_type(&self) -> String {
        match self {
            ColumnKind::Integer(t) | ColumnKind::Float(t) | ColumnKind::Temporal(t) => {
                (*t).to_owned()
            }
            ColumnKind::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
            ColumnKind::Boolean => "BOOLEAN".to_owned(),
            ColumnKind::Text { bytes } => format!("VARCHAR({bytes})"),
            ColumnKind::Bytes => format!("VARBYTE({VARBYTE_BYTES})"),
            ColumnKind::Super => "SUPER".to_owned(),
        }
    }

    /// Whether PostgreSQL may send this column as "unchanged TOAST": such
    /// columns travel raw (VARCHAR or SUPER) until the placeholder is resolved.
    pub fn toastable(&self) -> bool {
        matches!(
            self,
            ColumnKind::Text { .. } | ColumnKind::Bytes | ColumnKind::Super
        )
    }

    /// The type of the raw value between extraction and conversion.
    pub fn raw_type(&self) -> String {
        match self {
            ColumnKind::Text { .. } | ColumnKind::Bytes => format!("VARCHAR({MAX_VARCHAR_BYTES})"),
            other => other.redshift_type(),
        }
    }

    /// SQL reading the value at `nav` (a SUPER navigation such as
    /// `e.payload."after"."id"`) as the raw type.
    pub fn extract(&self, nav: &str) -> String {
        match self {
            ColumnKind::Integer(t) => format!("{nav}::{}", t.to_ascii_lowercase()),
            // DECIMAL has no NaN: it becomes NULL (docs/redshift.md, "Edge values").
            ColumnKind::Decimal { precision, scale } => format!(
                "CASE WHEN {nav}::varchar = 'NaN' THEN NULL ELSE {nav}::varchar::decimal({precision},{scale}) END"
            ),
            ColumnKind::Float(t) => {
                let t = t.to_ascii_lowercase();
                format!("CASE WHEN IS_VARCHAR({nav}) THEN {nav}::varchar::{t} ELSE {nav}::{t} END")
            }
            ColumnKind::Boolean => format!("{nav}::boolean"),
            ColumnKind::Text { .. } | ColumnKind::Bytes => format!("{nav}::varchar"),
            // Redshift's DATE and TIMESTAMP[TZ] have no infinities: they
            // become NULL (docs/redshift.md, "Edge values").
            ColumnKind::Temporal(t @ ("DATE" | "TIMESTAMP" | "TIMESTAMPTZ")) => format!(
                "CASE WHEN {nav}::varchar IN ('infinity', '-infinity') THEN NULL ELSE {nav}::varchar::{} END",
                t.to_ascii_lowercase()
            ),
            ColumnKind::Temporal(t) => format!("{nav}::varchar::{}", t.to_ascii_lowercase()),
            ColumnKind::Super => nav.to_owned(),
        }
    }

    /// SQL turning the raw value `raw` into the mirror's type.
    pub fn convert(&self, raw: &str) -> String {
        match self {
            ColumnKind::Bytes => format!("FROM_HEX({raw})"),
            _ => raw.to_owned(),
        }
    }

    /// SQL turning the mirror's value `value` back into the raw type.
    pub fn unconvert(&self, value: &str) -> String {
        match self {
            ColumnKind::Bytes => format!("TO_HEX({value})"),
            _ => value.to_owned(),
        }
    }

    /// SQL testing whether the raw value `raw` is the TOAST placeholder.
    pub fn is_placeholder(&self, raw: &str) -> String {
        match self {
            ColumnKind::Super => format!("JSON_SERIALIZE({raw}) = '\"{TOAST_PLACEHOLDER}\"'"),
            _ => format!("{raw} = '{TOAST_PLACEHOLDER}'"),
        }
    }
}

/// Which database a [`ColumnKind::canonical`] expression runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The source PostgreSQL table.
    Source,
    /// The Redshift mirror table.
    Mirror,
}

impl ColumnKind {
    /// SQL giving the column's value as text in a form both sides agree on,
    /// or NULL: what `kinesync verify` hashes. It applies the documented
    /// conversions (NaN in DECIMAL and infinite dates become NULL on the
    /// mirror side, so they do on the source side too). `source_type` is the
    /// source column's `format_type()` text. SUPER values are compared for
    /// NULL only: Redshift serializes JSON in a form PostgreSQL cannot
    /// reproduce (docs/operations.md, "Verifying a mirror").
    pub fn canonical(&self, column: &str, source_type: &str, side: Side) -> String {
        let source = side == Side::Source;
        match self {
            ColumnKind::Integer(_) => format!("CAST({column} AS VARCHAR)"),
            ColumnKind::Decimal { .. } if source => {
                format!("CASE WHEN {column} = 'NaN' THEN NULL ELSE CAST({column} AS VARCHAR) END")
            }
            ColumnKind::Decimal { .. } | ColumnKind::Float(_) => {
                format!("CAST({column} AS VARCHAR)")
            }
            ColumnKind::Boolean => {
                format!("CASE WHEN {column} IS NULL THEN NULL WHEN {column} THEN 't' ELSE 'f' END")
            }
            // char(n) pads with blanks that PostgreSQL's text cast drops.
            ColumnKind::Text { .. } if source_type.starts_with("character(") => {
                format!("RTRIM(CAST({column} AS VARCHAR))")
            }
            ColumnKind::Text { .. } => format!("CAST({column} AS VARCHAR)"),
            ColumnKind::Temporal(t @ ("DATE" | "TIMESTAMP" | "TIMESTAMPTZ")) => {
                let (value, format) = match *t {
                    "DATE" => (column.to_owned(), "YYYY-MM-DD"),
                    "TIMESTAMP" => (column.to_owned(), "YYYY-MM-DD HH24:MI:SS.US"),
                    _ => (
                        format!("({column} AT TIME ZONE 'UTC')"),
                        "YYYY-MM-DD HH24:MI:SS.US",
                    ),
                };
                let text = format!("TO_CHAR({value}, '{format}')");
                if source {
                    format!("CASE WHEN isfinite({column}) THEN {text} END")
                } else {
                    text
                }
            }
            ColumnKind::Temporal(_) => format!("CAST({column} AS VARCHAR)"),
            ColumnKind::Bytes if source => format!("encode({column}, 'hex')"),
            ColumnKind::Bytes => format!("LOWER(TO_HEX({column}))"),
            // A JSON null value travels as null, like SQL NULL (docs/redshift.md).
            ColumnKind::Super if source => format!(
                "CASE WHEN {column} IS NULL OR jsonb_typeof(to_jsonb({column})) = 'null' THEN NULL ELSE '' END"
            ),
            ColumnKind::Super => format!(
                "CASE WHEN {column} IS NULL OR JSON_TYPEOF({column}) = 'null' THEN NULL ELSE '' END"
            ),
        }
    }
}

/// Coarse type families, to tell whether an existing mirror column can still
/// hold what the source column now maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Integer,
    Decimal,
    Float,
    Boolean,
    Text,
    Date,
    Time,
    Timestamp,
    Bytes,
    Super,
}

impl ColumnKind {
    pub fn family(&self) -> Family {
        match self {
            ColumnKind::Integer(_) => Family::Integer,
            ColumnKind::Decimal { .. } => Family::Decimal,
            ColumnKind::Float(_) => Family::Float,
            ColumnKind::Boolean => Family::Boolean,
            ColumnKind::Text { .. } => Family::Text,
            ColumnKind::Temporal("DATE") => Family::Date,
            ColumnKind::Temporal("TIME") | ColumnKind::Temporal("TIMETZ") => Family::Time,
            ColumnKind::Temporal(_) => Family::Timestamp,
            ColumnKind::Bytes => Family::Bytes,
            ColumnKind::Super => Family::Super,
        }
    }
}

impl Family {
    /// The family of an `information_schema.columns.data_type` value, as
    /// Redshift (or the stand-in's PostgreSQL) reports it.
    pub fn of_data_type(data_type: &str) -> Option<Family> {
        let t = data_type.to_ascii_lowercase();
        Some(match t.as_str() {
            "smallint" | "integer" | "bigint" => Family::Integer,
            "numeric" | "decimal" => Family::Decimal,
            "real" | "double precision" => Family::Float,
            "boolean" => Family::Boolean,
            "date" => Family::Date,
            "super" | "jsonb" => Family::Super,
            "bytea" | "binary varying" | "varbyte" => Family::Bytes,
            _ if t.starts_with("character") || t == "text" => Family::Text,
            _ if t.starts_with("timestamp") => Family::Timestamp,
            _ if t.starts_with("time") => Family::Time,
            _ => return None,
        })
    }
}

/// `numeric(12,2)` -> (12, 2); `numeric` -> None.
fn numeric_precision(type_name: &str) -> Option<(u32, u32)> {
    let inner = type_name.strip_prefix("numeric(")?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// `character varying(40)` -> 40.
fn type_length(type_name: &str) -> Option<u32> {
    let open = type_name.find('(')?;
    type_name[open + 1..].strip_suffix(')')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(type_name: &str, type_oid: u32, category: char) -> SourceColumn {
        SourceColumn {
            name: "c".into(),
            type_name: type_name.into(),
            type_oid,
            category,
            key_position: None,
        }
    }

    #[test]
    fn numeric_within_redshift_precision_is_decimal_else_exact_text() {
        assert_eq!(
            ColumnKind::of(&column("numeric(12,2)", NUMERIC, 'N')).redshift_type(),
            "DECIMAL(12,2)"
        );
        assert_eq!(
            ColumnKind::of(&column("numeric(40,2)", NUMERIC, 'N')).redshift_type(),
            "VARCHAR(1000)"
        );
        assert_eq!(
            ColumnKind::of(&column("numeric", NUMERIC, 'N')).redshift_type(),
            "VARCHAR(1000)"
        );
    }

    #[test]
    fn varchar_length_is_counted_in_bytes() {
        assert_eq!(
            ColumnKind::of(&column("character varying(40)", VARCHAR, 'S')).redshift_type(),
            "VARCHAR(160)"
        );
        assert_eq!(
            ColumnKind::of(&column("character varying(20000)", VARCHAR, 'S')).redshift_type(),
            "VARCHAR(65535)"
        );
        assert_eq!(
            ColumnKind::of(&column("text", 25, 'S')).redshift_type(),
            "VARCHAR(65535)"
        );
    }

    #[test]
    fn arrays_and_json_are_super_and_unknown_types_their_text() {
        assert_eq!(
            ColumnKind::of(&column("integer[]", 1007, 'A')),
            ColumnKind::Super
        );
        assert_eq!(
            ColumnKind::of(&column("jsonb", JSONB, 'U')),
            ColumnKind::Super
        );
        assert_eq!(
            ColumnKind::of(&column("inet", 869, 'I')).redshift_type(),
            "VARCHAR(65535)"
        );
    }

    #[test]
    fn extraction_casts_match_the_json_type_the_producer_writes() {
        let nav = "e.payload.\"after\".\"c\"";
        assert_eq!(
            ColumnKind::Integer("BIGINT").extract(nav),
            format!("{nav}::bigint")
        );
        assert_eq!(
            ColumnKind::Temporal("TIMESTAMPTZ").extract(nav),
            format!("CASE WHEN {nav}::varchar IN ('infinity', '-infinity') THEN NULL ELSE {nav}::varchar::timestamptz END")
        );
        assert_eq!(
            ColumnKind::Temporal("TIME").extract(nav),
            format!("{nav}::varchar::time")
        );
        assert_eq!(
            ColumnKind::Decimal {
                precision: 10,
                scale: 2
            }
            .extract(nav),
            format!(
                "CASE WHEN {nav}::varchar = 'NaN' THEN NULL ELSE {nav}::varchar::decimal(10,2) END"
            )
        );
        assert_eq!(ColumnKind::Bytes.convert("l.\"c\""), "FROM_HEX(l.\"c\")");
    }
}
