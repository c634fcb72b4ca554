//! Hostile data for the oracle: values nastier than real data, on tables
//! with every kind of key the producer accepts.
//!
//! - `h_texts`: a composite text primary key drawn from strings outside the
//!   BMP, combining marks, zero-width joiners, quotes, backslashes, commas,
//!   control characters, the empty string and values over 256 characters.
//! - `h_full_pk`: `REPLICA IDENTITY FULL` **with** a primary key, and large
//!   jsonb/text values that updates leave unchanged (TOAST placeholders).
//! - `h_full_nokey`: `REPLICA IDENTITY FULL` without any key (NULLs too).
//! - `h_by_index`: `REPLICA IDENTITY USING INDEX` without a primary key.
//! - `h_numbers`: numeric at precision/scale edges, float subnormals and
//!   range ends, json/jsonb numbers beyond 2^64, 30+ digit decimals,
//!   exponents, deep nesting, duplicate keys, unicode escapes.
//!
//! Statements never fail on the source (conflicts are avoided in SQL), so a
//! seed replays the same way every time.

use rand::rngs::StdRng;
use rand::Rng;

use super::workload::pick;

/// The tables, created in `public`.
pub const SCHEMA: &str = "
CREATE TABLE public.h_texts (k1 text, k2 text, v text, n integer, PRIMARY KEY (k1, k2));
CREATE TABLE public.h_full_pk (id integer PRIMARY KEY, doc jsonb, body text, n integer);
ALTER TABLE public.h_full_pk REPLICA IDENTITY FULL;
CREATE TABLE public.h_full_nokey (a integer NOT NULL, b text, n numeric);
ALTER TABLE public.h_full_nokey REPLICA IDENTITY FULL;
CREATE TABLE public.h_by_index (code text NOT NULL, region integer NOT NULL, v jsonb, note text);
CREATE UNIQUE INDEX h_by_index_key ON public.h_by_index (code, region);
ALTER TABLE public.h_by_index REPLICA IDENTITY USING INDEX h_by_index_key;
CREATE TABLE public.h_numbers (id integer PRIMARY KEY, n numeric, n38 numeric(38,0),
    n37 numeric(38,37), f8 double precision, f4 real, j jsonb, js json);
";

/// The hostile tables, qualified.
pub const TABLES: [&str; 5] = [
    "public.h_texts",
    "public.h_full_pk",
    "public.h_full_nokey",
    "public.h_by_index",
    "public.h_numbers",
];

/// Strings that break naive quoting, splitting, counting and escaping.
const NASTY: &[&str] = &[
    "",
    " ",
    "'",
    "''",
    "\"",
    "\\",
    "\\\\n",
    ",",
    "a,b",
    "(1,2)",
    "{x}",
    "[1]",
    "NULL",
    "null",
    "tab\there",
    "line\nbreak",
    "cr\rlf",
    "\u{1}ctl\u{1f}",
    "\u{7f}",
    "🦀",
    "🦀🦀🦀",
    "👩\u{200d}👩\u{200d}👧\u{200d}👦",
    "🏳\u{fe0f}\u{200d}🌈",
    "e\u{301}",
    "é",
    "Z\u{324}\u{354}\u{367}\u{311}\u{313}",
    "\u{200b}",
    "\u{200d}",
    "\u{feff}bom",
    "\u{10ffff}",
    "\u{fffd}",
    "مرحبا",
    "日本語テキスト",
    "ß",
    "İ",
    "ǅ",
    "DROP TABLE x; --",
    "$$",
    "$q$",
    "__debezium_unavailable_value",
];

/// A nasty string, sometimes over 256 characters (or UTF-8 bytes).
fn nasty(rng: &mut StdRng) -> String {
    match rng.gen_range(0..12) {
        0 => "x".repeat(rng.gen_range(250..400)),
        1 => "🦀".repeat(rng.gen_range(60..140)),
        2 => "e\u{301}".repeat(rng.gen_range(130..200)),
        3 => format!(
            "{}{}",
            "é".repeat(200),
            NASTY[rng.gen_range(0..NASTY.len())]
        ),
        _ => NASTY[rng.gen_range(0..NASTY.len())].to_owned(),
    }
}

/// `s` as an SQL string literal (standard_conforming_strings is on).
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn nasty_literal(rng: &mut StdRng) -> String {
    literal(&nasty(rng))
}

fn nasty_or_null(rng: &mut StdRng) -> String {
    if rng.gen_bool(0.15) {
        "NULL".to_owned()
    } else {
        nasty_literal(rng)
    }
}

/// A random hex string: incompressible enough to be TOASTed out of line.
fn hex_blob(rng: &mut StdRng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)]))
        .collect()
}

