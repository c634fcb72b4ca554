//! The shape record: a table's columns, types and key as the changes after
//! it were written with, carried in the stream so that the merge never needs
//! the source database (docs/events.md, "Shape records").
//!
//! The producer writes one before a table's first change of each session
//! (pgoutput sends a Relation message then) and after each schema change
//! (pgoutput sends a new Relation message before the next change), and one
//! per table before the snapshot's rows. Its position `(commit_lsn, lsn)` is
//! ordered like the changes' positions, so "the shape a change was written
//! with" is the newest shape at or before it, whatever order the records
//! arrived in (a shape record goes to the table's own shard, changes to the
//! shards of their rows). The envelope is Debezium-shaped with `op = "s"`;
//! `source` carries no `schema`/`table` (consumers that group changes by
//! them see no table), the table is in `shape`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{bounded_partition_key, now_ms, push_json_str, EncodedEvent, EventContext};
use crate::lsn::Lsn;
use crate::source::pgoutput::ReplicaIdentity;
use crate::source::tables::{KeyKind, SourceColumn, SourceTable};
use crate::sql::TableName;

/// `op` of a shape record.
pub const SHAPE_OP: &str = "s";

/// Where a shape sits among the changes: compared like their
/// `(source.commit_lsn, source.lsn)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    pub commit_lsn: Lsn,
    pub lsn: Lsn,
}

/// One column as the changes after the shape carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShapeColumn {
    pub name: String,
    /// `format_type(oid, typmod)`: `numeric(12,2)`, `character varying(40)`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The declared type's OID (a domain's own).
    pub oid: u32,
    /// The type encoded and mapped by: for a domain, its base type.
    pub base_oid: u32,
    /// `pg_type.typcategory` of the base type (`A` array, `N` numeric, ...).
    pub category: String,
    /// Position in the row's stable key (1-based, key order), if part of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<usize>,
    /// Part of the replica identity (what an old tuple carries).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub identity: bool,
    /// A column added with a non-volatile DEFAULT: the value (encoded as in
    /// `after`) that rows older than the column have, which no change
    /// carries (docs/events.md, "Shape records").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<serde_json::Value>,
    /// `pg_attribute.attnum`, which a rename keeps: the merge tells a
    /// renamed column from a dropped and an added one by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attnum: Option<i16>,
}

/// A table's shape: what a shape record carries in `shape`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub schema: String,
    pub table: String,
    /// The table's OID.
    pub oid: u32,
    /// `d` default, `f` full, `i` index (`n` is refused by the resolver).
    pub replica_identity: String,
    /// `primary_key`, `identity_index` or `all_columns` (see [`KeyKind`]).
    pub key: String,
    pub columns: Vec<ShapeColumn>,
}

/// A shape that does not describe a usable table (a corrupt or foreign record).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shape of {table}: {problem}")]
pub struct BadShape {
    pub table: String,
    pub problem: String,
}

/// `shape.key` of a key kind.
pub fn shape_key_code(key: KeyKind) -> &'static str {
    match key {
        KeyKind::PrimaryKey => "primary_key",
        KeyKind::IdentityIndex => "identity_index",
        KeyKind::AllColumns => "all_columns",
    }
}

/// `shape.replica_identity` of a replica identity.
pub fn shape_identity_code(identity: ReplicaIdentity) -> &'static str {
    match identity {
        ReplicaIdentity::Default => "d",
        ReplicaIdentity::Nothing => "n",
        ReplicaIdentity::Full => "f",
        ReplicaIdentity::Index => "i",
    }
}

