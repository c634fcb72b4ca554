//! The one resolver of `source.tables`: which tables are mirrored, their
//! columns with types, and their key, read from the PostgreSQL catalog with
//! ordinary SQL. The producer (snapshot, partition keys), `setup`, every
//! merge run, `check` and `verify` all take the tables from here, so they
//! cannot disagree about what a table is.
//!
//! - **Tables**: entries in configuration order, a `schema.*` entry
//!   expanded to the schema's tables in name order, without repeats; each
//!   must exist (an ordinary or partitioned table, not a partition).
//! - **Columns**: in column order, without dropped and without generated
//!   columns (pgoutput does not send generated columns and the snapshot
//!   does not copy them: the mirror never receives them).
//! - **Key**: what lets updates and deletes be keyed. The replica identity
//!   decides what an old tuple carries (the primary key under `DEFAULT`,
//!   the index under `USING INDEX`, every column under `FULL`, nothing
//!   under `NOTHING`, which is refused). The row's stable key, which the
//!   merge matches on and the producer partitions by, is the replica
//!   identity index under `USING INDEX` (also when a primary key exists on
//!   other columns: a delete's old tuple carries only the index columns),
//!   else the primary key, else (`FULL` without one) every column, whose
//!   values may then be NULL. Such a keyless table is refused unless
//!   `source.keyless_tables = "distinct_rows"` says its rows are distinct:
//!   keyed by every column, two equal rows would be one mirror row
//!   ([`admit`]).

use std::collections::{BTreeSet, HashMap};

use tokio_postgres::{Client, Row};

use super::pgoutput::ReplicaIdentity;
use super::relation_cache::{Column, Relation};
use crate::config::KeylessTables;
use crate::lsn::Lsn;
use crate::sql::{display_ident, parse_table_entry, TableEntryError};

pub use crate::sql::TableName;

/// Why `source.tables` does not resolve. Each reads as one line naming the
/// table and the fix.
#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    #[error("cannot read the source catalog while {context}: {}", crate::postgres::pg_message(.source))]
    Query {
        context: &'static str,
        source: tokio_postgres::Error,
    },
    #[error(transparent)]
    BadEntry(#[from] TableEntryError),
    #[error("source.tables entry {pattern} matches no table")]
    NoTablesMatched { pattern: String },
    #[error("table {table} does not exist (fix source.tables; names are case-sensitive: a mixed-case name is written public.\"Odd Table\" or public.Odd Table)")]
    NotFound { table: TableName },
    #[error("PostgreSQL role {role} may not read table {table}: run GRANT SELECT ON {table} TO {role} (and GRANT USAGE ON SCHEMA {schema} TO {role})", schema = display_ident(&.table.schema))]
    NoSelect { role: String, table: TableName },
    #[error("table {table} has no primary key, no replica identity index and no REPLICA IDENTITY FULL, so its updates and deletes cannot be keyed: add a primary key, or a unique index and ALTER TABLE {table} REPLICA IDENTITY USING INDEX <index> (REPLICA IDENTITY FULL alone also needs source.keyless_tables = \"distinct_rows\")")]
    NoKey { table: TableName },
    #[error("table {table} has no primary key and no replica identity index (REPLICA IDENTITY FULL only): two equal rows of it cannot be told apart, so its mirror could hold one row for several and lose a row on delete; add a primary key (e.g. ALTER TABLE {table} ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY), or a unique index and REPLICA IDENTITY USING INDEX; if its rows are never equal, set source.keyless_tables = \"distinct_rows\"")]
    Keyless { table: TableName },
    #[error("table {table} has REPLICA IDENTITY NOTHING, so its updates and deletes cannot be keyed: run ALTER TABLE {table} REPLICA IDENTITY FULL (or REPLICA IDENTITY DEFAULT, with a primary key)")]
    IdentityNothing { table: TableName },
}

