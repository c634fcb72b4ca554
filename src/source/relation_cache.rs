//! The relations (table shapes) a replication connection has described.
//!
//! pgoutput sends a Relation message before the first change of a table on a
//! connection and again after each schema change; changes then refer to the
//! table by OID only. This cache maps those OIDs to [`Relation`], which is also
//! the shape the snapshot builds from the catalog, so both paths encode rows
//! the same way (same column order, same key columns, same partition key).
//! It is per connection: a reconnect starts empty and the server re-sends.

use std::collections::HashMap;
use std::sync::Arc;

use super::pgoutput::{RelationBody, ReplicaIdentity};
use crate::sql::TableName;

/// One column: its name (verbatim) and type OID (decides the JSON encoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_oid: u32,
}

/// A table's shape as events need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: u32,
    pub schema: String,
    pub name: String,
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the replica identity columns, in column
    /// order: what a `K` old tuple carries (the `before` of its event).
    pub key_indices: Vec<usize>,
    /// Indexes into `columns` of the row's stable key, in column order: the
    /// primary key, else the replica identity index; empty for a table with
    /// neither (REPLICA IDENTITY FULL only). The partition key is the table
    /// and these values, so one row's events stay on one shard.
    pub partition_indices: Vec<usize>,
}

impl Relation {
    /// `schema.table`, the prefix of partition keys and of error messages.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    pub fn from_body(body: RelationBody) -> Relation {
        let key_indices = key_indices_of(&body);
        // Under FULL every column is flagged: not a key. The catalog's
        // primary key replaces this in `RelationCache::insert`.
        let partition_indices = match body.replica_identity {
            ReplicaIdentity::Full => Vec::new(),
            _ => key_indices.clone(),
        };
        Relation {
            id: body.id,
            schema: body.schema,
            name: body.name,
            columns: body
                .columns
                .into_iter()
                .map(|c| Column {
                    name: c.name,
                    type_oid: c.type_oid,
                })
                .collect(),
            key_indices,
            partition_indices,
        }
    }

    /// Indexes of the named columns, if every one exists.
    pub fn indices_of(&self, names: &[String]) -> Option<Vec<usize>> {
        let mut indices: Vec<usize> = names
            .iter()
            .map(|n| self.columns.iter().position(|c| &c.name == n))
            .collect::<Option<_>>()?;
        indices.sort_unstable();
        Some(indices)
    }

    /// Names of the partition key columns.
    pub fn partition_columns(&self) -> Vec<String> {
        self.partition_indices
            .iter()
            .map(|&i| self.columns[i].name.clone())
            .collect()
    }
}

fn key_indices_of(body: &RelationBody) -> Vec<usize> {
    body.columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_key)
        .map(|(i, _)| i)
        .collect()
}

/// OID -> shape, for the lifetime of one replication connection. Entries
/// are `Arc` so an event being encoded never holds the cache borrowed.
#[derive(Debug, Default)]
pub struct RelationCache {
    relations: HashMap<u32, Arc<Relation>>,
    /// Domain and other type OIDs resolved to the base type to encode as.
    type_aliases: Arc<HashMap<u32, u32>>,
    /// (schema, table) -> the partition key columns the catalog gave at
    /// start (the primary key, which Relation messages do not flag under
    /// REPLICA IDENTITY FULL or USING INDEX).
    partition_keys: HashMap<TableName, Vec<String>>,
}

impl RelationCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache that encodes columns of the `aliases` keys (domain OIDs, from
    /// the catalog) as their base types.
    pub fn with_type_aliases(aliases: Arc<HashMap<u32, u32>>) -> Self {
        RelationCache {
            relations: HashMap::new(),
            type_aliases: aliases,
            partition_keys: HashMap::new(),
        }
    }

    /// Take each table's partition key columns from `tables` (the catalog's
    /// shapes), by name, when a Relation message describes that table.
    pub fn with_partition_keys(mut self, tables: &[Relation]) -> Self {
        self.partition_keys = tables
            .iter()
            .map(|t| (TableName::new(&t.schema, &t.name), t.partition_columns()))
            .collect();
        self
    }

    /// Take `table`'s partition key columns from now on (a table streamed
    /// since it was created under a followed schema).
    pub fn add_partition_key(&mut self, table: TableName, columns: Vec<String>) {
        self.partition_keys.insert(table, columns);
    }

    /// Store (or replace, after a schema change) a relation.
    pub fn insert(&mut self, body: RelationBody) -> Arc<Relation> {
        let mut rel = Relation::from_body(body);
        for col in &mut rel.columns {
            if let Some(base) = self.type_aliases.get(&col.type_oid) {
                col.type_oid = *base;
            }
        }
        // A key column renamed or dropped since start: keep the message's.
        if let Some(indices) = self
            .partition_keys
            .get(&TableName::new(&rel.schema, &rel.name))
            .and_then(|names| rel.indices_of(names))
        {
            rel.partition_indices = indices;
        }
        let rel = Arc::new(rel);
        self.relations.insert(rel.id, Arc::clone(&rel));
        rel
    }

    pub fn get(&self, id: u32) -> Option<Arc<Relation>> {
        self.relations.get(&id).cloned()
    }

    pub fn clear(&mut self) {
        self.relations.clear();
    }
}

#[cfg(test)]
impl Relation {
    /// A test table `schema.name` of `(name, type OID)` columns, keyed by the first.
    pub(crate) fn keyed_by_first(schema: &str, name: &str, columns: &[(&str, u32)]) -> Relation {
        Relation {
            id: 1,
            schema: schema.into(),
            name: name.into(),
            columns: columns
                .iter()
                .map(|&(name, type_oid)| Column {
                    name: name.into(),
                    type_oid,
                })
                .collect(),
            key_indices: vec![0],
            partition_indices: vec![0],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::pgoutput::{decode, testing, LogicalMessage};

    #[test]
    fn key_columns_and_replacement() {
        let mut cache = RelationCache::new();
        let LogicalMessage::Relation(body) = decode(testing::relation(
            5,
            "s",
            "t",
            b'd',
            &[(false, "a", 25), (true, "id", 23), (true, "k2", 20)],
        ))
        .unwrap() else {
            panic!()
        };
        let rel = cache.insert(body);
        assert_eq!(rel.key_indices, vec![1, 2]);
        assert_eq!(rel.qualified_name(), "s.t");
        let LogicalMessage::Relation(body) = decode(testing::relation(
            5,
            "s",
            "t",
            b'f',
            &[(true, "a", 25), (true, "id", 23)],
        ))
        .unwrap() else {
            panic!()
        };
        cache.insert(body);
        assert_eq!(cache.get(5).unwrap().columns.len(), 2);
        assert!(cache.get(6).is_none());
    }

    #[test]
    fn domain_types_resolve_to_base() {
        let mut cache = RelationCache::with_type_aliases(Arc::new(HashMap::from([(90000, 23)])));
        let LogicalMessage::Relation(body) =
            decode(testing::relation(1, "s", "t", b'd', &[(true, "id", 90000)])).unwrap()
        else {
            panic!()
        };
        assert_eq!(cache.insert(body).columns[0].type_oid, 23);
    }
}
