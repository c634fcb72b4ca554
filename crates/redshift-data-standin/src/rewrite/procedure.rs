//! Stored procedure statements: `CREATE [OR REPLACE] PROCEDURE`, `DROP
//! PROCEDURE` and `CALL` are parsed here into typed [`Action`]s; the
//! executor (`exec::procedures`) keeps procedures in the catalog table
//! `kinesync_standin.procedures` and interprets their bodies at CALL time,
//! statement by statement through the rewriter (see [`super::plpgsql`]).
//! No PostgreSQL procedure is ever created.
//!
//! Checked here, as Redshift documents them: argument types like column
//! types (`VARCHAR(n)` with n <= 65,535, ...), at most 32 input arguments
//! (r_CREATE_PROCEDURE, stored-procedure-constraints), a source of at most
//! 2 MB (2,000,000 bytes: the stricter reading), a dollar-quoted body in
//! LANGUAGE plpgsql, no IF EXISTS in DROP PROCEDURE (r_DROP_PROCEDURE), no
//! query as a CALL argument (r_CALL_procedure). OUT/INOUT arguments,
//! NONATOMIC, SECURITY DEFINER and SET clauses are not emulated.

use super::plpgsql;
use super::{
    check_type_args, matching_close, near, parse_qname, parse_type, sig_word, translate, Action,
    Context, RedshiftError, Session, Tok, TokKind, Translator,
};

/// Largest procedure source (the body between the dollar quotes), in bytes:
/// "2 MB" read as 2,000,000 (stored-procedure-constraints).
pub const MAX_SOURCE_BYTES: usize = 2_000_000;
/// Most input arguments of a procedure (r_CREATE_PROCEDURE).
pub const MAX_INPUT_ARGS: usize = 32;
/// Most stored procedures in one database (stored-procedure-constraints).
pub const MAX_PROCEDURES: i64 = 10_000;
/// Deepest nesting of calls, the outermost CALL being level 1 (r_CALL_procedure).
pub const MAX_NESTING: u32 = 16;

/// One declared argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcArg {
    /// Lower-cased name; empty when the argument has none.
    pub name: String,
    /// Normalized Redshift type, e.g. `varchar(65535)`, `numeric(18,0)`.
    pub rs_type: String,
}

impl ProcArg {
    /// The type without its modifiers: what identifies a procedure.
    pub fn base(&self) -> &str {
        type_base(&self.rs_type)
    }
}

/// The type name of a normalized type without `(..)`.
pub fn type_base(rs_type: &str) -> &str {
    rs_type.split('(').next().unwrap_or(rs_type)
}

/// A procedure's identity: its input argument types without modifiers.
pub fn signature(args: &[ProcArg]) -> String {
    args.iter().map(ProcArg::base).collect::<Vec<_>>().join(",")
}

/// `name(type, ...)` for messages.
pub fn display(schema: Option<&str>, name: &str, types: &[String]) -> String {
    let q = schema.map(|s| format!("{s}.")).unwrap_or_default();
    format!("{q}{name}({})", types.join(", "))
}

/// A parsed `CREATE [OR REPLACE] PROCEDURE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcedureDef {
    pub schema: String,
    pub name: String,
    pub replace: bool,
    pub args: Vec<ProcArg>,
    /// The body between the dollar quotes.
    pub body: String,
}

/// A parsed `DROP PROCEDURE` (input arguments only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropProcedure {
    pub schema: String,
    pub name: String,
    pub args: Vec<ProcArg>,
}

/// A parsed `CALL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSpec {
    /// None: looked up along the search path.
    pub schema: Option<String>,
    pub name: String,
    /// `SELECT <arguments>` translated to PostgreSQL; None without arguments.
    pub select_sql: Option<String>,
    /// Per argument: a bare string literal or NULL (of no type yet, like
    /// PostgreSQL's `unknown`: it fits any argument type).
    pub untyped: Vec<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    In,
    Out,
    InOut,
}

fn unsupported(what: &str) -> RedshiftError {
    RedshiftError::Unsupported(format!("{what} is not supported by the stand-in"))
}