/// A jsonb document, sometimes large (up to ~70 KB, each string < 64 KB).
fn document(rng: &mut StdRng) -> String {
    match rng.gen_range(0..5) {
        0 => "NULL".to_owned(),
        1 => format!(
            "'{{\"blob\": \"{}\", \"blob2\": \"{}\", \"n\": 18446744073709551617}}'",
            hex_blob(rng, 35_000),
            hex_blob(rng, 35_000)
        ),
        2 => format!(
            "'{{\"blob\": \"{}\", \"k\": [1, 2.50, null]}}'",
            hex_blob(rng, 5_000)
        ),
        _ => format!(
            "'{{\"label\": {}, \"n\": {}}}'",
            serde_json::Value::String(nasty(rng))
                .to_string()
                .replace('\'', "''"),
            rng.gen_range(-1000..1000)
        ),
    }
}

fn big_text(rng: &mut StdRng) -> String {
    if rng.gen_bool(0.3) {
        return "NULL".to_owned();
    }
    format!("'{}'", hex_blob(rng, 8_000))
}

fn texts_statement(rng: &mut StdRng) -> String {
    let (k1, k2) = (nasty_literal(rng), nasty_literal(rng));
    match rng.gen_range(0..10) {
        0..=4 => format!(
            "INSERT INTO h_texts VALUES ({k1}, {k2}, {}, 0) ON CONFLICT (k1, k2) DO UPDATE SET v = EXCLUDED.v, n = h_texts.n + 1",
            nasty_or_null(rng)
        ),
        5 => format!("UPDATE h_texts SET v = {} WHERE k1 = {k1}", nasty_or_null(rng)),
        6 | 7 => format!(
            "UPDATE h_texts SET k2 = {k2} WHERE (k1, k2) = (SELECT k1, k2 FROM h_texts WHERE k1 = {k1} ORDER BY k2 LIMIT 1) \
             AND NOT EXISTS (SELECT 1 FROM h_texts WHERE k1 = {k1} AND k2 = {k2})"
        ),
        _ => format!("DELETE FROM h_texts WHERE k2 = {k2}"),
    }
}

fn full_pk_statement(rng: &mut StdRng) -> String {
    let id = rng.gen_range(0..30);
    match rng.gen_range(0..10) {
        0..=2 => format!(
            "INSERT INTO h_full_pk VALUES ({id}, {}, {}, 0) ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc, body = EXCLUDED.body",
            document(rng),
            big_text(rng)
        ),
        // Leaves doc and body unchanged: TOAST placeholders in `after`.
        3..=5 => format!("UPDATE h_full_pk SET n = n + 1 WHERE id = {id}"),
        6 => format!("UPDATE h_full_pk SET doc = {} WHERE id = {id}", document(rng)),
        7 => format!(
            "UPDATE h_full_pk SET id = (SELECT max(id) + 1 FROM h_full_pk) WHERE id = {id}"
        ),
        _ => format!("DELETE FROM h_full_pk WHERE id = {id}"),
    }
}

fn full_nokey_statement(rng: &mut StdRng, next_id: &mut i32) -> String {
    let a = rng.gen_range(0..=*next_id);
    match rng.gen_range(0..10) {
        0..=3 => {
            *next_id += 1;
            format!(
                "INSERT INTO h_full_nokey VALUES ({}, {}, {})",
                *next_id,
                nasty_or_null(rng),
                pick(
                    rng,
                    &[
                        "NULL",
                        "1.50",
                        "-0.000001",
                        "'NaN'",
                        "123456789012345678901234567890.5"
                    ]
                )
            )
        }
        4..=6 => format!(
            "UPDATE h_full_nokey SET b = {} WHERE a = {a}",
            nasty_or_null(rng)
        ),
        7 => format!("UPDATE h_full_nokey SET n = NULL WHERE a = {a}"),
        _ => format!("DELETE FROM h_full_nokey WHERE a = {a}"),
    }
}

fn by_index_statement(rng: &mut StdRng) -> String {
    let code = literal(pick(rng, &["a", "🦀", "", "x,y", "e\u{301}", "'q'", "\\"]));
    let region = rng.gen_range(0..4);
    match rng.gen_range(0..10) {
        0..=4 => format!(
            "INSERT INTO h_by_index VALUES ({code}, {region}, {}, {}) ON CONFLICT (code, region) DO UPDATE SET v = EXCLUDED.v, note = EXCLUDED.note",
            document(rng),
            nasty_or_null(rng)
        ),
        5 | 6 => format!(
            "UPDATE h_by_index SET note = {} WHERE code = {code}",
            nasty_or_null(rng)
        ),
        7 => format!(
            "UPDATE h_by_index SET region = region + 10 WHERE code = {code} AND region = {region} \
             AND NOT EXISTS (SELECT 1 FROM h_by_index WHERE code = {code} AND region = {region} + 10)"
        ),
        _ => format!("DELETE FROM h_by_index WHERE code = {code} AND region = {region}"),
    }
}