impl Shape {
    /// The shape of a table as the resolver read it from the catalog.
    pub fn of_table(table: &SourceTable) -> Shape {
        let mut key_order: Vec<(usize, usize)> = table
            .columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.key_position.map(|p| (p, i)))
            .collect();
        key_order.sort_unstable();
        let rank = |i: usize| key_order.iter().position(|&(_, c)| c == i).map(|r| r + 1);
        Shape {
            schema: table.name.schema.clone(),
            table: table.name.name.clone(),
            oid: table.oid,
            replica_identity: shape_identity_code(table.replica_identity).to_owned(),
            key: shape_key_code(table.key).to_owned(),
            columns: table
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| ShapeColumn {
                    name: c.name.clone(),
                    type_name: c.type_name.clone(),
                    oid: c.declared_oid,
                    base_oid: c.type_oid,
                    category: c.category.to_string(),
                    key: rank(i),
                    identity: c.in_identity,
                    // The snapshot reads every row's value: nothing is missing.
                    missing: None,
                    attnum: (c.attnum > 0).then_some(c.attnum),
                })
                .collect(),
        }
    }

    pub fn table_name(&self) -> TableName {
        TableName::new(&self.schema, &self.table)
    }

    /// The table the merge maps to its mirror.
    pub fn to_table(&self) -> Result<SourceTable, BadShape> {
        let bad = |problem: &str| BadShape {
            table: self.table_name().plain(),
            problem: problem.to_owned(),
        };
        let key = match self.key.as_str() {
            "primary_key" => KeyKind::PrimaryKey,
            "identity_index" => KeyKind::IdentityIndex,
            "all_columns" => KeyKind::AllColumns,
            _ => return Err(bad("unknown key kind")),
        };
        let replica_identity = self
            .replica_identity
            .bytes()
            .next()
            .and_then(ReplicaIdentity::from_byte)
            .ok_or_else(|| bad("unknown replica identity"))?;
        let columns: Vec<SourceColumn> = self
            .columns
            .iter()
            .map(|c| SourceColumn {
                name: c.name.clone(),
                type_name: c.type_name.clone(),
                declared_oid: c.oid,
                type_oid: c.base_oid,
                category: c.category.chars().next().unwrap_or('X'),
                key_position: c.key,
                in_identity: c.identity,
                attnum: c.attnum.unwrap_or(0),
                former_names: Vec::new(),
            })
            .collect();
        if columns.is_empty() || !columns.iter().any(|c| c.key_position.is_some()) {
            return Err(bad("no columns or no key columns"));
        }
        Ok(SourceTable {
            oid: self.oid,
            name: self.table_name(),
            replica_identity,
            columns,
            key,
        })
    }
}

/// A shape and where it applies from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionedShape {
    pub position: Position,
    pub shape: Shape,
}

/// The newest shape of each table, by position (never by arrival order).
pub fn newest_shapes(
    shapes: impl IntoIterator<Item = PositionedShape>,
) -> BTreeMap<TableName, PositionedShape> {
    let mut newest: BTreeMap<TableName, PositionedShape> = BTreeMap::new();
    for shape in shapes {
        match newest.get(&shape.shape.table_name()) {
            Some(known) if known.position >= shape.position => {}
            _ => {
                newest.insert(shape.shape.table_name(), shape);
            }
        }
    }
    newest
}

