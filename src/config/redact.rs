//! Passwords out of connection strings before they are printed.

/// A connection URL or libpq `key=value` string with every password
/// replaced by `***`, safe to print and log.
pub fn redact_url(url: &str) -> String {
    crate::postgres::redact_connection_string(url)
}
