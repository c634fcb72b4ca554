//! The PL/pgSQL subset the stand-in interprets in stored procedure bodies.
//!
//! A body is parsed (at CREATE PROCEDURE, again at every CALL) into a small
//! AST of [`Stmt`]s: `BEGIN ... END;` blocks, `IF ... THEN ... [ELSIF ...]
//! [ELSE ...] END IF;`, `EXECUTE <expr>;` (no INTO / USING), `NULL;`,
//! `RETURN;` and static SQL (any other statement, a nested `CALL` included).
//! Every other PL/pgSQL construct (DECLARE and variables, assignments,
//! loops, RAISE, GET DIAGNOSTICS, EXCEPTION blocks, cursors, PERFORM, CASE,
//! SELECT INTO) is refused with "the stand-in does not run this PL/pgSQL
//! statement". Nothing here touches a database: the executor
//! (`exec::procedures`) runs the AST, rewriting every statement with the
//! rewriter when it runs. [`substitute`] puts the procedure's parameter
//! values into a statement's tokens as literals.

use super::{lex, quote_literal, RedshiftError, Tok, TokKind};

/// One PL/pgSQL statement of the supported subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    /// Static SQL, its tokens without the closing `;`.
    Sql(Vec<Tok>),
    /// `IF`: (condition tokens, statements) per IF/ELSIF branch, then ELSE.
    If {
        branches: Vec<(Vec<Tok>, Vec<Stmt>)>,
        otherwise: Vec<Stmt>,
    },
    /// `EXECUTE <expression>`: the expression's tokens.
    Execute(Vec<Tok>),
    /// `NULL;`
    Null,
    /// `RETURN;`
    Return,
    /// A nested `BEGIN ... END;` block.
    Block(Vec<Stmt>),
}

/// A procedure parameter as the body sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Lower-cased name.
    pub name: String,
    /// The value as text, None for NULL.
    pub value: Option<String>,
    /// Declared type, in Redshift spelling (e.g. `varchar(65535)`).
    pub rs_type: String,
}

/// PL/pgSQL statements outside the subset (first word).
const UNSUPPORTED: &[&str] = &[
    "declare",
    "loop",
    "for",
    "foreach",
    "while",
    "exit",
    "continue",
    "get",
    "raise",
    "open",
    "fetch",
    "close",
    "move",
    "perform",
    "assert",
    "case",
    "select",
    "exception",
];

fn unsupported<'a>(toks: impl IntoIterator<Item = &'a Tok>) -> RedshiftError {
    let words: Vec<&str> = toks.into_iter().take(3).map(|t| t.text.as_str()).collect();
    RedshiftError::Unsupported(format!(
        "the stand-in does not run this PL/pgSQL statement: {} (supported in procedure bodies: BEGIN ... END blocks, IF / ELSIF / ELSE, EXECUTE <string>, NULL, RETURN, CALL and SQL statements)",
        words.join(" ")
    ))
}

struct Parser {
    toks: Vec<Tok>,
    /// Indices of the significant tokens.
    sig: Vec<usize>,
    /// Position in `sig`.
    pos: usize,
}

impl Parser {
    fn tok(&self, k: usize) -> Option<&Tok> {
        self.sig.get(self.pos + k).map(|&i| &self.toks[i])
    }

    fn word(&self, k: usize) -> Option<String> {
        self.tok(k).and_then(Tok::word_lower)
    }

    fn rest(&self) -> Vec<&Tok> {
        self.sig[self.pos..]
            .iter()
            .map(|&i| &self.toks[i])
            .collect()
    }

    fn syntax(&self, what: &str) -> RedshiftError {
        let near = match self.tok(0) {
            Some(t) => format!("at or near \"{}\"", t.text),
            None => "at end of the procedure body".to_string(),
        };
        RedshiftError::Syntax(format!("{what} {near} in the procedure body"))
    }