/// Normalized Redshift spelling of an argument type; types are checked
/// like column types (check_type_args). A bare VARCHAR is VARCHAR(256), as
/// in a CREATE TABLE column list.
fn normalize_type(base: &str, args: &[String]) -> Result<String, RedshiftError> {
    let args = check_type_args(base, args)?;
    let first = |default: &str| args.first().cloned().unwrap_or_else(|| default.to_string());
    Ok(match base {
        "varchar" | "character varying" | "char varying" | "nvarchar" | "text" => {
            format!("varchar({})", first("256"))
        }
        "char" | "character" | "nchar" | "bpchar" => format!("char({})", first("1")),
        "decimal" | "numeric" => {
            let scale = args.get(1).cloned().unwrap_or_else(|| "0".into());
            format!("numeric({},{scale})", first("18"))
        }
        "smallint" | "int2" => "smallint".into(),
        "integer" | "int" | "int4" => "integer".into(),
        "bigint" | "int8" => "bigint".into(),
        "real" | "float4" => "real".into(),
        "double precision" | "float8" | "float" => "double precision".into(),
        "boolean" | "bool" => "boolean".into(),
        "date" => "date".into(),
        "timestamp" | "timestamp without time zone" => "timestamp".into(),
        "timestamptz" | "timestamp with time zone" => "timestamptz".into(),
        "time" | "time without time zone" => "time".into(),
        "timetz" | "time with time zone" => "timetz".into(),
        "super" => "super".into(),
        "varbyte" | "varbinary" | "binary varying" => "varbyte".into(),
        "refcursor" => return Err(unsupported("a refcursor argument")),
        other => {
            return Err(RedshiftError::Invalid(format!(
                "type \"{other}\" is not a Redshift data type the stand-in accepts for a procedure argument"
            )))
        }
    })
}

/// Parses one `[argname] [argmode] argtype` (name and mode in either order).
fn parse_arg(toks: &[Tok], tr: &Translator<'_>) -> Result<(String, Mode, String), RedshiftError> {
    let sig: Vec<usize> = (0..toks.len())
        .filter(|&i| toks[i].is_significant())
        .collect();
    let mode_of = |k: usize| match sig.get(k).and_then(|&i| toks[i].word_lower()).as_deref() {
        Some("in") => Some(Mode::In),
        Some("out") => Some(Mode::Out),
        Some("inout") => Some(Mode::InOut),
        _ => None,
    };
    let last = sig.last().copied().unwrap_or(0);
    let whole = |k: usize| {
        sig.get(k)
            .and_then(|&s| parse_type(toks, s))
            .filter(|t| t.end > last)
    };
    let syntax =
        |k: usize| RedshiftError::Syntax(near(toks, sig.get(k).copied().unwrap_or(toks.len())));
    let (mode, name_at, spec) = match (mode_of(0), mode_of(1)) {
        // name IN type
        (None, Some(m)) => (m, Some(0), whole(2).ok_or_else(|| syntax(2))?),
        (m0, _) => {
            let from = usize::from(m0.is_some());
            match whole(from) {
                Some(t) => (m0.unwrap_or(Mode::In), None, t),
                None => (
                    m0.unwrap_or(Mode::In),
                    Some(from),
                    whole(from + 1).ok_or_else(|| syntax(from + 1))?,
                ),
            }
        }
    };
    let name = match name_at {
        Some(k) if toks[sig[k]].is_ident() => tr.fold(&toks[sig[k]]),
        Some(k) => return Err(syntax(k)),
        None => String::new(),
    };
    Ok((name, mode, normalize_type(&spec.base, &spec.args)?))
}

/// The arguments between the parentheses at `open`..`close`.
fn parse_args(
    toks: &[Tok],
    open: usize,
    close: usize,
    tr: &Translator<'_>,
) -> Result<Vec<(String, Mode, String)>, RedshiftError> {
    let inner = &toks[open + 1..close];
    if !inner.iter().any(Tok::is_significant) {
        return Ok(Vec::new());
    }
    let d = super::depths(inner);
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..=inner.len() {
        if i == inner.len() || d[i] == 0 && inner[i].is_punct(",") {
            let piece = &inner[start..i];
            if !piece.iter().any(Tok::is_significant) {
                return Err(RedshiftError::Syntax(near(toks, open + 1 + i)));
            }
            out.push(parse_arg(piece, tr)?);
            start = i + 1;
        }
    }
    Ok(out)
}

/// `(` at significant position `pos` and its matching `)` (token indices).
fn parens(toks: &[Tok], sig: &[usize], pos: usize) -> Result<(usize, usize), RedshiftError> {
    let open = sig
        .get(pos)
        .copied()
        .filter(|&o| toks[o].is_punct("("))
        .ok_or_else(|| {
            RedshiftError::Syntax(near(toks, sig.get(pos).copied().unwrap_or(toks.len())))
        })?;
    let close =
        matching_close(toks, open).ok_or_else(|| RedshiftError::Syntax(near(toks, open)))?;
    Ok((open, close))
}

