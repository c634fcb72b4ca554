//! Test shapes for the shape steps' unit tests (backfill, rename): an
//! integer column (`id` is the key) and `public.t` at a position.

use crate::event::{Position, PositionedShape, Shape, ShapeColumn};
use crate::lsn::Lsn;

/// An integer column; `id` is the key.
pub fn column(name: &str) -> ShapeColumn {
    ShapeColumn {
        name: name.into(),
        type_name: "integer".into(),
        oid: 23,
        base_oid: 23,
        category: "N".into(),
        key: (name == "id").then_some(1),
        identity: name == "id",
        missing: None,
        attnum: None,
    }
}

/// `public.t` with `columns`, at commit LSN `at`.
pub fn shape(at: u64, columns: Vec<ShapeColumn>) -> PositionedShape {
    PositionedShape {
        position: Position {
            commit_lsn: Lsn(at),
            lsn: Lsn(1),
        },
        shape: Shape {
            schema: "public".into(),
            table: "t".into(),
            oid: 1,
            replica_identity: "d".into(),
            key: "primary_key".into(),
            columns,
        },
    }
}
