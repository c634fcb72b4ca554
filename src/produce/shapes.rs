//! Shape records, the producer's half: which shape each configured table's
//! changes are written with, put into the stream before them (the record is
//! [`crate::event::Shape`], its contract docs/events.md).
//!
//! Streaming: pgoutput sends a Relation message before a table's first
//! change of a session and again after each schema change. Its columns,
//! type OIDs and type modifiers are the truth for the changes that follow
//! (the catalog may be newer when the producer is behind), so the shape is
//! built from it: type names by `format_type(oid, typmod)` on a catalog
//! connection of our own (cached by (oid, typmod), reopened once when it
//! broke), the key as the [`RelationCache`] resolved it for partition keys.
//! Looking types up needs a round trip, so it happens before the message
//! is handled ([`StreamShapes::prepare`]); the record is queued when the
//! message is handled ([`StreamShapes::emit`]), before any change after it.
//! An unchanged shape (a Relation message re-sent for another reason) is
//! not queued again within a session.
//!
//! Snapshot: one record per table from the resolver, at the snapshot's own
//! position, before the table's first row.

use std::collections::HashMap;

use pgwire_replication::ReplicationEvent;
use tokio_postgres::Client;

use super::delivery::Delivery;
use super::error::ProduceError;
use crate::encode::encode_text;
use crate::event::{
    encode_shape, shape_identity_code, shape_key_code, EventContext, Position, Shape, ShapeColumn,
};
use crate::lsn::Lsn;
use crate::sink::RecordWriter;
use crate::source::pgoutput::{decode, LogicalMessage, RelationBody, ReplicaIdentity};
use crate::source::relation_cache::Relation;
use crate::source::replication::connect_sql;
use crate::source::tables::{KeyKind, SourceTable, TablesError};
use crate::sql::TableName;

/// One type as a shape names it.
#[derive(Debug, Clone)]
struct TypeInfo {
    name: String,
    base_oid: u32,
    category: String,
}

/// One column's catalog facts (see [`COLUMN_FACTS`]).
#[derive(Debug, Clone)]
pub(super) struct ColumnFacts {
    attnum: i16,
    /// The kept default of a column added with a non-volatile DEFAULT.
    pub(super) missing: Option<String>,
    /// The column has a default (`atthasdef`) or is an identity.
    has_default: bool,
}

impl ColumnFacts {
    /// A default but no kept value: if the column is new, PostgreSQL
    /// filled its rows by a rewrite, without change events.
    fn filled_by_rewrite(&self) -> bool {
        self.has_default && self.missing.is_none()
    }
}

/// [`COLUMN_FACTS`]' rows, by column name.
pub(super) fn column_facts(rows: &[tokio_postgres::Row]) -> HashMap<String, ColumnFacts> {
    rows.iter()
        .map(|row| {
            let facts = ColumnFacts {
                attnum: row.get(1),
                missing: row.get(2),
                has_default: row.get(3),
            };
            (row.get(0), facts)
        })
        .collect()
}

/// A Relation message's columns with their types looked up, waiting for
/// the message to be handled.
#[derive(Debug, Clone)]
struct Described {
    identity: ReplicaIdentity,
    /// (declared OID, type) per column, in column order.
    types: Vec<(u32, TypeInfo)>,
    /// Per column name, its attnum and the text of the value rows older
    /// than the column have, if kept (see [`COLUMN_FACTS`]).
    facts: HashMap<String, ColumnFacts>,
}

const TYPE_INFO: &str = "SELECT format_type(t.oid, $2::int4), \
       CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END, \
       (CASE WHEN t.typtype = 'd' THEN bt.typcategory ELSE t.typcategory END)::text \
     FROM pg_type t LEFT JOIN pg_type bt ON bt.oid = t.typbasetype WHERE t.oid = $1";

