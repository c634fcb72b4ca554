//! Seeded random workloads shared by the oracle (tests/oracle.rs) and the
//! stream-replay test (tests/producer.rs): statements over `items` (integer
//! key, TOASTed text), `pairs` (composite key) and, optionally, `kinds`
//! (uuid key, every common type). Rolled-back transactions, truncates, key
//! changes, deletes and re-inserts all occur.

/// The `items` and `pairs` tables the workload writes to.
pub const ITEMS_AND_PAIRS: &str = "
CREATE TABLE public.items (
    id integer PRIMARY KEY,
    label text,
    price numeric(10,2),
    qty bigint,
    flag boolean,
    seen_at timestamptz,
    big text
);
CREATE TABLE public.pairs (a integer, b text, v integer, PRIMARY KEY (a, b));
";

use rand::rngs::StdRng;
use rand::Rng;

pub fn text_value(rng: &mut StdRng) -> String {
    match rng.gen_range(0..10) {
        0 => "NULL".to_owned(),
        1 => "'it''s \"quoted\" \\ back'".to_owned(),
        2 => "'ünïcødé ✓'".to_owned(),
        _ => format!("'label-{}'", rng.gen_range(0..1000)),
    }
}

/// A random incompressible value long enough to be TOASTed out of line.
pub fn big_value(rng: &mut StdRng) -> String {
    if rng.gen_bool(0.3) {
        return "NULL".to_owned();
    }
    let body: String = (0..6000)
        .map(|_| char::from(b'a' + rng.gen_range(0..26u8)))
        .collect();
    format!("'{body}'")
}

/// A uuid drawn from a small pool, so that statements hit existing rows.
fn kinds_id(rng: &mut StdRng) -> String {
    format!("'00000000-0000-4000-8000-{:012}'", rng.gen_range(0..40))
}

/// One of `choices`, at random.
pub fn pick<'a>(rng: &mut StdRng, choices: &[&'a str]) -> &'a str {
    choices[rng.gen_range(0..choices.len())]
}

pub fn kinds_statement(rng: &mut StdRng) -> String {
    let id = kinds_id(rng);
    match rng.gen_range(0..10) {
        0..=4 => format!(
            "INSERT INTO kinds VALUES ({id}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}) ON CONFLICT (id) DO UPDATE SET d = EXCLUDED.d, f8 = EXCLUDED.f8, j = EXCLUDED.j, arr = EXCLUDED.arr",
            pick(rng, &["'2024-02-29'", "'1970-01-01'", "NULL", "'0001-01-01'"]),
            pick(rng, &["'23:59:59.999999'", "'00:00:00'", "NULL"]),
            pick(rng, &["'2024-01-01 10:00:00+05:30'", "'1999-12-31 23:59:59.123456-08'", "NULL"]),
            pick(rng, &["'2024-01-01 10:00:00.5'", "'2038-01-19 03:14:08'", "NULL"]),
            pick(rng, &["1.5", "-0.000001", "'NaN'", "'Infinity'", "'-Infinity'", "1e300", "NULL"]),
            pick(rng, &["1.1", "'NaN'", "-3.25", "NULL"]),
            pick(rng, &["12345678901234.123456", "-0.000001", "0", "NULL"]),
            pick(rng, &["32767", "-32768", "NULL"]),
            pick(rng, &["'short'", "''", "'ünïcødé'", "NULL"]),
            pick(rng, &["'1 day 02:03:04'", "'-1 mons'", "NULL"]),
            pick(rng, &[r#"'{"a": 1, "b": [true, null, "x"], "c": {"d": 1.5}}'"#, "'[]'", "'\"str\"'", "NULL"]),
            pick(rng, &["'\\xdeadbeef'", "''", "NULL"]),
            pick(rng, &["'{1,2,3}'", "'{}'", "'{NULL,4}'", "NULL"]),
            pick(rng, &[r#"'{"a b","c,d","e\"f",NULL}'"#, "'{}'", "NULL"]),
        ),
        5..=7 => format!("UPDATE kinds SET small = (small + 1) % 1000, tz = now() WHERE id = {id}"),
        _ => format!("DELETE FROM kinds WHERE id = {id}"),
    }
}

pub fn random_statement(rng: &mut StdRng, next_id: &mut i32, with_kinds: bool) -> String {
    let id = rng.gen_range(1..=*next_id);
    if with_kinds && rng.gen_bool(0.25) {
        return kinds_statement(rng);
    }
    match rng.gen_range(0..100) {
        0..=29 => {
            *next_id += 1;
            format!(
                "INSERT INTO items VALUES ({}, {}, {}.{:02}, {}, {}, now() - interval '{} seconds', {}) ON CONFLICT DO NOTHING",
                *next_id,
                text_value(rng),
                rng.gen_range(0..10000),
                rng.gen_range(0..100),
                rng.gen_range(-1_000_000_000_000i64..1_000_000_000_000),
                if rng.gen_bool(0.5) { "true" } else { "NULL" },
                rng.gen_range(0..100_000),
                big_value(rng)
            )
        }
        30..=44 => format!("UPDATE items SET qty = qty + 1, flag = NOT flag WHERE id = {id}"),
        45..=49 => format!(
            "UPDATE items SET label = 'noted' WHERE id = {id} AND EXISTS \
             (SELECT 1 FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'note')"
        ),
        50..=59 => format!("UPDATE items SET label = {}, price = NULL WHERE id = {id}", text_value(rng)),
        60..=64 => format!("UPDATE items SET big = {} WHERE id = {id}", big_value(rng)),
        65..=71 => {
            *next_id += 1;
            format!("UPDATE items SET id = {} WHERE id = {id}", *next_id)
        }
        72..=81 => format!("DELETE FROM items WHERE id = {id}"),
        82..=89 => format!(
            "INSERT INTO pairs VALUES ({}, 'k{}', {}) ON CONFLICT (a, b) DO UPDATE SET v = EXCLUDED.v",
            rng.gen_range(0..20),
            rng.gen_range(0..5),
            rng.gen_range(0..100)
        ),
        90..=93 => format!("DELETE FROM pairs WHERE a = {}", rng.gen_range(0..20)),
        94..=96 => format!("UPDATE pairs SET b = b || 'x' WHERE a = {}", rng.gen_range(0..20)),
        97 => "TRUNCATE pairs".to_owned(),
        _ => "DELETE FROM items WHERE id % 7 = 0".to_owned(),
    }
}

/// One random transaction of 1 to `max_statements - 1` statements, rolled
/// back one time in ten.
pub fn random_transaction(
    rng: &mut StdRng,
    next_id: &mut i32,
    max_statements: usize,
    with_kinds: bool,
) -> String {
    let statements: Vec<String> = (0..rng.gen_range(1..max_statements))
        .map(|_| random_statement(rng, next_id, with_kinds))
        .collect();
    let end = if rng.gen_bool(0.1) {
        "ROLLBACK"
    } else {
        "COMMIT"
    };
    format!("BEGIN; {}; {end};", statements.join("; "))
}
