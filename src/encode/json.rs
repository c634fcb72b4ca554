//! JSON text: string escaping, `serde_json::Value` output, and the
//! pass-through of json/jsonb values.
//!
//! Everything here writes exactly the bytes `serde_json` writes (compact,
//! its escapes), so the fast paths and the `Value` path agree byte for byte
//! (tests/properties.rs checks it on random input).
//!
//! A json/jsonb value is not parsed into a `Value`: [`pass_through`] copies
//! its text into the event while checking it, dropping the whitespace and
//! keeping everything else (numbers digit for digit, keys in PostgreSQL's
//! order). It gives up, leaving the caller to take the full parse of the
//! `Value` path, on anything whose output would not be its own text: a
//! number Redshift cannot hold (becomes a string), a number with an
//! exponent (`1E5` is written `1e+5`), an escape serde_json writes
//! differently (`\/`, most `\u`), a repeated key (the last one wins),
//! deep nesting, and anything malformed.

use serde_json::Value;

use super::number::{push_i64, redshift_holds_number};

/// Append `s` as a JSON string literal.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    push_json_str_body(out, s);
    out.push(b'"');
}

/// Append `s` escaped as `serde_json` escapes (`\"`, `\\`, `\b`, `\f`,
/// `\n`, `\r`, `\t`, other control characters as `\u00xx`), without the
/// quotes. Runs without escapes are copied in one piece, found eight bytes
/// at a time.
pub fn push_json_str_body(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let mut chunk = [0u8; 8];
            chunk.copy_from_slice(word);
            if !needs_escape(u64::from_le_bytes(chunk)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        i += 1;
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..i - 1]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Whether any of the eight bytes of `word` is a control character, `"`
/// or `\` (the classic "has a byte less than n / equal to c" bit tricks:
/// exact as a yes/no).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    let quote = has_zero(word ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(word ^ (ONES * u64::from(b'\\')));
    control | quote | backslash != 0
}

/// [`write_json_str`] onto a `String` (messages and the dead-letter file).
pub fn push_json_str(out: &mut String, s: &str) {
    let mut bytes = Vec::with_capacity(s.len() + 2);
    write_json_str(&mut bytes, s);
    out.push_str(&String::from_utf8_lossy(&bytes));
}

/// Append `value` as JSON, byte for byte what `serde_json` writes, without
/// going through `core::fmt` for the common scalar cases.
pub fn push_json_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::String(s) => write_json_str(out, s),
        Value::Number(n) => match n.as_i64() {
            Some(i) => push_i64(out, i),
            None => out.extend_from_slice(n.as_str().as_bytes()),
        },
        Value::Array(_) | Value::Object(_) => {
            // Writing to a Vec cannot fail, nor can serializing a Value.
            let _ = serde_json::to_writer(&mut *out, value);
        }
    }
}

/// Nesting deeper than this leaves the value to the full parse (which
/// knows serde_json's own limit of 128).
const MAX_PASS_THROUGH_DEPTH: usize = 64;

/// Copy the json text `text` to `out` as serde_json would write it after
/// parsing it, if that is the same text without whitespace. `false` (with
/// `out` as it was) where it is not, or may not be: see the module doc.
pub fn pass_through(out: &mut Vec<u8>, text: &str) -> bool {
    // A number alone is written through `as_i64` (`-0` becomes `0`).
    if matches!(text.trim_start().bytes().next(), Some(b'-' | b'0'..=b'9')) {
        return false;
    }
    let start = out.len();
    let mut scan = Scanner {
        b: text.as_bytes(),
        pos: 0,
        out,
    };
    let ok = scan.value(0).is_some() && {
        scan.skip_ws();
        scan.pos == scan.b.len()
    };
    if !ok {
        out.truncate(start);
    }
    ok
}

/// The pass-through's cursor. Every method returns `None` to give up.
struct Scanner<'a, 'o> {
    b: &'a [u8],
    pos: usize,
    out: &'o mut Vec<u8>,
}

impl Scanner<'_, '_> {
    fn skip_ws(&mut self) {
        while matches!(self.b.get(self.pos), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            self.pos += 1;
        }
    }

