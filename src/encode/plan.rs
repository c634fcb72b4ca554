//! The per-relation encoder plan: built once when a Relation message
//! arrives, used for every change of that table until the next one.
//!
//! It holds, per column, the [`Writer`] chosen from the type OID and the
//! column name already escaped as a JSON string, and, per table, which
//! columns a `K` old tuple carries (REPLICA IDENTITY) and which name the
//! row in keys and messages (the partition key columns, else the replica
//! identity). A row is then written by one pass over the tuple: one
//! dispatch per column, straight from pgoutput's bytes into the event.

use std::collections::HashMap;
use std::sync::Arc;

use super::json::write_json_str;
use super::write::Writer;
use super::Conversion;
use crate::source::pgoutput::{OldTupleKind, TupleValue};
use crate::source::relation_cache::Relation;

/// Why a tuple cannot be turned into a row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table}: the change has {got} columns but the Relation message described {expected}")]
pub struct ShapeMismatch {
    pub table: String,
    pub expected: usize,
    pub got: usize,
}

/// One side of a change as pgoutput sent it.
#[derive(Debug, Clone, Copy)]
pub struct Tuple<'a> {
    pub values: &'a [TupleValue],
    /// A `K` old tuple: only the replica identity columns are values (the
    /// others are nulls that mean "not sent").
    pub keys_only: bool,
}