    fn expect_word(&mut self, w: &str) -> Result<(), RedshiftError> {
        if self.word(0).as_deref() != Some(w) {
            return Err(self.syntax(&format!("expected {}", w.to_uppercase())));
        }
        self.pos += 1;
        Ok(())
    }

    fn expect_semicolon(&mut self) -> Result<(), RedshiftError> {
        if !self.tok(0).is_some_and(|t| t.is_punct(";")) {
            return Err(self.syntax("expected \";\""));
        }
        self.pos += 1;
        Ok(())
    }

    /// Tokens from the current position up to (excluding) the first
    /// significant token at paren depth 0 that `stop` accepts; the position
    /// moves to that token.
    fn take_until(&mut self, stop: impl Fn(&Tok, i32) -> bool) -> Result<Vec<Tok>, RedshiftError> {
        let start = self.sig.get(self.pos).copied().unwrap_or(self.toks.len());
        let (mut depth, mut cases) = (0i32, 0i32);
        while let Some(&i) = self.sig.get(self.pos) {
            let t = &self.toks[i];
            if depth == 0 && stop(t, cases) {
                return Ok(self.toks[start..i].to_vec());
            }
            if t.is_punct("(") || t.is_punct("[") {
                depth += 1;
            } else if t.is_punct(")") || t.is_punct("]") {
                depth -= 1;
            } else if t.is_word("case") {
                cases += 1;
            } else if t.is_word("end") && cases > 0 {
                cases -= 1;
            }
            self.pos += 1;
        }
        Err(self.syntax("missing \";\""))
    }

    /// Statements up to END / ELSE / ELSIF (not consumed).
    fn statements(&mut self) -> Result<Vec<Stmt>, RedshiftError> {
        let mut out = Vec::new();
        loop {
            match self.word(0).as_deref() {
                None if self.tok(0).is_none() => return Err(self.syntax("missing END")),
                Some("end") | Some("else") | Some("elsif") | Some("elseif") => return Ok(out),
                _ => out.push(self.statement()?),
            }
        }
    }

    fn statement(&mut self) -> Result<Stmt, RedshiftError> {
        let w0 = self.word(0).unwrap_or_default();
        let semi_next = self.tok(1).is_some_and(|t| t.is_punct(";"));
        let assignment = self
            .tok(1)
            .is_some_and(|t| t.is_punct(":") || t.is_punct("="))
            || (self.tok(1).is_some_and(|t| t.is_punct("."))
                && self
                    .tok(3)
                    .is_some_and(|t| t.is_punct(":") || t.is_punct("=")));
        let label = self.tok(0).is_some_and(|t| t.is_punct("<"));
        match w0.as_str() {
            "if" => self.if_statement(),
            "begin" => {
                self.pos += 1;
                let body = self.statements()?;
                self.expect_word("end")?;
                self.expect_semicolon()?;
                Ok(Stmt::Block(body))
            }
            "execute" => self.execute(),
            "null" | "return" if semi_next => {
                self.pos += 2;
                Ok(if w0 == "null" {
                    Stmt::Null
                } else {
                    Stmt::Return
                })
            }
            "return" => Err(unsupported(self.rest())),
            w if UNSUPPORTED.contains(&w) || assignment || label => Err(unsupported(self.rest())),
            _ => {
                let toks = self.take_until(|t, _| t.is_punct(";"))?;
                self.pos += 1;
                Ok(Stmt::Sql(toks))
            }
        }
    }

    fn execute(&mut self) -> Result<Stmt, RedshiftError> {
        let head: Vec<Tok> = self.rest().into_iter().take(3).cloned().collect();
        self.pos += 1;
        let expr = self.take_until(|t, _| t.is_punct(";"))?;
        self.pos += 1;
        if !expr.iter().any(Tok::is_significant) {
            return Err(RedshiftError::Syntax(
                "EXECUTE needs a command string in the procedure body".into(),
            ));
        }
        let mut depth = 0;
        for t in &expr {
            if t.is_punct("(") {
                depth += 1;
            } else if t.is_punct(")") {
                depth -= 1;
            } else if depth == 0 && (t.is_word("into") || t.is_word("using")) {
                return Err(unsupported(&head));
            }
        }
        Ok(Stmt::Execute(expr))
    }