/// True for `CREATE [OR REPLACE] PROCEDURE`.
pub(super) fn is_create(toks: &[Tok], sig: &[usize]) -> bool {
    let w = |k: usize| sig_word(toks, sig, k);
    w(1).as_deref() == Some("procedure")
        || (w(1).as_deref() == Some("or")
            && w(2).as_deref() == Some("replace")
            && w(3).as_deref() == Some("procedure"))
}

/// The body of a dollar-quoted string token.
fn dollar_body(t: &Tok) -> Option<String> {
    if t.kind != TokKind::Str || !t.text.starts_with('$') {
        return None;
    }
    let tag_len = t.text[1..].find('$')? + 2;
    (t.text.len() >= 2 * tag_len).then(|| t.text[tag_len..t.text.len() - tag_len].to_string())
}

/// The clauses after the argument list: `AS $$body$$`, `LANGUAGE plpgsql`
/// (either order), `SECURITY INVOKER`; returns the body.
fn clauses(toks: &[Tok], sig: &[usize], mut pos: usize) -> Result<String, RedshiftError> {
    let (mut body, mut language) = (None, false);
    while let Some(&i) = sig.get(pos) {
        let next = sig.get(pos + 1).map(|&n| &toks[n]);
        match toks[i].word_lower().as_deref() {
            Some("as") => {
                let b = next.and_then(dollar_body).ok_or_else(|| {
                    RedshiftError::Syntax("the procedure body must be dollar-quoted: AS $$ ... $$ (r_CREATE_PROCEDURE)".into())
                })?;
                body = Some(b);
            }
            Some("language") => match next.and_then(Tok::word_lower).as_deref() {
                Some("plpgsql") => language = true,
                _ => {
                    return Err(RedshiftError::Invalid(
                        "a Redshift stored procedure is LANGUAGE plpgsql".into(),
                    ))
                }
            },
            Some("security") if next.is_some_and(|t| t.is_word("invoker")) => {}
            Some("security") => return Err(unsupported("SECURITY DEFINER")),
            Some("nonatomic") => return Err(unsupported("a NONATOMIC procedure")),
            Some("set") => {
                return Err(unsupported(
                    "a SET configuration clause in CREATE PROCEDURE",
                ))
            }
            _ => return Err(RedshiftError::Syntax(near(toks, i))),
        }
        pos += 2;
    }
    if !language {
        return Err(RedshiftError::Syntax(
            "CREATE PROCEDURE needs LANGUAGE plpgsql".into(),
        ));
    }
    body.ok_or_else(|| RedshiftError::Syntax("CREATE PROCEDURE needs AS $$ body $$".into()))
}

/// Input arguments of a parsed list, refusing OUT/INOUT when `create`.
fn input_args(
    parsed: Vec<(String, Mode, String)>,
    create: bool,
) -> Result<Vec<ProcArg>, RedshiftError> {
    let mut args = Vec::new();
    for (name, mode, rs_type) in parsed {
        match mode {
            Mode::In => args.push(ProcArg { name, rs_type }),
            _ if create => return Err(unsupported("an OUT or INOUT procedure argument")),
            Mode::Out => {}
            Mode::InOut => args.push(ProcArg { name, rs_type }),
        }
    }
    Ok(args)
}

/// `CREATE [OR REPLACE] PROCEDURE name (args) AS $$ body $$ LANGUAGE plpgsql`.
pub(super) fn create(
    toks: &[Tok],
    sig: &[usize],
    session: &Session,
    ctx: &Context,
) -> Result<Action, RedshiftError> {
    let tr = Translator::new(toks, session, ctx);
    let replace = sig_word(toks, sig, 1).as_deref() == Some("or");
    let (q, next) = parse_qname(&tr, sig, if replace { 4 } else { 2 })?;
    let (open, close) = parens(toks, sig, next)?;
    let args = input_args(parse_args(toks, open, close, &tr)?, true)?;
    if args.len() > MAX_INPUT_ARGS {
        return Err(RedshiftError::Invalid(format!(
            "procedure {} has {} input arguments: Redshift allows at most {MAX_INPUT_ARGS}",
            q.name,
            args.len()
        )));
    }
    let after = sig.iter().position(|&s| s > close).unwrap_or(sig.len());
    let body = clauses(toks, sig, after)?;
    if body.len() > MAX_SOURCE_BYTES {
        return Err(RedshiftError::Invalid(format!(
            "the source of procedure {} is {} bytes: Redshift allows at most 2 MB ({MAX_SOURCE_BYTES} bytes on the stand-in)",
            q.name,
            body.len()
        )));
    }
    plpgsql::parse_body(&body)?;
    Ok(Action::CreateProcedure(Box::new(ProcedureDef {
        schema: q.schema.unwrap_or_else(|| ctx.current_schema.clone()),
        name: q.name,
        replace,
        args,
        body,
    })))
}

