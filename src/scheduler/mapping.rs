//! How each PostgreSQL type lands in Redshift: the mirror column type, the
//! SQL that reads the value out of an event, and the SQL that turns it into
//! the mirror's type.
//!
//! The producer's value encodings (docs/events.md) decide the casts: a JSON
//! number is cast straight to a number, a JSON string goes through
//! `::varchar` first. Redshift's SUPER casts are lax (a wrong type yields
//! NULL, not an error), so a cast always matches the JSON type the producer
//! writes for that column. The table is documented in docs/redshift.md.

use crate::source::tables::SourceColumn;

/// Redshift's longest VARCHAR, in bytes.
pub const MAX_VARCHAR_BYTES: u32 = 65_535;
/// Redshift's largest DECIMAL precision (r_Numeric_types201).
pub const MAX_DECIMAL_PRECISION: u32 = 38;
/// Redshift's largest DECIMAL scale (r_Numeric_types201).
pub const MAX_DECIMAL_SCALE: u32 = 37;
/// Documented magnitudes of DOUBLE PRECISION and REAL (r_Numeric_types201):
/// (smallest non-zero, largest). Values outside become NULL.
pub const DOUBLE_RANGE: (&str, &str) = ("1E-307", "1E+308");
pub const REAL_RANGE: (&str, &str) = ("1E-37", "1E+37");
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
            NUMERIC => match numeric_precision(&column.type_name).and_then(redshift_decimal) {
                Some((precision, scale)) => ColumnKind::Decimal { precision, scale },
                None => ColumnKind::Text { bytes: 1000 },
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
            // NaN and the infinities (JSON strings) and numbers outside the
            // documented range become NULL (docs/redshift.md, "Edge values").
            ColumnKind::Float(t) => {
                let (min, max) = if *t == "REAL" { REAL_RANGE } else { DOUBLE_RANGE };
                let t = t.to_ascii_lowercase();
                format!(
                    "CASE WHEN IS_VARCHAR({nav}) THEN CASE WHEN {nav}::varchar = '-0' THEN {nav}::varchar::{t} END \
                     WHEN ABS({nav}::double precision) > {max} \
                       OR (ABS({nav}::double precision) < {min} AND {nav}::double precision <> 0) THEN NULL \
                     ELSE {nav}::{t} END"
                )
            }
            ColumnKind::Boolean => format!("{nav}::boolean"),
            ColumnKind::Text { .. } | ColumnKind::Bytes => format!("{nav}::varchar"),
            // Redshift's DATE and TIMESTAMP[TZ] have no infinities, and BC
            // values and years past 9999 have no documented input form
            // (r_Date_and_time_literals): they become NULL (docs/redshift.md,
            // "Edge values").
            ColumnKind::Temporal(t @ ("DATE" | "TIMESTAMP" | "TIMESTAMPTZ")) => format!(
                "CASE WHEN {nav}::varchar IN ('infinity', '-infinity') OR {nav}::varchar LIKE '% BC' \
                   OR POSITION('-' IN {nav}::varchar) > 5 THEN NULL ELSE {nav}::varchar::{} END",
                t.to_ascii_lowercase()
            ),
            ColumnKind::Temporal(t) => format!("{nav}::varchar::{}", t.to_ascii_lowercase()),
            // A JSON null inside SUPER is a SUPER null, not necessarily SQL
            // NULL: the mirror holds SQL NULL for both (docs/redshift.md).
            ColumnKind::Super => format!("CASE WHEN JSON_TYPEOF({nav}) = 'null' THEN NULL ELSE {nav} END"),
        }
    }

    /// SQL turning the raw value `raw` into the mirror's type. FROM_HEX
    /// takes only a literal (r_FROM_HEX); TO_VARBYTE takes any expression.
    pub fn convert(&self, raw: &str) -> String {
        match self {
            ColumnKind::Bytes => format!("TO_VARBYTE({raw}, 'hex')"),
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
            // Not JSON_SERIALIZE: it fails on a value longer than a VARCHAR.
            // Never NULL, so that NOT (...) is true for a real value.
            ColumnKind::Super => format!(
                "COALESCE(IS_VARCHAR({raw}) AND {raw}::varchar = '{TOAST_PLACEHOLDER}', false)"
            ),
            _ => format!("COALESCE({raw} = '{TOAST_PLACEHOLDER}', false)"),
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
            ColumnKind::Decimal { .. } => format!("CAST({column} AS VARCHAR)"),
            ColumnKind::Float(t) => {
                let text = float_text(column, if *t == "REAL" { 5 } else { 12 });
                match self.source_conversion(column, source_type) {
                    Some(converted) if source => format!("CASE WHEN {converted} THEN NULL ELSE {text} END"),
                    _ => text,
                }
            }
            ColumnKind::Boolean => {
                format!("CASE WHEN {column} IS NULL THEN NULL WHEN {column} THEN 't' ELSE 'f' END")
            }
            // char(n) pads with blanks that PostgreSQL's text cast drops.
            ColumnKind::Text { .. } if source_type.starts_with("character(") => {
                format!("RTRIM(CAST({column} AS VARCHAR))")
            }
            ColumnKind::Text { .. } if source => utf8_prefix(&format!("CAST({column} AS VARCHAR)")),
            ColumnKind::Text { .. } => format!("CAST({column} AS VARCHAR)"),
            ColumnKind::Temporal(t @ ("DATE" | "TIMESTAMP" | "TIMESTAMPTZ")) => {
                let value = utc(column, t);
                let format = if *t == "DATE" { "YYYY-MM-DD" } else { "YYYY-MM-DD HH24:MI:SS.US" };
                let text = format!("TO_CHAR({value}, '{format}')");
                if source {
                    format!("CASE WHEN EXTRACT(YEAR FROM {value}) BETWEEN 1 AND 9999 THEN {text} END")
                } else {
                    text
                }
            }
            // TIMETZ is stored in UTC (r_Datetime_types): compare the UTC time.
            ColumnKind::Temporal("TIMETZ") if source => {
                format!("CAST(CAST({column} AT TIME ZONE 'UTC' AS TIME) AS VARCHAR)")
            }
            ColumnKind::Temporal("TIMETZ") => format!("CAST(CAST({column} AS TIME) AS VARCHAR)"),
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

    /// PostgreSQL condition (never NULL) that the source value of `column`
    /// reaches the mirror through a documented conversion (docs/redshift.md,
    /// "Edge values"): what `verify` counts as "converted as documented".
    pub fn source_conversion(&self, column: &str, source_type: &str) -> Option<String> {
        let condition = match self {
            ColumnKind::Decimal { .. } => format!("{column} = 'NaN'"),
            ColumnKind::Float(t) => {
                let (min, max) = if *t == "REAL" {
                    REAL_RANGE
                } else {
                    DOUBLE_RANGE
                };
                // The value as the event carries it (its shortest text).
                let v = format!("CAST(CAST({column} AS TEXT) AS DOUBLE PRECISION)");
                format!("NOT ({v} = 0 OR ABS({v}) BETWEEN {min} AND {max})")
            }
            ColumnKind::Text { .. } if !source_type.starts_with("character(") => {
                format!("octet_length(CAST({column} AS VARCHAR)) > {MAX_VARCHAR_BYTES}")
            }
            ColumnKind::Temporal(t @ ("DATE" | "TIMESTAMP" | "TIMESTAMPTZ")) => {
                format!(
                    "EXTRACT(YEAR FROM {}) NOT BETWEEN 1 AND 9999",
                    utc(column, t)
                )
            }
            ColumnKind::Super => format!("jsonb_typeof(to_jsonb({column})) = 'null'"),
            _ => return None,
        };
        Some(format!("COALESCE({condition}, false)"))
    }
}

/// `column` as a timestamp in UTC for TIMESTAMPTZ, else itself.
fn utc(column: &str, redshift_type: &str) -> String {
    if redshift_type == "TIMESTAMPTZ" {
        format!("({column} AT TIME ZONE 'UTC')")
    } else {
        column.to_owned()
    }
}

/// A float as `<mantissa with `digits` decimals>e<exponent>`, in SQL both
/// PostgreSQL and Redshift evaluate alike: their float-to-text forms differ.
fn float_text(column: &str, digits: u32) -> String {
    let v = format!("CAST({column} AS DOUBLE PRECISION)");
    let exponent = format!("FLOOR(LOG(ABS({v})))");
    format!(
        "CASE WHEN {v} = 0 THEN '0' ELSE \
         CAST(CAST(ROUND(CAST({v} / POWER(10, {exponent}) AS DECIMAL(38,20)), {digits}) AS DECIMAL(30,{digits})) AS VARCHAR) \
         || 'e' || CAST(CAST({exponent} AS INTEGER) AS VARCHAR) END"
    )
}

/// PostgreSQL: the text cut to its longest prefix of whole characters of at
/// most 65,535 UTF-8 bytes, as the producer cuts long strings.
fn utf8_prefix(text: &str) -> String {
    let bytes = format!("convert_to({text}, 'UTF8')");
    let starts_char = |at: u32| format!("(get_byte({bytes}, {at}) & 192) <> 128");
    let max = MAX_VARCHAR_BYTES;
    format!(
        "CASE WHEN octet_length({text}) <= {max} THEN {text} ELSE convert_from(substring({bytes} FROM 1 FOR \
         CASE WHEN {} THEN {max} WHEN {} THEN {} WHEN {} THEN {} ELSE {} END), 'UTF8') END",
        starts_char(max),
        starts_char(max - 1),
        max - 1,
        starts_char(max - 2),
        max - 2,
        max - 3
    )
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

/// `numeric(12,2)` -> (12, 2); `numeric(3,-2)` -> (3, -2); `numeric` -> None.
fn numeric_precision(type_name: &str) -> Option<(u32, i32)> {
    let inner = type_name.strip_prefix("numeric(")?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// The smallest Redshift DECIMAL(p,s) (p <= 38, s <= p, s <= 37) holding
/// every value of PostgreSQL's `numeric(precision, scale)` exactly, which
/// allows s > p (`numeric(3,5)`: at most 0.00999) and s < 0
/// (`numeric(3,-2)`: multiples of 100 up to 99900). None: no DECIMAL can.
fn redshift_decimal((precision, scale): (u32, i32)) -> Option<(u32, u32)> {
    let (p, s) = match u32::try_from(scale) {
        Ok(s) => (precision.max(s), s),
        Err(_) => (precision.checked_add(scale.unsigned_abs())?, 0),
    };
    (p <= MAX_DECIMAL_PRECISION && s <= MAX_DECIMAL_SCALE).then_some((p, s))
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
            declared_oid: type_oid,
            type_oid,
            category,
            key_position: None,
            in_identity: false,
            attnum: 0,
            former_names: Vec::new(),
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
    fn numeric_scales_redshift_cannot_declare_widen_or_fall_back_to_text() {
        let mapped = |t: &str| ColumnKind::of(&column(t, NUMERIC, 'N')).redshift_type();
        assert_eq!(mapped("numeric(3,5)"), "DECIMAL(5,5)");
        assert_eq!(mapped("numeric(3,-2)"), "DECIMAL(5,0)");
        assert_eq!(mapped("numeric(37,37)"), "DECIMAL(37,37)");
        assert_eq!(mapped("numeric(38,38)"), "VARCHAR(1000)");
        assert_eq!(mapped("numeric(38,-1)"), "VARCHAR(1000)");
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
            format!(
                "CASE WHEN {nav}::varchar IN ('infinity', '-infinity') OR {nav}::varchar LIKE '% BC' \
                   OR POSITION('-' IN {nav}::varchar) > 5 THEN NULL ELSE {nav}::varchar::timestamptz END"
            )
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
        assert_eq!(
            ColumnKind::Bytes.convert("l.\"c\""),
            "TO_VARBYTE(l.\"c\", 'hex')"
        );
    }
}