    fn condition(&mut self) -> Result<Vec<Tok>, RedshiftError> {
        self.pos += 1;
        let cond = self.take_until(|t, cases| cases == 0 && t.is_word("then"))?;
        self.pos += 1;
        if !cond.iter().any(Tok::is_significant) {
            return Err(self.syntax("IF needs a condition"));
        }
        Ok(cond)
    }

    fn if_statement(&mut self) -> Result<Stmt, RedshiftError> {
        let mut branches = vec![(self.condition()?, self.statements()?)];
        let mut otherwise = Vec::new();
        loop {
            match self.word(0).as_deref() {
                Some("elsif") | Some("elseif") => {
                    branches.push((self.condition()?, self.statements()?));
                }
                Some("else") => {
                    self.pos += 1;
                    otherwise = self.statements()?;
                }
                _ => break,
            }
        }
        self.expect_word("end")?;
        self.expect_word("if")?;
        self.expect_semicolon()?;
        Ok(Stmt::If {
            branches,
            otherwise,
        })
    }
}

/// Parses a procedure body (the text between the dollar quotes).
pub fn parse_body(body: &str) -> Result<Vec<Stmt>, RedshiftError> {
    let toks = lex(body)?;
    let sig = (0..toks.len())
        .filter(|&i| toks[i].is_significant())
        .collect();
    let mut p = Parser { toks, sig, pos: 0 };
    if p.word(0).as_deref() != Some("begin") {
        let declare =
            p.word(0).as_deref() == Some("declare") || p.tok(0).is_some_and(|t| t.is_punct("<"));
        return Err(if declare {
            unsupported(p.rest())
        } else {
            p.syntax("a procedure body is BEGIN ... END; expected BEGIN")
        });
    }
    p.pos += 1;
    let stmts = p.statements()?;
    p.expect_word("end")?;
    if p.tok(0).is_some_and(|t| t.is_punct(";")) {
        p.pos += 1;
    }
    if p.tok(0).is_some() {
        return Err(p.syntax("unexpected text after the body's END"));
    }
    Ok(stmts)
}