    /// The next non-whitespace byte, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.b.get(self.pos).copied()
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(|_| ()),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos + word.len();
        (self.b.get(self.pos..end)? == word).then_some(())?;
        self.out.extend_from_slice(word);
        self.pos = end;
        Some(())
    }

    /// A number in JSON's grammar, without exponent, that Redshift holds.
    fn number(&mut self) -> Option<()> {
        let start = self.pos;
        if self.b[self.pos] == b'-' {
            self.pos += 1;
        }
        match self.b.get(self.pos)? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.b.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            let at = self.pos;
            self.digits();
            (self.pos > at).then_some(())?;
        }
        if matches!(self.b.get(self.pos), Some(b'e' | b'E' | b'0'..=b'9')) {
            return None;
        }
        let lexeme = std::str::from_utf8(&self.b[start..self.pos]).ok()?;
        redshift_holds_number(lexeme).then_some(())?;
        self.out.extend_from_slice(lexeme.as_bytes());
        Some(())
    }

    fn digits(&mut self) {
        while matches!(self.b.get(self.pos), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    /// A string whose escapes serde_json writes back the same; returns its
    /// raw bytes (quotes excluded) for the repeated-key check.
    fn string(&mut self) -> Option<(usize, usize)> {
        let start = self.pos;
        self.pos += 1;
        loop {
            match *self.b.get(self.pos)? {
                b'"' => break,
                b'\\' => {
                    let len = escape_len(&self.b[self.pos..])?;
                    self.pos += len;
                }
                0..=0x1f => return None,
                _ => self.pos += 1,
            }
        }
        self.pos += 1;
        self.out.extend_from_slice(&self.b[start..self.pos]);
        Some((start + 1, self.pos - 1))
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        self.container(depth, b']', |scan| scan.value(depth))
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        let mut keys = Keys::default();
        self.container(depth, b'}', |scan| {
            (scan.peek()? == b'"').then_some(())?;
            let key = scan.string()?;
            keys.insert(key, scan.b)?;
            (scan.peek()? == b':').then_some(())?;
            scan.pos += 1;
            scan.out.push(b':');
            scan.value(depth)
        })
    }

    /// An array or object (on its opening bracket) up to `close`, its
    /// items read by `item` and separated by commas.
    fn container(
        &mut self,
        depth: usize,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        (depth <= MAX_PASS_THROUGH_DEPTH).then_some(())?;
        self.out.push(self.b[self.pos]);
        self.pos += 1;
        if self.peek()? != close {
            loop {
                item(self)?;
                match self.peek()? {
                    b',' => self.out.push(b','),
                    c if c == close => break,
                    _ => return None,
                }
                self.pos += 1;
            }
        }
        self.pos += 1;
        self.out.push(close);
        Some(())
    }
}

/// The length of the escape at the start of `b` (a backslash) if serde_json
/// writes what it decodes to back as the same bytes: the short escapes
/// other than `\/`, and `\u00xx` (lower-case hex) of a control character
/// without a short escape.
fn escape_len(b: &[u8]) -> Option<usize> {
    match *b.get(1)? {
        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => Some(2),
        b'u' => {
            let hex = b.get(2..6)?;
            let lower = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
            let short = matches!(&hex[2..], b"08" | b"09" | b"0a" | b"0c" | b"0d");
            (hex[0] == b'0' && hex[1] == b'0' && matches!(hex[2], b'0' | b'1')).then_some(())?;
            (lower(hex[3]) && !short).then_some(6)
        }
        _ => None,
    }
}

/// The keys of one object so far, by their raw text (see
/// [`escape_len`]: two keys the pass-through accepts decode to the same
/// string only if their texts are the same). The first few are kept
/// inline; a larger object spills to the heap.
#[derive(Default)]
struct Keys {
    inline: [(usize, usize); 8],
    len: usize,
    spill: Vec<(usize, usize)>,
}

impl Keys {
    /// Remembers the key at `span` of `all`; `None` if it is already there.
    fn insert(&mut self, span: (usize, usize), all: &[u8]) -> Option<()> {
        let key = &all[span.0..span.1];
        let seen = self.inline[..self.len].iter().chain(&self.spill);
        if seen.into_iter().any(|&(a, z)| &all[a..z] == key) {
            return None;
        }
        if self.len < self.inline.len() {
            self.inline[self.len] = span;
            self.len += 1;
        } else {
            self.spill.push(span);
        }
        Some(())
    }
}