/// jsonb values: numbers beyond 2^64 and DECIMAL(38), long decimals,
/// exponents (jsonb keeps them as numeric), nesting, escapes.
const JSONB_VALUES: &[&str] = &[
    "NULL",
    "'null'",
    "'18446744073709551616'",
    "'[-18446744073709551617, 12345678901234567890123]'",
    "'123456789012345678901234567890123456789012'",
    "'0.1000000000000000055511151231257827021181583404541015625'",
    "'{\"e\": 1e400, \"small\": 1.5E-7, \"neg\": -0, \"one\": 1.0}'",
    "'{\"esc\": \"\\u00e9\\ud83e\\udd80\\t\\n\\u0001\", \"q\": \"\\\"\\\\\"}'",
    "'{\"dup\": 1, \"dup\": 2}'",
    "'{\"b\": 1, \"aa\": {\"c\": [true, false, null, {}, []]}}'",
    "'\"\"'",
];

/// json values: kept as written, except that whitespace goes and a
/// repeated key keeps its last value (docs/events.md).
const JSON_VALUES: &[&str] = &[
    "NULL",
    "'{\"dup\": 1, \"x\": [], \"dup\": \"last\"}'",
    "'{\"b\": 1, \"a\": 2}'",
    "'  {\"ws\" :  [1 , 2.50 ]}  '",
    "'[1E2, 2.50e-3, -0.0]'",
    "'\"\\ud83e\\udd80 \\u00e9\"'",
    "'[123456789012345678901234567890123456789012]'",
];

fn nested(depth: usize) -> String {
    format!("'{}1{}'", "[".repeat(depth), "]".repeat(depth))
}

fn numbers_statement(rng: &mut StdRng) -> String {
    let id = rng.gen_range(0..25);
    if rng.gen_range(0..5) == 0 {
        return format!("DELETE FROM h_numbers WHERE id = {id}");
    }
    let j = match rng.gen_range(0..12) {
        0 => nested(100),
        1 => nested(150),
        _ => pick(rng, JSONB_VALUES).to_owned(),
    };
    format!(
        "INSERT INTO h_numbers VALUES ({id}, {}, {}, {}, {}, {}, {j}, {}) ON CONFLICT (id) DO UPDATE SET \
         n = EXCLUDED.n, n38 = EXCLUDED.n38, n37 = EXCLUDED.n37, f8 = EXCLUDED.f8, f4 = EXCLUDED.f4, j = EXCLUDED.j, js = EXCLUDED.js",
        pick(rng, &[
            "NULL", "'NaN'", "0",
            "'123456789012345678901234567890.123456789012345678901234567890'",
            "'-0.000000000000000000000000000000000001'", "'1e-100'",
        ]),
        pick(rng, &["NULL", "'99999999999999999999999999999999999999'", "'-99999999999999999999999999999999999999'", "0"]),
        pick(rng, &["NULL", "'9.9999999999999999999999999999999999999'", "'-0.0000000000000000000000000000000000001'", "0"]),
        pick(rng, &[
            "NULL", "'NaN'", "'-Infinity'", "'4.9406564584124654e-324'", "'2.2250738585072014e-308'",
            "'1.7976931348623157e308'", "'-0'", "0.1", "'1e-300'", "'1e300'",
        ]),
        pick(rng, &["NULL", "'NaN'", "'1.4e-45'", "'3.4028235e38'", "'-0'", "1.1"]),
        pick(rng, JSON_VALUES),
    )
}

/// One random statement over the hostile tables.
pub fn statement(rng: &mut StdRng, next_id: &mut i32) -> String {
    match rng.gen_range(0..5) {
        0 => texts_statement(rng),
        1 => full_pk_statement(rng),
        2 => full_nokey_statement(rng, next_id),
        3 => by_index_statement(rng),
        _ => numbers_statement(rng),
    }
}

/// One random transaction of 1 to `max_statements - 1` statements, rolled
/// back one time in ten; one in twenty truncates a hostile table first.
pub fn transaction(rng: &mut StdRng, next_id: &mut i32, max_statements: usize) -> String {
    let mut statements: Vec<String> = Vec::new();
    if rng.gen_bool(0.05) {
        statements.push(format!("TRUNCATE {}", pick(rng, &TABLES)));
    }
    for _ in 0..rng.gen_range(1..max_statements) {
        statements.push(statement(rng, next_id));
    }
    let end = if rng.gen_bool(0.1) {
        "ROLLBACK"
    } else {
        "COMMIT"
    };
    format!("BEGIN; {}; {end};", statements.join("; "))
}
