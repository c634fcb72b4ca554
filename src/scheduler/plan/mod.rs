//! Turns configuration + source catalog into the exact SQL statements of
//! `setup` and of one merge run, from the templates in `sql/`.
//!
//! Pure functions, no I/O: what is generated here is what the golden tests
//! pin down and what `--print` shows.

use std::collections::BTreeMap;

use crate::config::{Config, RedshiftConfig};
use crate::source::tables::{SourceColumn, SourceTable};
use crate::sql::{qualified, quote_ident, quote_literal, SqlError, Values};

use super::mapping::ColumnKind;

mod executor;
mod merge;
mod run;
mod setup;
mod toast;

pub use executor::*;
pub use merge::*;
pub use run::*;
pub use setup::*;

/// Why the source schema cannot be mapped onto the mirror.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(
        "column {column} of {table} changed type to {source_type}, which the mirror column ({mirror_type}) cannot hold; \
         fix by hand: ALTER TABLE {mirror} DROP COLUMN {column_q}; ALTER TABLE {mirror} ADD COLUMN {column_q} {redshift_type}; \
         then re-sync the table (see docs/operations.md)",
        table = .0.table, column = .0.column, source_type = .0.source_type, mirror_type = .0.mirror_type,
        mirror = .0.mirror, redshift_type = .0.redshift_type, column_q = quote_ident(&.0.column)
    )]
    TypeChanged(Box<TypeChange>),
    #[error(
        "columns {first} and {second} of {table} differ only by case, but Redshift folds identifiers to lower case, \
         so both would be mirror column {folded}: rename one on the source (ALTER TABLE {table} RENAME COLUMN {second} TO ...)",
        first = quote_ident(.first), second = quote_ident(.second), folded = quote_ident(&redshift_name(.first))
    )]
    ColumnCaseCollision {
        table: String,
        first: String,
        second: String,
    },
    #[error(
        "source tables {first} and {second} would both be mirror table {mirror} (Redshift folds identifiers to lower case): \
         mirror only one of them"
    )]
    TableNameCollision {
        first: String,
        second: String,
        mirror: String,
    },
}

/// Refuses source tables whose mirror names, or whose columns' mirror
/// names, would collide once Redshift folds them to lower case.
pub fn check_mirror_names(tables: &[MirrorTable]) -> Result<(), PlanError> {
    let mut mirror_names: BTreeMap<String, &MirrorTable> = BTreeMap::new();
    for table in tables {
        let mut columns: BTreeMap<String, &str> = BTreeMap::new();
        for column in &table.source.columns {
            if let Some(first) = columns.insert(redshift_name(&column.name), &column.name) {
                return Err(PlanError::ColumnCaseCollision {
                    table: table.source.qualified_name(),
                    first: first.to_owned(),
                    second: column.name.clone(),
                });
            }
        }
        if let Some(first) = mirror_names.insert(table.name.clone(), table) {
            return Err(PlanError::TableNameCollision {
                first: first.source.qualified_name(),
                second: table.source.qualified_name(),
                mirror: quote_ident(&table.name),
            });
        }
    }
    Ok(())
}

/// A source column type the mirror column cannot hold.
#[derive(Debug)]
pub struct TypeChange {
    pub table: String,
    pub column: String,
    pub mirror_type: String,
    pub source_type: String,
    pub mirror: String,
    pub redshift_type: String,
}

/// The Data API runs at most this many statements in one batch.
pub const MAX_STATEMENTS_PER_BATCH: usize = 40;

/// Names of the Redshift objects kinesync owns, quoted and ready for SQL.
#[derive(Debug, Clone)]
pub struct Objects {
    pub external_schema: String,
    pub stream: String,
    pub stream_role: String,
    pub mirror_schema_name: String,
    pub mirror_schema: String,
    pub events_view_name: String,
    pub events_view: String,
    pub checkpoint: String,
    pub table_state: String,
    pub lease: String,
    pub merge_status: String,
    pub refresh_log: String,
    /// The merge's statement executor procedure (plan/executor.rs).
    pub executor: String,
}

