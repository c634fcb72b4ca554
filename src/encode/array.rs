//! Array text output (`{1,2,NULL}`, `{"a b","c\"d"}`, nested
//! `{{1,2},{3,4}}`) read in one pass by [`walk_array`], which tells an
//! [`ArrayVisitor`] what it finds: the event writer writes each element's
//! encoding as it goes, [`parse_array`] builds [`ArrayItem`]s for the
//! `serde_json::Value` path. Forms we do not read (explicit bounds like
//! `[0:1]={...}`, or anything malformed) make the walk fail; the caller
//! keeps the text.

use std::borrow::Cow;

/// What [`walk_array`] reports, in text order.
pub trait ArrayVisitor {
    /// `{`: an array starts.
    fn open(&mut self);
    /// `}`: the innermost open array ends.
    fn close(&mut self);
    /// Between two items of one array.
    fn separator(&mut self);
    /// An unquoted `NULL` (any case).
    fn null(&mut self);
    /// An element's text, unescaped.
    fn text(&mut self, text: &str);
}

/// Walk the whole of `text` as an array literal; `None` if it is not one
/// (the visitor may have seen a prefix).
pub fn walk_array(text: &str, visitor: &mut impl ArrayVisitor) -> Option<()> {
    let mut pos = 0;
    walk_at(text, &mut pos, visitor)?;
    (pos == text.len()).then_some(())
}

fn walk_at(text: &str, pos: &mut usize, v: &mut impl ArrayVisitor) -> Option<()> {
    let b = text.as_bytes();
    if b.get(*pos) != Some(&b'{') {
        return None;
    }
    *pos += 1;
    v.open();
    if b.get(*pos) == Some(&b'}') {
        *pos += 1;
        v.close();
        return Some(());
    }
    let mut first = true;
    loop {
        if !first {
            v.separator();
        }
        first = false;
        match b.get(*pos)? {
            b'{' => walk_at(text, pos, v)?,
            b'"' => v.text(&quoted(text, pos)?),
            _ => {
                let raw = unquoted(text, pos)?;
                if raw.eq_ignore_ascii_case("NULL") {
                    v.null();
                } else {
                    v.text(raw);
                }
            }
        }
        match b.get(*pos)? {
            b',' => *pos += 1,
            b'}' => {
                *pos += 1;
                v.close();
                return Some(());
            }
            _ => return None,
        }
    }
}

/// A quoted element at `pos` (on its opening quote), unescaped: borrowed
/// when it holds no backslash.
fn quoted<'a>(text: &'a str, pos: &mut usize) -> Option<Cow<'a, str>> {
    let b = text.as_bytes();
    let start = *pos + 1;
    let mut at = start;
    let mut escaped = false;
    loop {
        match *b.get(at)? {
            b'\\' => {
                b.get(at + 1)?;
                escaped = true;
                at += 2;
            }
            b'"' => break,
            _ => at += 1,
        }
    }
    *pos = at + 1;
    if !escaped {
        return Some(Cow::Borrowed(&text[start..at]));
    }
    let mut out = Vec::with_capacity(at - start);
    let mut i = start;
    while i < at {
        if b[i] == b'\\' {
            i += 1;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// An unquoted element at `pos`, up to the next `,` or `}`.
fn unquoted<'a>(text: &'a str, pos: &mut usize) -> Option<&'a str> {
    let b = text.as_bytes();
    let start = *pos;
    while !matches!(b.get(*pos)?, b',' | b'}') {
        if matches!(b[*pos], b'\\' | b'"' | b'{') {
            return None;
        }
        *pos += 1;
    }
    text.get(start..*pos)
}

/// A parsed array literal: nested lists of optional element texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArrayItem {
    Null,
    Text(String),
    Array(Vec<ArrayItem>),
}

/// Parse an array's text output into items; `None` for forms we do not
/// read.
pub fn parse_array(text: &str) -> Option<Vec<ArrayItem>> {
    let mut tree = Tree::default();
    walk_array(text, &mut tree)?;
    tree.done
}

/// Builds [`ArrayItem`]s from a walk.
#[derive(Default)]
struct Tree {
    open: Vec<Vec<ArrayItem>>,
    done: Option<Vec<ArrayItem>>,
}

impl Tree {
    fn push(&mut self, item: ArrayItem) {
        if let Some(items) = self.open.last_mut() {
            items.push(item);
        }
    }
}

impl ArrayVisitor for Tree {
    fn open(&mut self) {
        self.open.push(Vec::new());
    }

    fn close(&mut self) {
        let items = self.open.pop().unwrap_or_default();
        if self.open.is_empty() {
            self.done = Some(items);
        } else {
            self.push(ArrayItem::Array(items));
        }
    }

    fn separator(&mut self) {}

    fn null(&mut self) {
        self.push(ArrayItem::Null);
    }

    fn text(&mut self, text: &str) {
        self.push(ArrayItem::Text(text.to_owned()));
    }
}