/// Per column: its attnum, which a rename keeps (the merge tells a rename
/// from a drop and an add by it), and, for a column added with a
/// non-volatile DEFAULT, the value every older row reads: PostgreSQL does
/// not rewrite the table but keeps the default once (`attmissingval`, a
/// one-element array), and pgoutput sends those rows nothing, so the shape
/// carries it for the merge to fill them in. The array's text form, read
/// back as `text[]`, gives the element's own text output (quotes and
/// escapes undone). By name, from today's catalog: a column renamed again
/// since the Relation message has neither.
///
/// A column with a default but no kept one, new since the previous shape,
/// was added with a volatile default (`random()`, `clock_timestamp()`,
/// serial, identity): PostgreSQL rewrote the table with a value per row and
/// sent no change, so the table is re-synced (see [`StreamShapes::emit`]).
pub(super) const COLUMN_FACTS: &str = "SELECT attname::text, attnum, \
       CASE WHEN atthasmissing THEN (attmissingval::text::text[])[1] END, \
       atthasdef OR attidentity <> '' \
     FROM pg_catalog.pg_attribute \
     WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped";

/// One table's shape as the catalog gave it, to be placed at a probe's
/// message (see `probe`).
#[derive(Debug, Clone)]
pub(super) struct Probed {
    pub(super) shape: Shape,
    /// Its columns' catalog facts, read with it.
    pub(super) facts: HashMap<String, ColumnFacts>,
    /// The table's catalog fingerprint when the shape was read.
    pub(super) fingerprint: String,
}

/// Where a streamed shape record sits: pgoutput gives a Relation message
/// no LSN of its own (0), so the record takes the transaction's commit LSN
/// and one past the previous change's LSN (0 before the first change):
/// after every change of the transaction written with the older shape,
/// before every change written with this one.
///
/// The streaming loop's shape state (survives reconnects; what was emitted
/// is forgotten at each new session, as the server forgets what it sent).
pub(super) struct StreamShapes {
    url: String,
    client: Option<Client>,
    types: HashMap<(u32, i32), TypeInfo>,
    /// Per table, the key as the catalog resolved it at start: its kind and
    /// column names in key order.
    keys: HashMap<TableName, (KeyKind, Vec<String>)>,
    described: HashMap<u32, Described>,
    emitted: HashMap<u32, Shape>,
    /// The LSN of the transaction's latest message that carried one.
    last_lsn: Lsn,
    /// Each table's newest shape seen (the catalog's at start, then every
    /// record's; kept across sessions): what a new column is new against.
    known: HashMap<TableName, Shape>,
    /// Tables rewritten by a column added with a volatile default, to be
    /// re-synced (taken by the loop).
    rewritten: Vec<TableName>,
}

impl StreamShapes {
    pub(super) fn new(url: &str, tables: &[SourceTable]) -> StreamShapes {
        let keys = tables
            .iter()
            .map(|t| {
                let names = t.key_columns().iter().map(|c| c.name.clone()).collect();
                (t.name.clone(), (t.key, names))
            })
            .collect();
        StreamShapes {
            url: url.to_owned(),
            client: None,
            types: HashMap::new(),
            keys,
            described: HashMap::new(),
            emitted: HashMap::new(),
            last_lsn: Lsn::ZERO,
            known: tables
                .iter()
                .map(|t| (t.name.clone(), Shape::of_table(t)))
                .collect(),
            rewritten: Vec::new(),
        }
    }

    /// A new session: the server sends every Relation message again.
    pub(super) fn new_session(&mut self) {
        self.emitted.clear();
        self.described.clear();
    }

    /// Before `ev` is handled: when it is a Relation message of a
    /// configured table, look its column types up.
    pub(super) async fn prepare(&mut self, ev: &ReplicationEvent) -> Result<(), ProduceError> {
        let data = match ev {
            ReplicationEvent::Begin { .. } => {
                self.last_lsn = Lsn::ZERO;
                return Ok(());
            }
            ReplicationEvent::XLogData {
                wal_start, data, ..
            } => {
                if Lsn::from(*wal_start) != Lsn::ZERO {
                    self.last_lsn = (*wal_start).into();
                }
                data
            }
            _ => return Ok(()),
        };
        if data.first() != Some(&b'R') {
            return Ok(());
        }
        let LogicalMessage::Relation(body) = decode(data.clone())? else {
            return Ok(());
        };
        if !self
            .keys
            .contains_key(&TableName::new(&body.schema, &body.name))
        {
            return Ok(());
        }
        let described = self.describe(&body).await?;
        self.described.insert(body.id, described);
        Ok(())
    }