/// The shape record's Kinesis record: partition key `schema.table` (the
/// table's own key, as a truncate's), `source` without schema and table.
pub fn encode_shape(
    ctx: &EventContext,
    shape: &Shape,
    at: Position,
    txid: Option<u32>,
    commit_time_ms: i64,
) -> EncodedEvent {
    let table = format!("{}.{}", shape.schema, shape.table);
    // Serializing plain strings and numbers cannot fail.
    let body = serde_json::to_string(shape).unwrap_or_default();
    let mut out = String::with_capacity(body.len() + 400);
    let _ = write!(
        out,
        "{{\"before\":null,\"after\":null,\"shape\":{body},\"op\":\"{SHAPE_OP}\",\"ts_ms\":{},\"source\":{{",
        now_ms()
    );
    let _ = write!(
        out,
        "\"version\":\"{}\",\"connector\":\"postgresql\",\"name\":",
        env!("CARGO_PKG_VERSION")
    );
    push_json_str(&mut out, &ctx.slot);
    let _ = write!(out, ",\"ts_ms\":{commit_time_ms},\"db\":");
    push_json_str(&mut out, &ctx.database);
    let txid = txid.map_or_else(|| "null".to_owned(), |x| x.to_string());
    let _ = write!(
        out,
        ",\"txId\":{txid},\"lsn\":{},\"commit_lsn\":{}}}}}",
        at.lsn.0, at.commit_lsn.0
    );
    EncodedEvent {
        key: String::new(),
        partition_key: bounded_partition_key(table.clone()),
        table,
        data: out.into_bytes(),
        // A table's shape records keep their order among themselves under
        // any kinesis.ordering (they share the table's partition key).
        needs_key_order: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(columns: &[(&str, &str, u32)]) -> Shape {
        Shape {
            schema: "public".into(),
            table: "orders".into(),
            oid: 16384,
            replica_identity: "d".into(),
            key: "primary_key".into(),
            columns: columns
                .iter()
                .enumerate()
                .map(|(i, &(name, type_name, oid))| ShapeColumn {
                    name: name.into(),
                    type_name: type_name.into(),
                    oid,
                    base_oid: oid,
                    category: "N".into(),
                    key: (i == 0).then_some(1),
                    identity: i == 0,
                    missing: None,
                    attnum: None,
                })
                .collect(),
        }
    }

    fn at(commit_lsn: u64, lsn: u64, shape: Shape) -> PositionedShape {
        PositionedShape {
            position: Position {
                commit_lsn: Lsn(commit_lsn),
                lsn: Lsn(lsn),
            },
            shape,
        }
    }

    #[test]
    fn the_newest_shape_by_position_wins_whatever_the_arrival_order() {
        let old = shape(&[("id", "integer", 23)]);
        let mid = shape(&[("id", "integer", 23), ("n", "integer", 23)]);
        let new = shape(&[("id", "bigint", 20), ("n", "bigint", 20)]);
        let records = [at(200, 10, new.clone()), at(100, 5, old), at(200, 9, mid)];
        for order in [[0, 1, 2], [1, 2, 0], [2, 0, 1], [1, 0, 2]] {
            let newest = newest_shapes(order.iter().map(|&i| records[i].clone()));
            let got = &newest[&TableName::new("public", "orders")];
            assert_eq!(got.shape, new, "order {order:?}");
            assert_eq!(got.position.lsn, Lsn(10));
        }
    }

    #[test]
    fn a_shape_record_parses_back_into_the_table_it_describes() {
        let ctx = EventContext {
            slot: "kinesync".into(),
            database: "app".into(),
        };
        let original = shape(&[
            ("id", "integer", 23),
            ("note", "character varying(10)", 1043),
        ]);
        let position = Position {
            commit_lsn: Lsn(77),
            lsn: Lsn(70),
        };
        let record = encode_shape(&ctx, &original, position, Some(9), 1);
        assert_eq!(record.partition_key, "public.orders");
        let json: serde_json::Value = serde_json::from_slice(&record.data).unwrap();
        assert_eq!(json["op"], "s");
        assert_eq!(json["source"]["commit_lsn"], 77);
        assert_eq!(json["source"]["lsn"], 70);
        assert!(json["source"].get("table").is_none());
        let parsed: Shape = serde_json::from_value(json["shape"].clone()).unwrap();
        assert_eq!(parsed, original);
        let table = parsed.to_table().unwrap();
        assert_eq!(table.key, KeyKind::PrimaryKey);
        assert_eq!(table.key_columns()[0].name, "id");
        assert_eq!(table.columns[1].type_name, "character varying(10)");
        assert_eq!(Shape::of_table(&table), original);
    }

    #[test]
    fn a_shape_without_a_key_is_refused() {
        let mut keyless = shape(&[("id", "integer", 23)]);
        keyless.columns[0].key = None;
        assert!(keyless.to_table().is_err());
        let mut odd = shape(&[("id", "integer", 23)]);
        odd.key = "whatever".into();
        assert!(odd.to_table().is_err());
    }

    #[test]
    fn a_wide_shape_fits_a_record() {
        let columns: Vec<(String, &str, u32)> = (0..1600)
            .map(|i| (format!("{:0>63}", i), "character varying(10485760)", 1043))
            .collect();
        let refs: Vec<(&str, &str, u32)> = columns
            .iter()
            .map(|(n, t, o)| (n.as_str(), *t, *o))
            .collect();
        let ctx = EventContext {
            slot: "s".into(),
            database: "d".into(),
        };
        let record = encode_shape(&ctx, &shape(&refs), Position::default(), None, 0);
        // PostgreSQL's widest table, with 63-byte names: far below 1 MiB.
        assert!(record.size() < 300 * 1024, "{} bytes", record.size());
    }
}
