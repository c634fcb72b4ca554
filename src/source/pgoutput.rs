//! Decoder for the pgoutput (protocol version 1) messages that
//! `pgwire-replication` forwards raw: Relation, Type, Origin, Insert, Update,
//! Delete and Truncate. (Begin, Commit and Message arrive already typed.)
//!
//! The decoder is pure: bytes in, [`LogicalMessage`] out. Column values stay
//! as zero-copy slices of the received buffer ([`bytes::Bytes`]) in the
//! server's text format; turning them into JSON is `encode`'s job, and knowing
//! which relation an id means is `relation_cache`'s. Reference:
//! <https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html>.

use bytes::Bytes;

/// A decoding failure: the stream is not what protocol v1 promises. Fatal for
/// the connection (the next message's framing cannot be trusted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed pgoutput {message} message: {detail}")]
pub struct DecodeError {
    pub message: &'static str,
    pub detail: String,
}

/// One column of a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity (flag bit 1).
    pub is_key: bool,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

/// `REPLICA IDENTITY` as sent in the Relation message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaIdentity {
    /// `d`: the primary key.
    Default,
    /// `n`: nothing (updates/deletes cannot be replicated).
    Nothing,
    /// `f`: every column.
    Full,
    /// `i`: a chosen unique index.
    Index,
}

impl ReplicaIdentity {
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'd' => Some(ReplicaIdentity::Default),
            b'n' => Some(ReplicaIdentity::Nothing),
            b'f' => Some(ReplicaIdentity::Full),
            b'i' => Some(ReplicaIdentity::Index),
            _ => None,
        }
    }
}

/// A Relation message: the shape of a table, sent before its first change on
/// a connection and again after every schema change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationBody {
    pub id: u32,
    pub schema: String,
    pub name: String,
    pub replica_identity: ReplicaIdentity,
    pub columns: Vec<RelationColumn>,
}

/// One column value inside a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleValue {
    /// `n`: SQL NULL (also what non-key columns hold in a `K` old tuple).
    Null,
    /// `u`: an unchanged TOASTed value the server did not send.
    UnchangedToast,
    /// `t`: the value in the type's text output format.
    Text(Bytes),
    /// `b`: binary format (only with `binary 'true'`, which kinesync never sets).
    Binary(Bytes),
}

/// What an Update or Delete carries as the old row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldTupleKind {
    /// `K`: replica identity columns only (other columns are `Null`).
    Key,
    /// `O`: the full old row (`REPLICA IDENTITY FULL`).
    Full,
}

/// A decoded message. `Other` covers tags this decoder deliberately skips
/// (Begin/Commit/Message are typed by pgwire-replication; stream messages
/// only exist in protocol v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogicalMessage {
    Relation(RelationBody),
    Type {
        oid: u32,
        schema: String,
        name: String,
    },
    Origin {
        commit_lsn: u64,
        name: String,
    },
    Insert {
        relation_id: u32,
        new: Vec<TupleValue>,
    },
    Update {
        relation_id: u32,
        old: Option<(OldTupleKind, Vec<TupleValue>)>,
        new: Vec<TupleValue>,
    },
    Delete {
        relation_id: u32,
        old: (OldTupleKind, Vec<TupleValue>),
    },
    Truncate {
        cascade: bool,
        restart_identity: bool,
        relation_ids: Vec<u32>,
    },
    Other(u8),
}

const MESSAGE_NAMES: &[(u8, &str)] = &[
    (b'R', "Relation"),
    (b'Y', "Type"),
    (b'O', "Origin"),
    (b'I', "Insert"),
    (b'U', "Update"),
    (b'D', "Delete"),
    (b'T', "Truncate"),
];

/// A cursor over one message's bytes.
struct Reader {
    buf: Bytes,
    pos: usize,
    message: &'static str,
}