/// The SQL text of `toks` with every parameter reference replaced by its
/// value as a literal cast to the declared type (`('v'::varchar(10))`, or
/// `(NULL::varchar(10))`). A reference is an unquoted word equal
/// (case-insensitively) to a parameter's name with no `.` right before or
/// after it (so `t.s1` and `s1.x` stay names); `$n` is the n-th parameter.
pub fn substitute(toks: &[Tok], params: &[Param]) -> String {
    let dot_at = |j: Option<usize>| j.is_some_and(|j: usize| toks[j].is_punct("."));
    let mut out = String::new();
    for (i, t) in toks.iter().enumerate() {
        let prev = (0..i).rev().find(|&j| toks[j].is_significant());
        let next = (i + 1..toks.len()).find(|&j| toks[j].is_significant());
        let positional = t.kind == TokKind::Punct && t.text.starts_with('$');
        let param = if positional {
            t.text[1..]
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|n| params.get(n))
        } else {
            (t.kind == TokKind::Word && !dot_at(prev) && !dot_at(next))
                .then(|| params.iter().find(|p| t.text.eq_ignore_ascii_case(&p.name)))
                .flatten()
        };
        match param {
            Some(p) => {
                let v = p.value.as_deref().map(quote_literal);
                out.push_str(&format!(
                    "({}::{})",
                    v.as_deref().unwrap_or("NULL"),
                    p.rs_type
                ));
            }
            None => out.push_str(&t.text),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(toks: &[Tok]) -> String {
        toks.iter()
            .map(|t| t.text.as_str())
            .collect::<String>()
            .trim()
            .to_string()
    }

    #[test]
    fn parses_the_kinesync_executor_shape() {
        let body = "\nBEGIN\n  IF s1 IS NOT NULL THEN\n    EXECUTE REPLACE(s1, CHR(1), CHR(92));\n  END IF;\n  IF s2 IS NOT NULL THEN EXECUTE s2; ELSIF s3 = 'x' THEN NULL; ELSE RETURN; END IF;\n  BEGIN INSERT INTO t VALUES (CASE WHEN 1 = 1 THEN 'a;b' END); END;\n  CALL sp_x(1);\nEND;\n";
        let stmts = parse_body(body).expect("parse");
        assert_eq!(stmts.len(), 4);
        let Stmt::If {
            branches,
            otherwise,
        } = &stmts[0]
        else {
            panic!("{stmts:?}")
        };
        assert_eq!(text(&branches[0].0), "s1 IS NOT NULL");
        assert!(otherwise.is_empty());
        assert!(
            matches!(&branches[0].1[0], Stmt::Execute(e) if text(e) == "REPLACE(s1, CHR(1), CHR(92))")
        );
        let Stmt::If {
            branches,
            otherwise,
        } = &stmts[1]
        else {
            panic!()
        };
        assert_eq!(branches.len(), 2);
        assert_eq!(branches[1].1, vec![Stmt::Null]);
        assert_eq!(otherwise, &vec![Stmt::Return]);
        let Stmt::Block(b) = &stmts[2] else { panic!() };
        assert!(matches!(&b[0], Stmt::Sql(s) if text(s).ends_with("'a;b' END)")));
        assert!(matches!(&stmts[3], Stmt::Sql(s) if text(s) == "CALL sp_x(1)"));
        assert!(parse_body("BEGIN END").expect("empty").is_empty());
    }

    #[test]
    fn refuses_plpgsql_outside_the_subset() {
        for body in [
            "DECLARE n int; BEGIN NULL; END;",
            "BEGIN n := 1; END;",
            "BEGIN GET DIAGNOSTICS n := ROW_COUNT; END;",
            "BEGIN FOR i IN 1..3 LOOP NULL; END LOOP; END;",
            "BEGIN LOOP EXIT; END LOOP; END;",
            "BEGIN WHILE true LOOP NULL; END LOOP; END;",
            "BEGIN RAISE INFO 'x'; END;",
            "BEGIN NULL; EXCEPTION WHEN OTHERS THEN NULL; END;",
            "BEGIN OPEN c FOR SELECT 1; END;",
            "BEGIN SELECT INTO x 1; END;",
            "BEGIN EXECUTE 'select 1' INTO x; END;",
            "BEGIN RETURN 1; END;",
            "<<l>> BEGIN NULL; END;",
        ] {
            let e = parse_body(body).expect_err(body).to_string();
            assert!(
                e.contains("does not run this PL/pgSQL statement"),
                "{body}: {e}"
            );
        }
        assert!(parse_body("BEGIN NULL; END; x").is_err());
        assert!(parse_body("BEGIN IF a THEN NULL; END; END;").is_err());
        assert!(parse_body("NULL;").is_err());
    }

    #[test]
    fn substitutes_unqualified_parameter_words() {
        let params = [
            Param {
                name: "s1".into(),
                value: Some("it's \\".into()),
                rs_type: "varchar(10)".into(),
            },
            Param {
                name: "n".into(),
                value: None,
                rs_type: "integer".into(),
            },
        ];
        let toks = lex("SELECT S1, t.s1, s1.x, \"s1\", n, $2 FROM t WHERE 's1' = s1").expect("lex");
        assert_eq!(
            substitute(&toks, &params),
            "SELECT ('it''s \\'::varchar(10)), t.s1, s1.x, \"s1\", (NULL::integer), (NULL::integer) FROM t WHERE 's1' = ('it''s \\'::varchar(10))"
        );
    }
}