    async fn describe(&mut self, body: &RelationBody) -> Result<Described, ProduceError> {
        let mut types = Vec::with_capacity(body.columns.len());
        for column in &body.columns {
            let at = (column.type_oid, column.type_modifier);
            let info = match self.types.get(&at) {
                Some(info) => info.clone(),
                None => {
                    let info = self.look_up(at).await?;
                    self.types.insert(at, info.clone());
                    info
                }
            };
            types.push((column.type_oid, info));
        }
        let rows = self
            .catalog_rows(
                COLUMN_FACTS,
                &[&body.id],
                "reading column numbers and kept defaults",
            )
            .await?;
        let facts = column_facts(&rows);
        Ok(Described {
            identity: body.replica_identity,
            types,
            facts,
        })
    }

    /// `format_type` and the base type of one (oid, typmod).
    async fn look_up(&mut self, (oid, typmod): (u32, i32)) -> Result<TypeInfo, ProduceError> {
        let rows = self
            .catalog_rows(
                TYPE_INFO,
                &[&oid, &typmod],
                "looking up a column type for a shape record",
            )
            .await?;
        Ok(match rows.first() {
            Some(row) => TypeInfo {
                name: row.get(0),
                base_oid: row.get(1),
                category: row.get(2),
            },
            // Dropped between the message and the look-up: named by its OID.
            None => TypeInfo {
                name: format!("oid {oid}"),
                base_oid: oid,
                category: "X".to_owned(),
            },
        })
    }

    /// A catalog query on our own connection; a broken connection (the
    /// server restarted) is reopened once.
    async fn catalog_rows(
        &mut self,
        statement: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        context: &'static str,
    ) -> Result<Vec<tokio_postgres::Row>, ProduceError> {
        let mut attempt = 0;
        loop {
            if self.client.as_ref().is_none_or(Client::is_closed) {
                self.client = Some(connect_sql(&self.url).await?);
            }
            let Some(client) = &self.client else { continue };
            match client.query(statement, params).await {
                Ok(rows) => return Ok(rows),
                Err(error) if attempt == 0 => {
                    tracing::debug!(%error, "catalog connection lost; reopening it");
                    self.client = None;
                    attempt += 1;
                }
                Err(source) => return Err(TablesError::Query { context, source }.into()),
            }
        }
    }

    /// The Relation message `rel` was handled: queue its shape record at
    /// `at` (before any change after it), unless this session sent it.
    pub(super) fn emit<W: RecordWriter>(
        &mut self,
        ctx: &EventContext,
        rel: &Relation,
        txn: (Position, Option<u32>, i64),
        delivery: &mut Delivery<W>,
    ) -> Result<(), ProduceError> {
        let Some(described) = self.described.remove(&rel.id) else {
            return Ok(());
        };
        let shape = self.shape_of(rel, &described);
        if self.emitted.get(&rel.id) == Some(&shape) {
            return Ok(());
        }
        let name = TableName::new(&rel.schema, &rel.name);
        self.remember(name, &shape, &described.facts);
        let (mut at, txid, commit_time_ms) = txn;
        // pgoutput sends a Relation message with no LSN of its own: just
        // after the transaction's previous change, before the next one.
        if at.lsn == Lsn::ZERO && self.last_lsn != Lsn::ZERO {
            at.lsn = Lsn(self.last_lsn.0 + 1);
        }
        tracing::debug!(table = %rel.qualified_name(), columns = shape.columns.len(), "shape record");
        delivery.push_event(encode_shape(ctx, &shape, at, txid, commit_time_ms))?;
        self.emitted.insert(rel.id, shape);
        Ok(())
    }