impl Objects {
    pub fn new(config: &Config, redshift: &RedshiftConfig) -> Objects {
        let stream_role = if redshift.stream_role_arn == "default" {
            "default".to_owned()
        } else {
            quote_literal(&redshift.stream_role_arn)
        };
        // Named as Redshift stores them, so that they are the same objects
        // with and without enable_case_sensitive_identifier.
        let schema = redshift_name(&redshift.mirror_schema);
        Objects {
            external_schema: quote_ident(&redshift_name(&redshift.external_schema)),
            stream: quote_ident(config.stream_name()),
            stream_role,
            events_view_name: redshift.events_view.clone(),
            events_view: qualified(&schema, &redshift_name(&redshift.events_view)),
            checkpoint: qualified(&schema, "kinesync_checkpoint"),
            table_state: qualified(&schema, "kinesync_table_state"),
            lease: qualified(&schema, "kinesync_lease"),
            merge_status: qualified(&schema, "kinesync_merge_status"),
            refresh_log: qualified(&schema, "kinesync_refresh_log"),
            executor: qualified(&schema, EXECUTOR_NAME),
            mirror_schema: quote_ident(&schema),
            mirror_schema_name: schema,
        }
    }

    pub(crate) fn values(&self) -> Values {
        Values::from([
            ("external_schema", self.external_schema.clone()),
            ("stream", self.stream.clone()),
            ("stream_role", self.stream_role.clone()),
            ("mirror_schema", self.mirror_schema.clone()),
            ("events_view", self.events_view.clone()),
            ("events_view_literal", quote_literal(&self.events_view_name)),
            ("checkpoint", self.checkpoint.clone()),
            ("table_state", self.table_state.clone()),
            ("lease", self.lease.clone()),
            ("merge_status", self.merge_status.clone()),
            ("refresh_log", self.refresh_log.clone()),
            ("executor", self.executor.clone()),
        ])
    }
}

/// A source table and its mirror.
#[derive(Debug, Clone)]
pub struct MirrorTable {
    pub source: SourceTable,
    /// Unquoted name of the mirror table inside the mirror schema.
    pub name: String,
    pub columns: Vec<(SourceColumn, ColumnKind)>,
}

impl MirrorTable {
    /// `public.orders` mirrors to `orders`; `sales.orders` to `sales__orders`.
    pub fn new(source: SourceTable) -> MirrorTable {
        let name = mirror_table_name(&source.name);
        let columns = source
            .columns
            .iter()
            .map(|c| (c.clone(), ColumnKind::of(c)))
            .collect();
        MirrorTable {
            source,
            name,
            columns,
        }
    }

    /// The key columns, in key order.
    pub fn key(&self) -> Vec<&(SourceColumn, ColumnKind)> {
        let mut key: Vec<_> = self
            .columns
            .iter()
            .filter(|(c, _)| c.key_position.is_some())
            .collect();
        key.sort_by_key(|(c, _)| c.key_position);
        key
    }

    fn toastable(&self) -> Vec<&(SourceColumn, ColumnKind)> {
        self.columns
            .iter()
            .filter(|(c, k)| k.toastable() && c.key_position.is_none())
            .collect()
    }
}

/// The unquoted name of `table`'s mirror in the mirror schema (see
/// [`MirrorTable::new`]).
pub fn mirror_table_name(table: &crate::sql::TableName) -> String {
    redshift_name(&if table.schema == "public" {
        table.name.clone()
    } else {
        format!("{}__{}", table.schema, table.name)
    })
}

/// What one merge run will see for one table (from `merge/pending.sql`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    pub events: u64,
    pub truncates: u64,
    pub updates: u64,
}

/// Redshift's longest identifier, in bytes: longer names are truncated
/// (r_CREATE_TABLE_NEW, r_names).
pub const MAX_IDENTIFIER_BYTES: usize = 127;