impl<'a> Tuple<'a> {
    /// A new tuple (insert, update): every column.
    pub fn new(values: &'a [TupleValue]) -> Tuple<'a> {
        Tuple {
            values,
            keys_only: false,
        }
    }

    /// The old tuple of an update or delete, as pgoutput sent it.
    pub fn old((kind, values): &'a (OldTupleKind, Vec<TupleValue>)) -> Tuple<'a> {
        Tuple {
            values,
            keys_only: *kind == OldTupleKind::Key,
        }
    }
}

/// One column of a plan.
#[derive(Debug, Clone)]
struct ColumnPlan {
    writer: Writer,
    /// `"name"`, escaped.
    name: Box<[u8]>,
    /// Part of the replica identity (carried by a `K` old tuple).
    in_key: bool,
}

/// How to write the rows of one relation.
#[derive(Debug, Clone)]
pub struct RelationPlan {
    pub relation: Arc<Relation>,
    /// `schema.table`.
    pub table: String,
    columns: Vec<ColumnPlan>,
    /// The columns that name a row in keys and messages.
    message_key: Vec<usize>,
    /// Bytes of one row besides its values (names and punctuation).
    row_bytes: usize,
}

/// The bytes of the unchanged-TOAST placeholder as a JSON string.
const UNAVAILABLE_JSON: &[u8] = b"\"__debezium_unavailable_value\"";

impl RelationPlan {
    pub fn new(relation: Arc<Relation>) -> RelationPlan {
        let columns: Vec<ColumnPlan> = relation
            .columns
            .iter()
            .enumerate()
            .map(|(i, col)| {
                let mut name = Vec::with_capacity(col.name.len() + 2);
                write_json_str(&mut name, &col.name);
                ColumnPlan {
                    writer: Writer::for_type(col.type_oid),
                    name: name.into_boxed_slice(),
                    in_key: relation.key_indices.contains(&i),
                }
            })
            .collect();
        let message_key = message_key_indices(&relation).to_vec();
        RelationPlan {
            table: relation.qualified_name(),
            row_bytes: columns.iter().map(|c| c.name.len() + 2).sum::<usize>() + 2,
            columns,
            message_key,
            relation,
        }
    }

    /// `values` has one value per column of the relation.
    pub fn check(&self, values: &[TupleValue]) -> Result<(), ShapeMismatch> {
        if values.len() == self.columns.len() {
            return Ok(());
        }
        Err(ShapeMismatch {
            table: self.table.clone(),
            expected: self.columns.len(),
            got: values.len(),
        })
    }

    /// About the bytes the rows of these tuples take (escapes and
    /// timestamps grow a little, bytea and json shrink).
    pub fn row_capacity(&self, tuples: &[Option<Tuple>]) -> usize {
        let values: usize = tuples
            .iter()
            .flatten()
            .flat_map(|t| t.values)
            .map(|v| match v {
                TupleValue::Text(b) | TupleValue::Binary(b) => b.len() + b.len() / 8 + 8,
                _ => UNAVAILABLE_JSON.len(),
            })
            .sum();
        self.row_bytes * tuples.iter().flatten().count() + values
    }

    /// Append `{"column":value,...}` for `tuple` (checked by
    /// [`RelationPlan::check`]); conversions go to `notes`.
    pub fn write_row(&self, out: &mut Vec<u8>, tuple: Tuple, notes: &mut Vec<(usize, Conversion)>) {
        out.push(b'{');
        let mut first = true;
        for (i, (col, value)) in self.columns.iter().zip(tuple.values).enumerate() {
            if tuple.keys_only && !col.in_key {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(&col.name);
            out.push(b':');
            let mut note = None;
            col.writer.write_value(out, value, &mut note);
            if let Some(note) = note {
                notes.push((i, note));
            }
        }
        out.push(b'}');
    }

    /// The JSON array of the row's key values (see [`message_key_indices`]);
    /// a value the row holds as the unchanged-TOAST placeholder comes from
    /// `fallback` (the old tuple) when that has one, so a row's key never
    /// depends on whether a TOASTed value was sent.
    pub fn key_text(&self, row: Tuple, fallback: Option<Tuple>) -> String {
        let mut out = Vec::with_capacity(16);
        out.push(b'[');
        for (n, &i) in self.message_key.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            let at = out.len();
            if !self.write_key_value(&mut out, row, i) {
                out.extend_from_slice(b"null");
                continue;
            }
            if &out[at..] != UNAVAILABLE_JSON {
                continue;
            }
            if let Some(old) = fallback {
                let mut other = Vec::new();
                if self.write_key_value(&mut other, old, i) && other != UNAVAILABLE_JSON {
                    out.truncate(at);
                    out.extend_from_slice(&other);
                }
            }
        }
        out.push(b']');
        String::from_utf8(out).unwrap_or_default()
    }

    /// Write column `i`'s value of `tuple`; `false` if the tuple does not
    /// carry that column.
    fn write_key_value(&self, out: &mut Vec<u8>, tuple: Tuple, i: usize) -> bool {
        let col = &self.columns[i];
        match tuple.values.get(i) {
            Some(value) if !tuple.keys_only || col.in_key => {
                col.writer.write_key_value(out, value);
                true
            }
            _ => false,
        }
    }

    /// Append `,"unchanged_toast":{"<column>":true,...}` for the columns of
    /// `new` that PostgreSQL did not send because an update left their
    /// TOASTed value unchanged.
    pub fn write_unchanged_toast(&self, out: &mut Vec<u8>, new: &[TupleValue]) {
        out.extend_from_slice(b",\"unchanged_toast\":{");
        let mut first = true;
        for (col, value) in self.columns.iter().zip(new) {
            if !matches!(value, TupleValue::UnchangedToast) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(&col.name);
            out.extend_from_slice(b":true");
        }
        out.push(b'}');
    }
}

/// The columns that name a row in messages: the partition key columns
/// (primary key, else replica identity index), else the replica identity.
pub fn message_key_indices(rel: &Relation) -> &[usize] {
    if rel.partition_indices.is_empty() {
        &rel.key_indices
    } else {
        &rel.partition_indices
    }
}

/// The plans of the relations one replication connection described.
#[derive(Debug, Default)]
pub struct PlanCache {
    plans: HashMap<u32, RelationPlan>,
}

impl PlanCache {
    /// Build (or rebuild, after a schema change) the plan of `relation`.
    pub fn insert(&mut self, relation: Arc<Relation>) {
        self.plans.insert(relation.id, RelationPlan::new(relation));
    }

    pub fn get(&self, id: u32) -> Option<&RelationPlan> {
        self.plans.get(&id)
    }

    pub fn clear(&mut self) {
        self.plans.clear();
    }
}