    /// A probe's shape, read from the catalog (see `probe`): its record
    /// queued at `at`, the message that bracketed it.
    pub(super) fn place<W: RecordWriter>(
        &mut self,
        ctx: &EventContext,
        probed: Probed,
        txn: (Position, Option<u32>, i64),
        delivery: &mut Delivery<W>,
    ) -> Result<(), ProduceError> {
        let Probed { shape, facts, .. } = probed;
        self.remember(shape.table_name(), &shape, &facts);
        let (at, txid, commit_time_ms) = txn;
        tracing::debug!(table = %shape.table_name(), "shape record from a probe");
        delivery.push_event(encode_shape(ctx, &shape, at, txid, commit_time_ms))?;
        self.emitted.insert(shape.oid, shape);
        Ok(())
    }

    /// `shape` is `name`'s newest; a column new in it (by attnum) whose
    /// `facts` say a rewrite filled it was added with a volatile default:
    /// the table is to be re-synced.
    fn remember(&mut self, name: TableName, shape: &Shape, facts: &HashMap<String, ColumnFacts>) {
        let Some(previous) = self.known.insert(name.clone(), shape.clone()) else {
            return;
        };
        let added = shape.columns.iter().any(|column| {
            column.attnum.is_some()
                && !previous.columns.iter().any(|p| p.attnum == column.attnum)
                && facts
                    .get(&column.name)
                    .is_some_and(ColumnFacts::filled_by_rewrite)
        });
        if added {
            self.rewritten.push(name);
        }
    }

    /// Also describe `table`'s Relation messages (a table streamed since it
    /// was created under a followed schema).
    pub(super) fn add_table(&mut self, table: &SourceTable) {
        let names = table.key_columns().iter().map(|c| c.name.clone()).collect();
        self.keys.insert(table.name.clone(), (table.key, names));
        self.known
            .insert(table.name.clone(), Shape::of_table(table));
    }

    /// The tables found rewritten since the last call (see [`COLUMN_FACTS`]).
    pub(super) fn take_rewritten(&mut self) -> Vec<TableName> {
        std::mem::take(&mut self.rewritten)
    }

    fn shape_of(&self, rel: &Relation, described: &Described) -> Shape {
        let name = TableName::new(&rel.schema, &rel.name);
        let partition: Vec<String> = rel.partition_columns();
        let (kind, key_order) = match self.keys.get(&name) {
            _ if partition.is_empty() => (KeyKind::AllColumns, Vec::new()),
            Some((kind, names)) if same_names(names, &partition) => (*kind, names.clone()),
            _ if described.identity == ReplicaIdentity::Index => {
                (KeyKind::IdentityIndex, partition)
            }
            _ => (KeyKind::PrimaryKey, partition),
        };
        let columns = rel
            .columns
            .iter()
            .zip(&described.types)
            .enumerate()
            .map(|(i, (column, (oid, info)))| ShapeColumn {
                name: column.name.clone(),
                type_name: info.name.clone(),
                oid: *oid,
                base_oid: info.base_oid,
                category: info.category.clone(),
                key: match kind {
                    KeyKind::AllColumns => Some(i + 1),
                    _ => key_order
                        .iter()
                        .position(|k| *k == column.name)
                        .map(|p| p + 1),
                },
                identity: rel.key_indices.contains(&i),
                missing: described
                    .facts
                    .get(&column.name)
                    .and_then(|f| f.missing.as_deref())
                    .map(|text| encode_text(info.base_oid, text)),
                attnum: described.facts.get(&column.name).map(|f| f.attnum),
            })
            .collect();
        Shape {
            schema: rel.schema.clone(),
            table: rel.name.clone(),
            oid: rel.id,
            replica_identity: shape_identity_code(described.identity).to_owned(),
            key: shape_key_code(kind).to_owned(),
            columns,
        }
    }
}

fn same_names(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

/// The snapshot's shape records: one per table, from the resolver, at the
/// snapshot's position (that of its rows).
pub(super) fn push_snapshot_shapes<W: RecordWriter>(
    ctx: &EventContext,
    shapes: &[Shape],
    consistent_point: Lsn,
    time_ms: i64,
    delivery: &mut Delivery<W>,
) -> Result<(), ProduceError> {
    let at = Position {
        commit_lsn: consistent_point,
        lsn: Lsn::ZERO,
    };
    for shape in shapes {
        delivery.push_event(encode_shape(ctx, shape, at, None, time_ms))?;
    }
    Ok(())
}
