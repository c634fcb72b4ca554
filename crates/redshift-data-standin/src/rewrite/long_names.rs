//! Identifiers of 64 to 127 bytes: Redshift keeps them whole (r_names),
//! PostgreSQL truncates at 63 bytes (NAMEDATALEN), so two long names with a
//! common prefix would be one table here and two on Redshift. A long name
//! becomes a 63-byte PostgreSQL name (a prefix and a hash of the whole
//! name), and query results give back the long name for it. The mapping is
//! remembered for the life of the process (names are registered when a
//! statement uses them, before any result can hold them).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// PostgreSQL's longest identifier, in bytes.
pub const PG_MAX_IDENTIFIER_BYTES: usize = 63;

fn registry() -> &'static Mutex<HashMap<String, String>> {
    static NAMES: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    NAMES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The PostgreSQL name for an identifier (itself up to 63 bytes).
pub fn pg_name(name: &str) -> String {
    if name.len() <= PG_MAX_IDENTIFIER_BYTES {
        return name.to_owned();
    }
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let suffix = format!("~{hash:016x}");
    let mut end = PG_MAX_IDENTIFIER_BYTES - suffix.len();
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let short = format!("{}{suffix}", &name[..end]);
    if let Ok(mut names) = registry().lock() {
        names.insert(short.clone(), name.to_owned());
    }
    short
}

/// The Redshift name behind a value of a result, if it is a shortened name.
pub fn redshift_name(value: &str) -> Option<String> {
    if value.len() != PG_MAX_IDENTIFIER_BYTES && !value.contains('~') {
        return None;
    }
    registry().lock().ok()?.get(value).cloned()
}