/// `DROP PROCEDURE name ( [argname] [argmode] argtype, ... )`.
pub(super) fn drop(
    toks: &[Tok],
    sig: &[usize],
    session: &Session,
    ctx: &Context,
) -> Result<Action, RedshiftError> {
    if sig_word(toks, sig, 2).as_deref() == Some("if") {
        return Err(RedshiftError::Syntax(
            "DROP PROCEDURE has no IF EXISTS on Redshift (r_DROP_PROCEDURE)".into(),
        ));
    }
    let tr = Translator::new(toks, session, ctx);
    let (q, next) = parse_qname(&tr, sig, 2)?;
    let (open, close) = parens(toks, sig, next)?;
    let args = input_args(parse_args(toks, open, close, &tr)?, false)?;
    if let Some(&extra) = sig.iter().find(|&&s| s > close) {
        return Err(RedshiftError::Syntax(near(toks, extra)));
    }
    Ok(Action::DropProcedure(Box::new(DropProcedure {
        schema: q.schema.unwrap_or_else(|| ctx.current_schema.clone()),
        name: q.name,
        args,
    })))
}

/// `CALL name ( [argument] [, ...] )`.
pub(super) fn call(
    toks: &[Tok],
    sig: &[usize],
    session: &Session,
    ctx: &Context,
) -> Result<Action, RedshiftError> {
    let tr = Translator::new(toks, session, ctx);
    let (q, next) = parse_qname(&tr, sig, 1)?;
    let (open, close) = parens(toks, sig, next)?;
    if let Some(&extra) = sig.iter().find(|&&s| s > close) {
        return Err(RedshiftError::Syntax(near(toks, extra)));
    }
    let inner = &toks[open + 1..close];
    if inner.iter().any(|t| t.is_word("select")) {
        return Err(RedshiftError::Invalid(
            "a CALL argument must be a value: you can't use queries as CALL arguments (r_CALL_procedure)".into(),
        ));
    }
    let d = super::depths(inner);
    let mut untyped = Vec::new();
    let mut piece: Vec<&Tok> = Vec::new();
    for i in 0..=inner.len() {
        if i == inner.len() || d[i] == 0 && inner[i].is_punct(",") {
            if piece.is_empty() && (i < inner.len() || !untyped.is_empty()) {
                return Err(RedshiftError::Syntax(near(toks, open + 1 + i)));
            }
            if !piece.is_empty() {
                untyped.push(
                    matches!(piece.as_slice(), [t] if t.kind == TokKind::Str || t.is_word("null")),
                );
            }
            piece.clear();
        } else if inner[i].is_significant() {
            piece.push(&inner[i]);
        }
    }
    let select_sql = if untyped.is_empty() {
        None
    } else {
        let mut sel = vec![
            Tok::new(TokKind::Word, "SELECT"),
            Tok::new(TokKind::Space, " "),
        ];
        sel.extend_from_slice(inner);
        Some(translate(&sel, session, ctx)?)
    };
    Ok(Action::Call(Box::new(CallSpec {
        schema: q.schema,
        name: q.name,
        select_sql,
        untyped,
    })))
}

#[cfg(test)]
mod tests {
    use super::super::{rewrite_statement, split_statements, Action, Context, Session};
    use super::*;

    fn action(sql: &str) -> Result<Action, RedshiftError> {
        let ctx = Context {
            current_schema: "public".into(),
            ..Context::default()
        };
        let stmts = split_statements(sql)?;
        rewrite_statement(&stmts[0], &mut Session::default(), &ctx)
    }