impl Reader {
    fn err(&self, detail: impl Into<String>) -> DecodeError {
        DecodeError {
            message: self.message,
            detail: format!("{} (at byte {})", detail.into(), self.pos),
        }
    }

    /// Bytes not read yet. Counts read from the message bound allocations
    /// by this, so a corrupt count cannot ask for gigabytes (found by the
    /// `pgoutput_decode` fuzz target).
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if self.buf.len() - self.pos < n {
            return Err(self.err(format!(
                "needs {n} more bytes, has {}",
                self.buf.len() - self.pos
            )));
        }
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    /// The next `N` bytes, without slicing the buffer (no reference count
    /// touched: these are read for every column of every tuple).
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let Some(bytes) = self.buf.get(self.pos..self.pos + N) else {
            return Err(self.err(format!(
                "needs {N} more bytes, has {}",
                self.buf.len() - self.pos
            )));
        };
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        self.pos += N;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(self.i32()? as u32)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A NUL-terminated string.
    fn cstr(&mut self) -> Result<String, DecodeError> {
        let rest = &self.buf[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.err("string without NUL terminator"))?;
        let s = std::str::from_utf8(&rest[..end])
            .map_err(|_| self.err("string is not UTF-8"))?
            .to_owned();
        self.pos += end + 1;
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Vec<TupleValue>, DecodeError> {
        let n = self.i16()?;
        if n < 0 {
            return Err(self.err(format!("negative column count {n}")));
        }
        // Every value takes at least one byte.
        let mut values = Vec::with_capacity((n as usize).min(self.remaining()));
        for _ in 0..n {
            let value = match self.u8()? {
                b'n' => TupleValue::Null,
                b'u' => TupleValue::UnchangedToast,
                kind @ (b't' | b'b') => {
                    let len = self.i32()?;
                    if len < 0 {
                        return Err(self.err(format!("negative value length {len}")));
                    }
                    let data = self.take(len as usize)?;
                    if kind == b't' {
                        TupleValue::Text(data)
                    } else {
                        TupleValue::Binary(data)
                    }
                }
                other => {
                    return Err(self.err(format!("unknown tuple value kind {:?}", other as char)))
                }
            };
            values.push(value);
        }
        Ok(values)
    }

    fn old_kind(&self, byte: u8) -> Option<OldTupleKind> {
        match byte {
            b'K' => Some(OldTupleKind::Key),
            b'O' => Some(OldTupleKind::Full),
            _ => None,
        }
    }

    /// `R`: a relation's id, name, replica identity and columns.
    fn relation(&mut self) -> Result<LogicalMessage, DecodeError> {
        let id = self.u32()?;
        let schema = self.cstr()?;
        let name = self.cstr()?;
        let ident_byte = self.u8()?;
        let replica_identity = ReplicaIdentity::from_byte(ident_byte).ok_or_else(|| {
            self.err(format!("unknown replica identity {:?}", ident_byte as char))
        })?;
        let ncols = self.i16()?;
        if ncols < 0 {
            return Err(self.err(format!("negative column count {ncols}")));
        }
        // Every column takes at least 10 bytes (flags, name, oid, typmod).
        let mut columns = Vec::with_capacity((ncols as usize).min(self.remaining() / 10));
        for _ in 0..ncols {
            let flags = self.u8()?;
            columns.push(RelationColumn {
                is_key: flags & 1 == 1,
                name: self.cstr()?,
                type_oid: self.u32()?,
                type_modifier: self.i32()?,
            });
        }
        Ok(LogicalMessage::Relation(RelationBody {
            id,
            schema,
            name,
            replica_identity,
            columns,
        }))
    }

    /// The `N` marker before a new tuple.
    fn expect_new(&self, marker: u8) -> Result<(), DecodeError> {
        if marker != b'N' {
            return Err(self.err(format!("expected 'N', got {:?}", marker as char)));
        }
        Ok(())
    }

    /// `I`: relation id, `N`, the new tuple.
    fn insert(&mut self) -> Result<LogicalMessage, DecodeError> {
        let relation_id = self.u32()?;
        let marker = self.u8()?;
        self.expect_new(marker)?;
        let new = self.tuple()?;
        Ok(LogicalMessage::Insert { relation_id, new })
    }

    /// `U`: relation id, optionally `K`/`O` and the old tuple, `N`, the new one.
    fn update(&mut self) -> Result<LogicalMessage, DecodeError> {
        let relation_id = self.u32()?;
        let mut marker = self.u8()?;
        let mut old = None;
        if let Some(kind) = self.old_kind(marker) {
            old = Some((kind, self.tuple()?));
            marker = self.u8()?;
        }
        self.expect_new(marker)?;
        let new = self.tuple()?;
        Ok(LogicalMessage::Update {
            relation_id,
            old,
            new,
        })
    }

    /// `D`: relation id, `K`/`O`, the old tuple.
    fn delete(&mut self) -> Result<LogicalMessage, DecodeError> {
        let relation_id = self.u32()?;
        let marker = self.u8()?;
        let kind = self
            .old_kind(marker)
            .ok_or_else(|| self.err(format!("expected 'K' or 'O', got {:?}", marker as char)))?;
        let old = self.tuple()?;
        Ok(LogicalMessage::Delete {
            relation_id,
            old: (kind, old),
        })
    }

    /// `T`: relation count, options, the relation ids.
    fn truncate(&mut self) -> Result<LogicalMessage, DecodeError> {
        let n = self.i32()?;
        if n < 0 {
            return Err(self.err(format!("negative relation count {n}")));
        }
        let options = self.u8()?;
        let needed = (n as usize).saturating_mul(4);
        if needed > self.remaining() {
            return Err(self.err(format!(
                "{n} relation ids need {needed} bytes, the message has {}",
                self.remaining()
            )));
        }
        let mut relation_ids = Vec::with_capacity(n as usize);
        for _ in 0..n {
            relation_ids.push(self.u32()?);
        }
        Ok(LogicalMessage::Truncate {
            cascade: options & 1 != 0,
            restart_identity: options & 2 != 0,
            relation_ids,
        })
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.pos != self.buf.len() {
            return Err(self.err(format!("{} trailing bytes", self.buf.len() - self.pos)));
        }
        Ok(())
    }
}

/// Decode one pgoutput message (the payload of an XLogData).
pub fn decode(data: Bytes) -> Result<LogicalMessage, DecodeError> {
    let Some(&tag) = data.first() else {
        return Err(DecodeError {
            message: "(empty)",
            detail: "empty message".into(),
        });
    };
    let Some(&(_, message)) = MESSAGE_NAMES.iter().find(|(t, _)| *t == tag) else {
        return Ok(LogicalMessage::Other(tag));
    };
    let mut r = Reader {
        buf: data,
        pos: 1,
        message,
    };
    let decoded = match tag {
        b'R' => r.relation()?,
        b'Y' => LogicalMessage::Type {
            oid: r.u32()?,
            schema: r.cstr()?,
            name: r.cstr()?,
        },
        b'O' => LogicalMessage::Origin {
            commit_lsn: r.u64()?,
            name: r.cstr()?,
        },
        b'I' => r.insert()?,
        b'U' => r.update()?,
        b'D' => r.delete()?,
        b'T' => r.truncate()?,
        _ => return Ok(LogicalMessage::Other(tag)),
    };
    r.finish()?;
    Ok(decoded)
}

/// Builders for hand-made pgoutput bytes, shared by this crate's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub fn cstr(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    pub fn relation(
        id: u32,
        schema: &str,
        name: &str,
        ident: u8,
        cols: &[(bool, &str, u32)],
    ) -> Bytes {
        let mut out = vec![b'R'];
        out.extend_from_slice(&id.to_be_bytes());
        cstr(&mut out, schema);
        cstr(&mut out, name);
        out.push(ident);
        out.extend_from_slice(&(cols.len() as i16).to_be_bytes());
        for (key, col, oid) in cols {
            out.push(u8::from(*key));
            cstr(&mut out, col);
            out.extend_from_slice(&oid.to_be_bytes());
            out.extend_from_slice(&(-1i32).to_be_bytes());
        }
        Bytes::from(out)
    }

    /// `None` = null, `Some("\u{0}u")` = unchanged toast, else text.
    pub fn tuple(out: &mut Vec<u8>, values: &[Option<&str>]) {
        out.extend_from_slice(&(values.len() as i16).to_be_bytes());
        for v in values {
            match v {
                None => out.push(b'n'),
                Some("\u{0}u") => out.push(b'u'),
                Some(text) => {
                    out.push(b't');
                    out.extend_from_slice(&(text.len() as i32).to_be_bytes());
                    out.extend_from_slice(text.as_bytes());
                }
            }
        }
    }

    pub fn insert(rel: u32, values: &[Option<&str>]) -> Bytes {
        let mut out = vec![b'I'];
        out.extend_from_slice(&rel.to_be_bytes());
        out.push(b'N');
        tuple(&mut out, values);
        Bytes::from(out)
    }

    pub fn update(rel: u32, old: Option<(u8, &[Option<&str>])>, new: &[Option<&str>]) -> Bytes {
        let mut out = vec![b'U'];
        out.extend_from_slice(&rel.to_be_bytes());
        if let Some((kind, values)) = old {
            out.push(kind);
            tuple(&mut out, values);
        }
        out.push(b'N');
        tuple(&mut out, new);
        Bytes::from(out)
    }

    pub fn delete(rel: u32, kind: u8, old: &[Option<&str>]) -> Bytes {
        let mut out = vec![b'D'];
        out.extend_from_slice(&rel.to_be_bytes());
        out.push(kind);
        tuple(&mut out, old);
        Bytes::from(out)
    }

    pub fn truncate(rels: &[u32], options: u8) -> Bytes {
        let mut out = vec![b'T'];
        out.extend_from_slice(&(rels.len() as i32).to_be_bytes());
        out.push(options);
        for r in rels {
            out.extend_from_slice(&r.to_be_bytes());
        }
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;

    #[test]
    fn a_huge_relation_count_is_an_error_not_a_huge_allocation() {
        // The fuzz target's find: a Truncate claiming 0x22222222 relations.
        let mut message = vec![b'T'];
        message.extend_from_slice(&0x2222_2222i32.to_be_bytes());
        message.extend_from_slice(&[0, 0, 0, 0, 1]);
        let error = super::decode(bytes::Bytes::from(message)).unwrap_err();
        assert!(error.to_string().contains("relation ids need"), "{error}");
    }
    use super::*;

    fn text(s: &str) -> TupleValue {
        TupleValue::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn relation_message() {
        let msg = decode(relation(
            16384,
            "public",
            "orders",
            b'd',
            &[(true, "id", 23), (false, "note", 25)],
        ))
        .unwrap();
        let LogicalMessage::Relation(rel) = msg else {
            panic!("{msg:?}")
        };
        assert_eq!(rel.id, 16384);
        assert_eq!(
            (rel.schema.as_str(), rel.name.as_str()),
            ("public", "orders")
        );
        assert_eq!(rel.replica_identity, ReplicaIdentity::Default);
        assert_eq!(rel.columns.len(), 2);
        assert!(rel.columns[0].is_key && !rel.columns[1].is_key);
        assert_eq!(rel.columns[1].type_oid, 25);
        assert_eq!(rel.columns[1].type_modifier, -1);
    }

    #[test]
    fn insert_with_null_and_text() {
        let msg = decode(insert(7, &[Some("42"), None, Some("")])).unwrap();
        assert_eq!(
            msg,
            LogicalMessage::Insert {
                relation_id: 7,
                new: vec![text("42"), TupleValue::Null, text("")]
            }
        );
    }

    #[test]
    fn update_without_old_tuple_with_toast() {
        let msg = decode(update(7, None, &[Some("1"), Some("\u{0}u")])).unwrap();
        assert_eq!(
            msg,
            LogicalMessage::Update {
                relation_id: 7,
                old: None,
                new: vec![text("1"), TupleValue::UnchangedToast]
            }
        );
    }

    #[test]
    fn update_with_key_and_full_old_tuple() {
        let msg = decode(update(
            7,
            Some((b'K', &[Some("1"), None])),
            &[Some("2"), Some("x")],
        ))
        .unwrap();
        let LogicalMessage::Update {
            old: Some((OldTupleKind::Key, old)),
            new,
            ..
        } = msg
        else {
            panic!()
        };
        assert_eq!(old, vec![text("1"), TupleValue::Null]);
        assert_eq!(new, vec![text("2"), text("x")]);

        let msg = decode(update(
            7,
            Some((b'O', &[Some("1"), Some("a")])),
            &[Some("1"), Some("b")],
        ))
        .unwrap();
        let LogicalMessage::Update {
            old: Some((OldTupleKind::Full, old)),
            ..
        } = msg
        else {
            panic!()
        };
        assert_eq!(old, vec![text("1"), text("a")]);
    }

    #[test]
    fn delete_key_and_full() {
        let msg = decode(delete(9, b'K', &[Some("5"), None])).unwrap();
        assert_eq!(
            msg,
            LogicalMessage::Delete {
                relation_id: 9,
                old: (OldTupleKind::Key, vec![text("5"), TupleValue::Null])
            }
        );
        let msg = decode(delete(9, b'O', &[Some("5"), Some("y")])).unwrap();
        assert!(matches!(
            msg,
            LogicalMessage::Delete {
                old: (OldTupleKind::Full, _),
                ..
            }
        ));
    }

    #[test]
    fn truncate_options() {
        let msg = decode(truncate(&[1, 2], 3)).unwrap();
        assert_eq!(
            msg,
            LogicalMessage::Truncate {
                cascade: true,
                restart_identity: true,
                relation_ids: vec![1, 2]
            }
        );
    }

    #[test]
    fn type_and_origin() {
        let mut out = vec![b'Y'];
        out.extend_from_slice(&99u32.to_be_bytes());
        cstr(&mut out, "public");
        cstr(&mut out, "mood");
        assert_eq!(
            decode(Bytes::from(out)).unwrap(),
            LogicalMessage::Type {
                oid: 99,
                schema: "public".into(),
                name: "mood".into()
            }
        );
        let mut out = vec![b'O'];
        out.extend_from_slice(&5u64.to_be_bytes());
        cstr(&mut out, "origin1");
        assert_eq!(
            decode(Bytes::from(out)).unwrap(),
            LogicalMessage::Origin {
                commit_lsn: 5,
                name: "origin1".into()
            }
        );
    }

    #[test]
    fn unknown_tags_are_skipped_and_garbage_is_an_error() {
        assert_eq!(
            decode(Bytes::from_static(b"S\x00")).unwrap(),
            LogicalMessage::Other(b'S')
        );
        assert!(decode(Bytes::new()).is_err());
        // Truncated Insert.
        let full = insert(7, &[Some("hello")]);
        assert!(decode(full.slice(..full.len() - 2)).is_err());
        // Trailing bytes.
        let mut extra = insert(7, &[Some("1")]).to_vec();
        extra.push(0);
        assert!(decode(Bytes::from(extra)).is_err());
        // Bad value kind.
        let mut bad = vec![b'I', 0, 0, 0, 7, b'N', 0, 1, b'z'];
        bad.extend_from_slice(&[0; 4]);
        let err = decode(Bytes::from(bad)).unwrap_err();
        assert_eq!(err.message, "Insert");
    }
}
