//! Which tables are mirrored, and their shapes from the catalog.
//!
//! Expands `schema.*` entries of `source.tables`, checks every table exists
//! and has a replica identity that lets updates and deletes be keyed (a
//! primary key, a replica identity index, or `REPLICA IDENTITY FULL`), and
//! reads the column list and key columns the snapshot needs. The stream gets
//! the same information from Relation messages; both use
//! [`Relation`](super::relation_cache::Relation).

use std::collections::{BTreeSet, HashMap};

use tokio_postgres::Client;

use super::error::SourceError;
use super::pgoutput::ReplicaIdentity;
use super::relation_cache::{Column, Relation};
use crate::sql::display_ident;

/// The tables named by `patterns`, in config order (a `schema.*` expands in
/// name order), deduplicated.
pub async fn resolve_tables(
    client: &Client,
    patterns: &[String],
) -> Result<Vec<Relation>, SourceError> {
    let mut names: Vec<(String, String)> = Vec::new();
    let mut seen = BTreeSet::new();
    for pattern in patterns {
        let entry = crate::sql::parse_table_entry(pattern)?;
        let schema = entry.schema.as_str();
        let expanded = if let Some(table) = entry.table {
            vec![(schema.to_owned(), table)]
        } else {
            let rows = client
                .query(
                    "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1",
                    &[&schema],
                )
                .await
                .map_err(|e| SourceError::sql("listing the tables of a schema", &e))?;
            if rows.is_empty() {
                return Err(SourceError::NoTablesMatched {
                    pattern: pattern.clone(),
                });
            }
            rows.iter()
                .map(|r| (schema.to_owned(), r.get::<_, String>(0)))
                .collect()
        };
        for name in expanded {
            if seen.insert(name.clone()) {
                names.push(name);
            }
        }
    }
    let mut tables = Vec::with_capacity(names.len());
    for (schema, name) in names {
        tables.push(describe_table(client, &schema, &name).await?);
    }
    Ok(tables)
}

async fn describe_table(
    client: &Client,
    schema: &str,
    name: &str,
) -> Result<Relation, SourceError> {
    let qualified = crate::sql::display_qualified(schema, name);
    let row = client
        .query_opt(
            "SELECT c.oid, c.relreplident::text, has_table_privilege(c.oid, 'SELECT'), current_user::text \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
            &[&schema, &name],
        )
        .await
        .map_err(|e| SourceError::sql("looking up a table", &e))?
        .ok_or_else(|| SourceError::TableNotFound { table: qualified.clone() })?;
    let oid: u32 = row.get(0);
    let ident: String = row.get(1);
    // Checked before any slot exists: a COPY refused halfway through the
    // snapshot would leave a slot and half a snapshot behind.
    if !row.get::<_, bool>(2) {
        return Err(SourceError::NoSelect {
            role: display_ident(&row.get::<_, String>(3)),
            table: format!("{}.{}", display_ident(schema), display_ident(name)),
            schema: display_ident(schema),
        });
    }
    let replica_identity = ident
        .bytes()
        .next()
        .and_then(ReplicaIdentity::from_byte)
        .ok_or_else(|| SourceError::NoReplicaIdentity {
            table: qualified.clone(),
        })?;

    let column_rows = client
        .query(
            "SELECT a.attname::text, a.atttypid, a.attnum FROM pg_attribute a \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' \
             ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(|e| SourceError::sql("reading table columns", &e))?;
    let columns: Vec<Column> = column_rows
        .iter()
        .map(|r| Column {
            name: r.get(0),
            type_oid: r.get(1),
        })
        .collect();
    let attnums: Vec<i16> = column_rows.iter().map(|r| r.get(2)).collect();

    let positions = |attnums_wanted: &BTreeSet<i16>| -> Vec<usize> {
        attnums
            .iter()
            .enumerate()
            .filter(|(_, a)| attnums_wanted.contains(a))
            .map(|(i, _)| i)
            .collect()
    };
    let primary = positions(&index_columns(client, oid, IndexKind::Primary).await?);
    let key_indices: Vec<usize> = match replica_identity {
        ReplicaIdentity::Full => (0..columns.len()).collect(),
        ReplicaIdentity::Nothing => Vec::new(),
        ReplicaIdentity::Default => primary.clone(),
        ReplicaIdentity::Index => {
            positions(&index_columns(client, oid, IndexKind::ReplicaIdentity).await?)
        }
    };
    // The row's stable key: the primary key, else the replica identity
    // index; none for FULL without a primary key.
    let partition_indices = match (primary.is_empty(), replica_identity) {
        (false, _) => primary,
        (true, ReplicaIdentity::Index) => key_indices.clone(),
        (true, _) => Vec::new(),
    };
    if key_indices.is_empty() {
        return Err(SourceError::NoReplicaIdentity { table: qualified });
    }
    Ok(Relation {
        id: oid,
        schema: schema.to_owned(),
        name: name.to_owned(),
        columns,
        key_indices,
        partition_indices,
    })
}

#[derive(Clone, Copy)]
enum IndexKind {
    Primary,
    ReplicaIdentity,
}

/// The attnums of the table's primary key or replica identity index.
async fn index_columns(
    client: &Client,
    oid: u32,
    kind: IndexKind,
) -> Result<BTreeSet<i16>, SourceError> {
    let primary = matches!(kind, IndexKind::Primary);
    let rows = client
        .query(
            "SELECT k.attnum::int2 FROM pg_index i, unnest(i.indkey::int2[]) AS k(attnum) \
             WHERE i.indrelid = $1 AND (CASE WHEN $2 THEN i.indisprimary ELSE i.indisreplident END)",
            &[&oid, &primary],
        )
        .await
        .map_err(|e| SourceError::sql("reading the key columns", &e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Domain type OID -> base type OID (following domains over domains), so
/// domain columns encode like their base type.
pub async fn domain_base_types(client: &Client) -> Result<HashMap<u32, u32>, SourceError> {
    let rows = client
        .query(
            "SELECT oid, typbasetype FROM pg_type WHERE typtype = 'd'",
            &[],
        )
        .await
        .map_err(|e| SourceError::sql("reading domain types", &e))?;
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