impl TablesError {
    fn query(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> TablesError {
        move |source| TablesError::Query { context, source }
    }
}

/// One source table as both halves see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTable {
    /// The table's OID (what Relation messages refer to it by).
    pub oid: u32,
    pub name: TableName,
    pub replica_identity: ReplicaIdentity,
    /// In column order, generated columns left out.
    pub columns: Vec<SourceColumn>,
    /// Which columns make the row's stable key.
    pub key: KeyKind,
}

/// What the row's stable key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    PrimaryKey,
    /// `REPLICA IDENTITY USING INDEX`: the index's columns, with or
    /// without a primary key (old tuples carry only these).
    IdentityIndex,
    /// `REPLICA IDENTITY FULL` without a primary key or replica identity
    /// index: every column, NULL values possible.
    AllColumns,
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyKind::PrimaryKey => "primary key",
            KeyKind::IdentityIndex => "REPLICA IDENTITY USING INDEX",
            KeyKind::AllColumns => "REPLICA IDENTITY FULL",
        })
    }
}

/// One column of a source table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceColumn {
    pub name: String,
    /// `format_type()` text, e.g. `numeric(12,2)`, `character varying(40)`, `integer[]`.
    pub type_name: String,
    /// The declared type's OID (a domain's own, as Relation messages carry it).
    pub declared_oid: u32,
    /// The type's OID; for domains, the base type's.
    pub type_oid: u32,
    /// `pg_type.typcategory` of that type: `A` array, `E` enum, `N` numeric, ...
    pub category: char,
    /// Position in the row's stable key (ordering only), if part of it.
    pub key_position: Option<usize>,
    /// Part of the replica identity (what an old tuple carries).
    pub in_identity: bool,
    /// `pg_attribute.attnum`: a column keeps it when renamed (0: unknown).
    pub attnum: i16,
    /// Names the column had in events still to merge (renamed since), in
    /// position order: the merge reads an event's value under the name its
    /// position had.
    pub former_names: Vec<FormerName>,
}

/// A name a renamed column had: events positioned before `until` (commit
/// LSN, LSN: the first shape record with the next name) carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormerName {
    pub name: String,
    pub until: (Lsn, Lsn),
}

impl SourceTable {
    /// The key columns, in key order.
    pub fn key_columns(&self) -> Vec<&SourceColumn> {
        let mut key: Vec<&SourceColumn> = self
            .columns
            .iter()
            .filter(|c| c.key_position.is_some())
            .collect();
        key.sort_by_key(|c| c.key_position);
        key
    }

    /// The key is every column: its values may be NULL, so the merge
    /// compares keys NULL-safe.
    pub fn nullable_key(&self) -> bool {
        self.key == KeyKind::AllColumns
    }

    /// `schema.table` verbatim.
    pub fn qualified_name(&self) -> String {
        self.name.plain()
    }

    /// The shape events are encoded with (the stream gets the same from
    /// Relation messages).
    pub fn relation(&self) -> Relation {
        let indices = |keep: &dyn Fn(&SourceColumn) -> bool| -> Vec<usize> {
            let picked = self.columns.iter().enumerate().filter(|(_, c)| keep(c));
            picked.map(|(i, _)| i).collect()
        };
        Relation {
            id: self.oid,
            schema: self.name.schema.clone(),
            name: self.name.name.clone(),
            columns: self
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    type_oid: c.declared_oid,
                })
                .collect(),
            key_indices: indices(&|c| c.in_identity),
            partition_indices: match self.key {
                KeyKind::AllColumns => Vec::new(),
                _ => indices(&|c| c.key_position.is_some()),
            },
        }
    }
}

/// A schema's tables for a `schema.*` entry: not partitions (their root
/// stands for them), not kinesync's own (the resync request table, whose
/// comment starts `kinesync:`).
const TABLES_OF_SCHEMA: &str =
    "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
     AND coalesce(obj_description(c.oid, 'pg_class'), '') NOT LIKE 'kinesync:%' ORDER BY 1";

const TABLE: &str =
    "SELECT c.oid, c.relreplident::text, has_table_privilege(c.oid, 'SELECT'), current_user::text \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')";

