//! SQL lexer used by the rewriter.
//!
//! It splits SQL text into tokens that, concatenated, give back the input
//! exactly. It understands what matters for rewriting safely: string literals
//! (`'..'` with `''`, `E'..'` with backslash escapes, `N'..'`, `B'..'`,
//! `X'..'`), dollar quoting (`$tag$..$tag$`), double-quoted identifiers
//! (`".."` with `""`), line and (nested) block comments, numbers, the `::`
//! cast operator, `:name` parameters and multi-character operators.

use super::RedshiftError;

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokKind {
    /// Whitespace run.
    Space,
    /// `-- ...` or `/* ... */`.
    Comment,
    /// Unquoted identifier or keyword.
    Word,
    /// Double-quoted identifier, `text` includes the quotes.
    QIdent,
    /// String literal in any form (including dollar-quoted).
    Str,
    /// Numeric literal.
    Num,
    /// Operator or punctuation (also `$1`).
    Punct,
    /// `:name` named parameter of the Data API.
    Param,
}

/// One token; `text` is the exact source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tok {
    pub kind: TokKind,
    pub text: String,
}

impl Tok {
    pub fn new(kind: TokKind, text: impl Into<String>) -> Self {
        Tok {
            kind,
            text: text.into(),
        }
    }

    /// True for a Word equal (case-insensitively) to `w`.
    pub fn is_word(&self, w: &str) -> bool {
        self.kind == TokKind::Word && self.text.eq_ignore_ascii_case(w)
    }

    /// True for punctuation exactly `p`.
    pub fn is_punct(&self, p: &str) -> bool {
        self.kind == TokKind::Punct && self.text == p
    }

    /// True for tokens that carry meaning (not space or comment).
    pub fn is_significant(&self) -> bool {
        !matches!(self.kind, TokKind::Space | TokKind::Comment)
    }

    /// True for a Word or a QIdent.
    pub fn is_ident(&self) -> bool {
        matches!(self.kind, TokKind::Word | TokKind::QIdent)
    }

    /// Lower-cased text of a Word, else None.
    pub fn word_lower(&self) -> Option<String> {
        if self.kind == TokKind::Word {
            Some(self.text.to_ascii_lowercase())
        } else {
            None
        }
    }

    /// The raw (unfolded) name of an identifier: a Word's text as written,
    /// or a QIdent's unescaped content.
    pub fn ident_raw(&self) -> Option<String> {
        match self.kind {
            TokKind::Word => Some(self.text.clone()),
            TokKind::QIdent => {
                let inner = &self.text[1..self.text.len().saturating_sub(1)];
                Some(inner.replace("\"\"", "\""))
            }
            _ => None,
        }
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Scans a quoted string whose opening quote is at `i`; returns the index
/// just after the closing quote.
fn scan_string(chars: &[char], mut i: usize, backslash: bool) -> Result<usize, RedshiftError> {
    i += 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(RedshiftError::Syntax(
                "unterminated quoted string".to_string(),
            ));
        };
        if backslash && c == '\\' {
            i += 2;
            continue;
        }
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                i += 2;
                continue;
            }
            return Ok(i + 1);
        }
        i += 1;
    }
}

