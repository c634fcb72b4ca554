//! Reporting the documented conversions (docs/events.md, "Conversions"):
//! one warning per value, naming the table, the column and the row's key,
//! and `kinesync_values_converted_total{table, conversion}`. Never the
//! value itself (row data stays out of the log at warning level).

use super::Conversion;
use crate::source::relation_cache::Relation;

/// Warns about (and counts) each `(column, conversion)` of one row whose
/// key (JSON array text) is `key`.
pub fn report(rel: &Relation, table: &str, key: &str, notes: &[(usize, Conversion)]) {
    for &(column, note) in notes {
        crate::telemetry::metrics()
            .values_converted
            .get_or_create(&[
                ("table", table.to_owned()),
                ("conversion", note.as_str().to_owned()),
            ])
            .inc();
        tracing::warn!(
            table = %table,
            column = %rel.columns[column].name,
            key = %key,
            conversion = note.as_str(),
            "{}",
            note.describe()
        );
    }
}