/// Per column: name, type text, declared type, base type and its category,
/// position in the primary key and in the replica identity index. Generated
/// columns only where pgoutput sends them: stored ones on 18 and later (the
/// producer's publication sets `publish_generated_columns = stored`), never
/// virtual ones.
const COLUMNS: &str = "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.atttypid, \
            CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END, \
            CASE WHEN t.typtype = 'd' THEN bt.typcategory ELSE t.typcategory END, \
            (SELECT array_position(i.indkey::int2[], a.attnum) FROM pg_index i \
              WHERE i.indrelid = a.attrelid AND i.indisprimary), \
            (SELECT array_position(i.indkey::int2[], a.attnum) FROM pg_index i \
              WHERE i.indrelid = a.attrelid AND i.indisreplident), \
            a.attnum \
     FROM pg_attribute a \
     JOIN pg_type t ON t.oid = a.atttypid \
     LEFT JOIN pg_type bt ON bt.oid = t.typbasetype \
     WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
       AND (a.attgenerated = '' OR (a.attgenerated = 's' AND current_setting('server_version_num')::int >= 180000)) \
     ORDER BY a.attnum";

/// The configured tables, `schema.*` entries expanded, in configuration
/// order (a `schema.*` in name order), without repeats. Names are not
/// checked to exist.
pub async fn table_names(
    client: &Client,
    patterns: &[String],
) -> Result<Vec<TableName>, TablesError> {
    let mut names: Vec<TableName> = Vec::new();
    let mut seen = BTreeSet::new();
    for pattern in patterns {
        let entry = parse_table_entry(pattern)?;
        let expanded = match entry.table {
            Some(table) => vec![TableName::new(&entry.schema, &table)],
            None => schema_tables(client, &entry.schema, pattern).await?,
        };
        for name in expanded {
            if seen.insert(name.clone()) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

async fn schema_tables(
    client: &Client,
    schema: &str,
    pattern: &str,
) -> Result<Vec<TableName>, TablesError> {
    let rows = client
        .query(TABLES_OF_SCHEMA, &[&schema])
        .await
        .map_err(TablesError::query("listing the tables of a schema"))?;
    if rows.is_empty() {
        return Err(TablesError::NoTablesMatched {
            pattern: pattern.to_owned(),
        });
    }
    Ok(rows
        .iter()
        .map(|r| TableName::new(schema, &r.get::<_, String>(0)))
        .collect())
}

/// Every configured table, read and checked (exists, can be keyed, a
/// keyless one only as `keyless` allows).
pub async fn resolve(
    client: &Client,
    patterns: &[String],
    keyless: KeylessTables,
) -> Result<Vec<SourceTable>, TablesError> {
    let mut tables = Vec::new();
    for name in table_names(client, patterns).await? {
        tables.push(admit(describe(client, &name).await?.0, keyless)?);
    }
    Ok(tables)
}

/// `table`, unless it is keyed by every column (`REPLICA IDENTITY FULL`
/// without a key) and `keyless` refuses such tables.
pub fn admit(table: SourceTable, keyless: KeylessTables) -> Result<SourceTable, TablesError> {
    if table.key == KeyKind::AllColumns && keyless == KeylessTables::Refuse {
        return Err(TablesError::Keyless { table: table.name });
    }
    Ok(table)
}

/// The producer's view: every configured table as [`Relation`], also
/// checked to be readable by the role (before any slot exists: a COPY
/// refused halfway through the snapshot would leave a slot and half a
/// snapshot behind).
pub async fn resolve_tables(
    client: &Client,
    patterns: &[String],
    keyless: KeylessTables,
) -> Result<Vec<Relation>, TablesError> {
    let mut tables = Vec::new();
    for name in table_names(client, patterns).await? {
        let (table, access) = describe(client, &name).await?;
        let table = admit(table, keyless)?;
        if !access.can_select {
            return Err(TablesError::NoSelect {
                role: display_ident(&access.role),
                table: name,
            });
        }
        tables.push(table.relation());
    }
    Ok(tables)
}

/// Whether the connected role may read a table.
pub struct Access {
    pub can_select: bool,
    pub role: String,
}

/// One table's columns and key, and the role's access to it.
pub async fn describe(
    client: &Client,
    name: &TableName,
) -> Result<(SourceTable, Access), TablesError> {
    let row = client
        .query_opt(TABLE, &[&name.schema, &name.name])
        .await
        .map_err(TablesError::query("looking up a table"))?
        .ok_or_else(|| TablesError::NotFound {
            table: name.clone(),
        })?;
    let oid: u32 = row.get(0);
    let replica_identity = row
        .get::<_, String>(1)
        .bytes()
        .next()
        .and_then(ReplicaIdentity::from_byte)
        .unwrap_or(ReplicaIdentity::Nothing);
    let access = Access {
        can_select: row.get(2),
        role: row.get(3),
    };
    let rows = client
        .query(COLUMNS, &[&oid])
        .await
        .map_err(TablesError::query("reading table columns"))?;
    let table = keyed(name, oid, replica_identity, &rows)?;
    Ok((table, access))
}

/// The table with its key decided (see the module doc).
fn keyed(
    name: &TableName,
    oid: u32,
    replica_identity: ReplicaIdentity,
    rows: &[Row],
) -> Result<SourceTable, TablesError> {
    let primary: Vec<Option<i32>> = rows.iter().map(|r| r.get(5)).collect();
    let index: Vec<Option<i32>> = rows.iter().map(|r| r.get(6)).collect();
    let has = |positions: &[Option<i32>]| positions.iter().any(Option::is_some);
    let (identity, key) = match replica_identity {
        ReplicaIdentity::Nothing => {
            return Err(TablesError::IdentityNothing {
                table: name.clone(),
            })
        }
        ReplicaIdentity::Default if has(&primary) => (primary.clone(), KeyKind::PrimaryKey),
        ReplicaIdentity::Index if has(&index) => (index, KeyKind::IdentityIndex),
        ReplicaIdentity::Full if has(&primary) => (all(rows.len()), KeyKind::PrimaryKey),
        ReplicaIdentity::Full => (all(rows.len()), KeyKind::AllColumns),
        ReplicaIdentity::Default | ReplicaIdentity::Index => {
            return Err(TablesError::NoKey {
                table: name.clone(),
            })
        }
    };
    let key_positions = match key {
        KeyKind::PrimaryKey => primary,
        _ => identity.clone(),
    };
    let columns = rows
        .iter()
        .zip(key_positions.iter().zip(&identity))
        .map(|(row, (key, ident))| SourceColumn {
            name: row.get(0),
            type_name: row.get(1),
            declared_oid: row.get(2),
            type_oid: row.get(3),
            category: row.get::<_, i8>(4) as u8 as char,
            key_position: key.map(|p| p as usize),
            in_identity: ident.is_some(),
            attnum: row.get(7),
            former_names: Vec::new(),
        })
        .collect();
    Ok(SourceTable {
        oid,
        name: name.clone(),
        replica_identity,
        columns,
        key,
    })
}

/// Every column as a key position (REPLICA IDENTITY FULL).
fn all(columns: usize) -> Vec<Option<i32>> {
    (0..columns).map(|i| Some(i as i32)).collect()
}

/// Domain type OID -> base type OID (following domains over domains), so
/// domain columns encode like their base type.
pub async fn domain_base_types(client: &Client) -> Result<HashMap<u32, u32>, TablesError> {
    let rows = client
        .query(
            "SELECT oid, typbasetype FROM pg_type WHERE typtype = 'd'",
            &[],
        )
        .await
        .map_err(TablesError::query("reading domain types"))?;
    let direct: HashMap<u32, u32> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut resolved = HashMap::with_capacity(direct.len());
    for (&domain, &base) in &direct {
        let mut base = base;
        for _ in 0..16 {
            match direct.get(&base) {
                Some(&next) => base = next,
                None => break,
            }
        }
        resolved.insert(domain, base);
    }
    Ok(resolved)
}