/// Splits `sql` into tokens.
pub fn lex(sql: &str) -> Result<Vec<Tok>, RedshiftError> {
    let chars: Vec<char> = sql.chars().collect();
    let n = chars.len();
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let start = i;
        let kind;
        if c.is_whitespace() {
            while i < n && chars[i].is_whitespace() {
                i += 1;
            }
            kind = TokKind::Space;
        } else if c == '-' && next == Some('-') {
            while i < n && chars[i] != '\n' {
                i += 1;
            }
            kind = TokKind::Comment;
        } else if c == '/' && next == Some('*') {
            let mut depth = 1;
            i += 2;
            while depth > 0 {
                if i >= n {
                    return Err(RedshiftError::Syntax("unterminated /* comment".to_string()));
                }
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                } else {
                    i += 1;
                }
            }
            kind = TokKind::Comment;
        } else if c == '\'' {
            i = scan_string(&chars, i, false)?;
            kind = TokKind::Str;
        } else if matches!(c, 'e' | 'E') && next == Some('\'') {
            i = scan_string(&chars, i + 1, true)?;
            kind = TokKind::Str;
        } else if matches!(c, 'n' | 'N' | 'b' | 'B' | 'x' | 'X') && next == Some('\'') {
            i = scan_string(&chars, i + 1, false)?;
            kind = TokKind::Str;
        } else if c == '"' {
            i += 1;
            loop {
                let Some(&ch) = chars.get(i) else {
                    return Err(RedshiftError::Syntax(
                        "unterminated quoted identifier".to_string(),
                    ));
                };
                if ch == '"' {
                    if chars.get(i + 1) == Some(&'"') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            kind = TokKind::QIdent;
        } else if c == '$' {
            if next.is_some_and(|d| d.is_ascii_digit()) {
                i += 1;
                while i < n && chars[i].is_ascii_digit() {
                    i += 1;
                }
                kind = TokKind::Punct;
            } else {
                let mut j = i + 1;
                while j < n && (chars[j].is_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                if j < n && chars[j] == '$' {
                    let tag: Vec<char> = chars[i..=j].to_vec();
                    let mut k = j + 1;
                    let mut end = None;
                    while k + tag.len() <= n {
                        if chars[k..k + tag.len()] == tag[..] {
                            end = Some(k + tag.len());
                            break;
                        }
                        k += 1;
                    }
                    match end {
                        Some(e) => i = e,
                        None => {
                            return Err(RedshiftError::Syntax(
                                "unterminated dollar-quoted string".to_string(),
                            ))
                        }
                    }
                    kind = TokKind::Str;
                } else {
                    i += 1;
                    kind = TokKind::Punct;
                }
            }
        } else if is_ident_start(c) {
            while i < n && is_ident_char(chars[i]) {
                i += 1;
            }
            kind = TokKind::Word;
        } else if c.is_ascii_digit() {
            while i < n && chars[i].is_ascii_digit() {
                i += 1;
            }
            if i < n && chars[i] == '.' && chars.get(i + 1) != Some(&'.') {
                i += 1;
                while i < n && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < n && matches!(chars[i], 'e' | 'E') {
                let a = chars.get(i + 1).copied();
                let b = chars.get(i + 2).copied();
                if a.is_some_and(|d| d.is_ascii_digit()) {
                    i += 1;
                } else if matches!(a, Some('+') | Some('-'))
                    && b.is_some_and(|d| d.is_ascii_digit())
                {
                    i += 2;
                }
                while i < n && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            kind = TokKind::Num;
        } else if c == ':' && next == Some(':') {
            i += 2;
            kind = TokKind::Punct;
        } else if c == ':' && next.is_some_and(is_ident_start) {
            i += 1;
            while i < n && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            kind = TokKind::Param;
        } else {
            let rest: String = chars[i..n.min(i + 3)].iter().collect();
            let len = if rest.starts_with("->>") || rest.starts_with("#>>") {
                3
            } else if ["->", "#>", "<=", ">=", "<>", "!=", "||", "@>", "<@", "=>"]
                .iter()
                .any(|op| rest.starts_with(op))
            {
                2
            } else {
                1
            };
            i += len;
            kind = TokKind::Punct;
        }
        out.push(Tok {
            kind,
            text: chars[start..i].iter().collect(),
        });
    }
    Ok(out)
}

/// Splits tokens into statements at top-level `;` (dropping empty ones).
pub fn split(tokens: Vec<Tok>) -> Vec<Vec<Tok>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for t in tokens {
        if t.is_punct(";") {
            if cur.iter().any(Tok::is_significant) {
                out.push(std::mem::take(&mut cur));
            } else {
                cur.clear();
            }
        } else {
            cur.push(t);
        }
    }
    if cur.iter().any(Tok::is_significant) {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(TokKind, String)> {
        lex(sql)
            .expect("lex")
            .into_iter()
            .filter(|t| t.is_significant())
            .map(|t| (t.kind, t.text))
            .collect()
    }

    #[test]
    fn roundtrip_and_kinds() {
        let sql = "SELECT 'a''b', E'x\\'y', \"Q\"\"x\", $$ ; $$, 1.5e3, a::int, :p -- c;\n/* a /* b */ ; */ x->>'k'";
        let toks = lex(sql).expect("lex");
        let back: String = toks.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(back, sql);
        let k = kinds(sql);
        assert!(k.contains(&(TokKind::Str, "'a''b'".into())));
        assert!(k.contains(&(TokKind::Str, "E'x\\'y'".into())));
        assert!(k.contains(&(TokKind::QIdent, "\"Q\"\"x\"".into())));
        assert!(k.contains(&(TokKind::Str, "$$ ; $$".into())));
        assert!(k.contains(&(TokKind::Num, "1.5e3".into())));
        assert!(k.contains(&(TokKind::Punct, "::".into())));
        assert!(k.contains(&(TokKind::Param, ":p".into())));
        assert!(k.contains(&(TokKind::Punct, "->>".into())));
    }

    #[test]
    fn split_respects_literals() {
        let toks = lex("select ';'; select \";\" ; -- x;\n ; /* ; */").expect("lex");
        let stmts = split(toks);
        assert_eq!(stmts.len(), 2);
    }

    #[test]
    fn unterminated() {
        assert!(lex("select 'abc").is_err());
        assert!(lex("select \"abc").is_err());
        assert!(lex("select /* abc").is_err());
    }
}