    fn created(sql: &str) -> ProcedureDef {
        match action(sql) {
            Ok(Action::CreateProcedure(def)) => *def,
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn create_parses_names_modes_and_types() {
        let def = created(
            "CREATE OR REPLACE PROCEDURE Mirror.SP_x(a VARCHAR(MAX), IN b int, c IN double precision, numeric(10,2), ts timestamp with time zone, IN \"Q\" text) LANGUAGE plpgsql AS $body$ BEGIN NULL; END; $body$",
        );
        assert_eq!(
            (def.schema.as_str(), def.name.as_str(), def.replace),
            ("mirror", "sp_x", true)
        );
        let got: Vec<(&str, &str)> = def
            .args
            .iter()
            .map(|a| (a.name.as_str(), a.rs_type.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", "varchar(65535)"),
                ("b", "integer"),
                ("c", "double precision"),
                ("", "numeric(10,2)"),
                ("ts", "timestamptz"),
                ("q", "varchar(256)")
            ]
        );
        assert_eq!(
            signature(&def.args),
            "varchar,integer,double precision,numeric,timestamptz,varchar"
        );
        assert_eq!(def.body, " BEGIN NULL; END; ");
        let def = created("CREATE PROCEDURE p() AS $$ BEGIN END $$ LANGUAGE plpgsql");
        assert_eq!(
            (def.schema.as_str(), def.args.len(), def.replace),
            ("public", 0, false)
        );
    }

    #[test]
    fn create_refuses_what_is_not_emulated() {
        for (sql, want) in [
            (
                "CREATE PROCEDURE p(a OUT int) AS $$ BEGIN END; $$ LANGUAGE plpgsql",
                "OUT or INOUT",
            ),
            (
                "CREATE PROCEDURE p(INOUT a int) AS $$ BEGIN END; $$ LANGUAGE plpgsql",
                "OUT or INOUT",
            ),
            (
                "CREATE PROCEDURE p() NONATOMIC AS $$ BEGIN END; $$ LANGUAGE plpgsql",
                "NONATOMIC",
            ),
            (
                "CREATE PROCEDURE p() AS $$ BEGIN END; $$ LANGUAGE plpgsql SECURITY DEFINER",
                "SECURITY DEFINER",
            ),
            (
                "CREATE PROCEDURE p() AS $$ BEGIN END; $$ LANGUAGE plpgsql SET search_path TO x",
                "SET configuration",
            ),
            (
                "CREATE PROCEDURE p(a varchar(65536)) AS $$ BEGIN END; $$ LANGUAGE plpgsql",
                "cannot exceed 65535",
            ),
            (
                "CREATE PROCEDURE p(a foo) AS $$ BEGIN END; $$ LANGUAGE plpgsql",
                "not a Redshift data type",
            ),
            (
                "CREATE PROCEDURE p() AS 'BEGIN END;' LANGUAGE plpgsql",
                "dollar-quoted",
            ),
            (
                "CREATE PROCEDURE p() AS $$ BEGIN END; $$ LANGUAGE sql",
                "LANGUAGE plpgsql",
            ),
            (
                "CREATE PROCEDURE p() AS $$ BEGIN END; $$",
                "LANGUAGE plpgsql",
            ),
            (
                "CREATE PROCEDURE p() AS $$ BEGIN RAISE INFO 'x'; END; $$ LANGUAGE plpgsql",
                "does not run this PL/pgSQL",
            ),
        ] {
            let e = action(sql).expect_err(sql).to_string();
            assert!(e.contains(want), "{sql}: {e}");
        }
    }

    #[test]
    fn drop_and_call_shapes() {
        let Ok(Action::DropProcedure(d)) =
            action("DROP PROCEDURE s.p(a INOUT bigint, IN numeric, r OUT int)")
        else {
            panic!()
        };
        assert_eq!(signature(&d.args), "bigint,numeric");
        assert!(action("DROP PROCEDURE IF EXISTS p()").is_err());
        assert!(action("DROP PROCEDURE p").is_err());
        let Ok(Action::Call(c)) = action("CALL s.p('a', NULL, 1, NULL::int, f(1, 2))") else {
            panic!()
        };
        assert_eq!(c.untyped, [true, true, false, false, false]);
        assert_eq!(
            c.select_sql.as_deref(),
            Some("SELECT 'a', NULL, 1, NULL::int, f(1, 2)")
        );
        let Ok(Action::Call(c)) = action("CALL p()") else {
            panic!()
        };
        assert_eq!((c.schema, c.select_sql), (None, None));
        let e = action("CALL p((SELECT 1))").expect_err("query").to_string();
        assert!(e.contains("can't use queries as CALL arguments"), "{e}");
        assert!(action("CALL p(1,)").is_err());
    }
}