/// An identifier as Redshift stores it: ASCII letters folded to lower case
/// (other letters keep theirs, r_names), and a name over 127 bytes
/// shortened to a prefix and a hash of the whole name, so that two long
/// names never become one by truncation.
pub fn redshift_name(name: &str) -> String {
    let folded = name.to_ascii_lowercase();
    if folded.len() <= MAX_IDENTIFIER_BYTES {
        return folded;
    }
    // FNV-1a, 64 bits: stable across releases, unlike std's hasher.
    let hash = folded.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let suffix = format!("_{hash:016x}");
    let prefix = truncate_bytes(&folded, MAX_IDENTIFIER_BYTES - suffix.len());
    format!("{prefix}{suffix}")
}

/// A mirror column's identifier (also in the merge's temp tables).
fn column_ident(column: &SourceColumn) -> String {
    quote_ident(&redshift_name(&column.name))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::sql::TableName;

    fn column(name: &str, type_name: &str, type_oid: u32, key: Option<usize>) -> SourceColumn {
        let category = if type_name.ends_with("[]") { 'A' } else { 'U' };
        SourceColumn {
            name: name.into(),
            type_name: type_name.into(),
            declared_oid: type_oid,
            type_oid,
            category,
            key_position: key,
            in_identity: key.is_some(),
            attnum: 0,
            former_names: Vec::new(),
        }
    }

    fn table(schema: &str, name: &str, columns: Vec<SourceColumn>) -> SourceTable {
        SourceTable {
            oid: 0,
            name: TableName::new(schema, name),
            replica_identity: crate::source::pgoutput::ReplicaIdentity::Default,
            columns,
            key: crate::source::tables::KeyKind::PrimaryKey,
        }
    }

    fn config() -> Config {
        let text = r#"
            [source]
            url = "postgres://u@h/db"
            tables = ["public.orders", "sales.Line Items"]
            [kinesis]
            stream = "kinesync-cdc"
            [redshift]
            workgroup = "w"
            database = "dev"
            stream_role_arn = "arn:aws:iam::123456789012:role/r"
        "#;
        Config::from_toml_with_env(text, &BTreeMap::new()).unwrap()
    }

    fn tables() -> Vec<MirrorTable> {
        let orders = table(
            "public",
            "orders",
            vec![
                column("id", "bigint", 20, Some(1)),
                column("amount", "numeric(12,2)", 1700, None),
                column("note", "text", 25, None),
                column("doc", "jsonb", 3802, None),
                column("at", "timestamp with time zone", 1184, None),
            ],
        );
        let lines = table(
            "sales",
            "Line Items",
            vec![
                column("order_id", "bigint", 20, Some(1)),
                column("Line\"No", "integer", 23, Some(2)),
                column("data", "bytea", 17, None),
            ],
        );
        vec![MirrorTable::new(orders), MirrorTable::new(lines)]
    }

    #[test]
    fn mirrors_are_distributed_and_sorted_by_a_usable_key_only() {
        let keyed = &tables()[0];
        assert_eq!(
            setup::table_attributes(keyed),
            "\nDISTSTYLE KEY DISTKEY(\"id\") COMPOUND SORTKEY(\"id\")"
        );
        let mut keyless = table("public", "log", vec![column("line", "text", 25, Some(1))]);
        keyless.key = crate::source::tables::KeyKind::AllColumns;
        let json_key = table("public", "j", vec![column("doc", "jsonb", 3802, Some(1))]);
        for t in [keyless, json_key] {
            let t = MirrorTable::new(t);
            assert_eq!(setup::table_attributes(&t), "\nDISTSTYLE AUTO SORTKEY AUTO");
            assert_eq!(setup::temp_distribution(&t), "");
        }
    }

    /// The lease holder of the golden file's merge batches.
    const GOLDEN_HOLDER: &str = "golden-host:1:00000000";

    /// The generated SQL for a two-table source, pinned in tests/golden/.
    /// Regenerate with KINESYNC_UPDATE_GOLDEN=1 after an intended change.
    #[test]
    fn generated_sql_matches_the_golden_file() {
        let config = config();
        let objects = Objects::new(&config, config.redshift.as_ref().unwrap());
        let tables = tables();
        let mut out = String::from("-- setup\n");
        for s in setup_statements(&objects, &tables)
            .unwrap()
            .iter()
            .chain(&events_view_statements(&objects).unwrap())
        {
            out.push_str(&format!("{s};\n\n"));
        }
        out.push_str(&format!(
            "-- refresh\n{};\n\n",
            refresh_statement(&objects).unwrap()
        ));
        out.push_str(&format!(
            "-- pending\n{};\n\n",
            pending_statement(&objects).unwrap()
        ));
        let lease = lease_statements(&objects, GOLDEN_HOLDER, 30).unwrap();
        out.push_str("-- lease (acquire, holder, renew, release)\n");
        for s in lease
            .acquire
            .iter()
            .chain([&lease.holder, &lease.renew, &lease.release])
        {
            out.push_str(&format!("{s};\n\n"));
        }
        let all = Pending {
            events: 1,
            truncates: 1,
            updates: 1,
        };
        let work: Vec<_> = tables.into_iter().map(|t| (t, all)).collect();
        for (i, batch) in merge_batches(&objects, GOLDEN_HOLDER, &work)
            .unwrap()
            .iter()
            .enumerate()
        {
            // As sent: the stand-in's tests run exactly this.
            let wire = batch.wire(&objects);
            assert!(wire.len() <= MAX_STATEMENTS_PER_BATCH);
            out.push_str(&format!("-- merge batch {}\n", i + 1));
            for s in &wire {
                out.push_str(&format!("{s};\n\n"));
            }
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/plan.sql");
        if std::env::var_os("KINESYNC_UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &out).unwrap();
        }
        let golden = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            golden == out,
            "generated SQL differs from {path}; rerun with KINESYNC_UPDATE_GOLDEN=1 if intended"
        );
    }

    /// 160 columns with the longest names PostgreSQL allows: one
    /// statement resolving all its TOAST columns would be over the Data
    /// API's 100 KB; in column groups every statement stays well below.
    #[test]
    fn a_wide_table_merges_in_statements_under_the_data_api_limit() {
        let config = config();
        let objects = Objects::new(&config, config.redshift.as_ref().unwrap());
        let mut columns = vec![column("id", "bigint", 20, Some(1))];
        columns.extend((1..=160).map(|i| column(&wide_column_name(i), "text", 25, None)));
        let wide = MirrorTable::new(table("public", "wide", columns));
        let all = Pending {
            events: 1,
            truncates: 1,
            updates: 1,
        };
        let statements = table_merge_statements(&objects, &wide, all, 1).unwrap();
        let longest = statements.iter().map(String::len).max().unwrap_or(0);
        // The changes statement grows with every column (about 400 bytes
        // for a 63-byte name, value and unchanged-TOAST marker): 160 such
        // columns stay well under the Data API's 100 KB.
        assert!(longest < 75_000, "longest statement {longest} bytes");
        let groups = statements
            .iter()
            .filter(|s| s.starts_with("CREATE TEMP TABLE kinesync_resolved_"))
            .count();
        assert!(groups > 1, "{groups} column groups");
        let batches = merge_batches(&objects, GOLDEN_HOLDER, &[(wide, all)]).unwrap();
        for batch in &batches {
            let wire = batch.wire(&objects);
            assert!(wire.len() <= MAX_STATEMENTS_PER_BATCH);
            assert!(wire
                .iter()
                .all(|s| s.len() <= crate::redshift::MAX_STATEMENT_BYTES));
        }
    }

    /// A 63-byte column name (PostgreSQL's longest).
    fn wide_column_name(i: usize) -> String {
        format!("{}_{i:03}", "w".repeat(59))
    }

    #[test]
    fn names_fold_ascii_only_and_long_names_keep_apart() {
        assert_eq!(redshift_name("Line Items"), "line items");
        assert_eq!(redshift_name("Ärger_X"), "Ärger_x");
        let a = redshift_name(&format!("{}_first", "é".repeat(70)));
        let b = redshift_name(&format!("{}_second", "é".repeat(70)));
        assert!(a.len() <= MAX_IDENTIFIER_BYTES && b.len() <= MAX_IDENTIFIER_BYTES);
        assert_ne!(a, b);
        assert_eq!(a, redshift_name(&format!("{}_FIRST", "é".repeat(70))));
        assert_eq!(truncate_bytes("aéb", 2), "a");
    }

    #[test]
    fn tables_without_pending_events_get_no_statements() {
        let config = config();
        let objects = Objects::new(&config, config.redshift.as_ref().unwrap());
        let work: Vec<_> = tables()
            .into_iter()
            .map(|t| (t, Pending::default()))
            .collect();
        let batches = merge_batches(&objects, GOLDEN_HOLDER, &work).unwrap();
        assert_eq!(batches.len(), 1);
        assert!(batches[0]
            .statements()
            .all(|s| !s.contains("kinesync_changes")));
    }

    #[test]
    fn forty_tables_merge_in_one_transaction_and_the_41st_in_a_second() {
        let config = config();
        let objects = Objects::new(&config, config.redshift.as_ref().unwrap());
        let one = tables().remove(0);
        let all = Pending {
            events: 1,
            truncates: 1,
            updates: 1,
        };
        let merged = |batch: &MergeBatch| {
            batch
                .statements()
                .filter(|s| s.contains("INSERT INTO \"mirror\".\"orders\""))
                .count()
        };
        for (tables, expected) in [(40, vec![40]), (41, vec![40, 1])] {
            let work: Vec<_> = (0..tables).map(|_| (one.clone(), all)).collect();
            let batches = merge_batches(&objects, GOLDEN_HOLDER, &work).unwrap();
            assert_eq!(batches.iter().map(merged).collect::<Vec<_>>(), expected);
            assert_eq!(
                batches.iter().map(|b| b.tables).collect::<Vec<_>>(),
                expected
            );
            for batch in &batches {
                let wire = batch.wire(&objects);
                assert!(wire.len() <= MAX_STATEMENTS_PER_BATCH, "{}", wire.len());
                assert!(wire
                    .iter()
                    .all(|s| s.len() <= crate::redshift::MAX_STATEMENT_BYTES));
                // The fence and the settings plain, then CALLs, then the counts.
                assert!(wire[0].contains("kinesync_lease_fence"));
                assert!(wire[1..3].iter().all(|s| s.starts_with("SET ")));
                assert!(wire[3..wire.len() - 1]
                    .iter()
                    .all(|s| s.starts_with("CALL ")));
                assert!(wire[wire.len() - 1].contains("FROM kinesync_merge_counts"));
            }
            let last = batches.last().unwrap();
            assert!(last.body.last().unwrap().contains("SET watermark"));
        }
    }

    #[test]
    fn every_table_merged_is_counted_before_its_mirror_changes() {
        let config = config();
        let objects = Objects::new(&config, config.redshift.as_ref().unwrap());
        let all = Pending {
            events: 1,
            truncates: 1,
            updates: 1,
        };
        let work: Vec<_> = tables().into_iter().map(|t| (t, all)).collect();
        for (table, _) in &work {
            let statements = table_merge_statements(&objects, table, all, 1).unwrap();
            let mirror = qualified(&objects.mirror_schema_name, &table.name);
            let at = |prefix: &str| statements.iter().position(|s| s.starts_with(prefix));
            let counted = at("INSERT INTO kinesync_merge_counts").unwrap();
            assert!(statements[counted].contains(&quote_literal(&table.name)));
            let first_change = at(&format!("DELETE FROM {mirror} USING kinesync_latest_")).unwrap();
            assert!(counted < first_change);
        }
    }
}
