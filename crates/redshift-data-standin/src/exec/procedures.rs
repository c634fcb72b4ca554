//! Stored procedures, emulated by the stand-in itself (no PostgreSQL
//! procedure is created): CREATE PROCEDURE stores the definition in
//! `kinesync_standin.procedures` (identity: schema, name, input argument
//! types without modifiers); CALL evaluates the arguments (`SELECT <args>`
//! on the session's connection), checks them against the declared types,
//! and interprets the body's [`Stmt`]s one by one:
//!
//! - static SQL: the parameters are put in as literals
//!   ([`plpgsql::substitute`]), then the statement goes through
//!   [`run_statement`] exactly like a batch sub-statement (same session,
//!   a freshly loaded context, the rewriter, the same actions: a nested
//!   CALL recurses here);
//! - `IF` / `EXECUTE` expressions: parameters substituted, rewritten,
//!   evaluated with `SELECT (<expr>)`; the EXECUTEd string must be one
//!   statement and runs through [`run_statement`] without substitution.
//!
//! A CALL outside a batch runs in a transaction of its own (an error rolls
//! back what it did; COMMIT / ROLLBACK / TRUNCATE in it commit or roll back
//! and open a new one, as Redshift documents); inside a batch COMMIT,
//! ROLLBACK and TRUNCATE fail, in nested calls too
//! (stored-procedure-transaction-management). COMMIT and ROLLBACK never run
//! from dynamic SQL (c_PLpgSQL-statements). Calls nest at most 16 deep.

use std::collections::HashMap;

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row, SimpleQueryMessage};

use super::{cancelled, load_context, run_statement, txn, BoxFuture, Exec, ExecError, Scope};
use crate::rewrite::plpgsql::{self, Param, Stmt};
use crate::rewrite::procedure::{
    self, CallSpec, DropProcedure, ProcArg, ProcedureDef, MAX_NESTING, MAX_PROCEDURES,
};
use crate::rewrite::{self, quote_literal, Action, Context, RedshiftError, Session, Tok};

/// Serializes procedure creation in a database (the 10,000 limit).
const CREATE_LOCK: i64 = 0x6b73_7072_6f63_0001;

/// Data API parameters do not reach a procedure's statements.
const NO_PARAMS: &Option<HashMap<String, String>> = &None;

fn fail(message: String) -> ExecError {
    ExecError::Other(message)
}

/// Stores a procedure (CREATE [OR REPLACE] PROCEDURE).
pub(super) async fn create(client: &Client, def: &ProcedureDef) -> Result<(), ExecError> {
    let schema_exists = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1",
            &[&def.schema],
        )
        .await?
        .is_some();
    if !schema_exists {
        return Err(fail(format!("schema \"{}\" does not exist", def.schema)));
    }
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&CREATE_LOCK])
        .await?;
    let signature = procedure::signature(&def.args);
    let exists = client
        .query_opt(
            "SELECT 1 FROM kinesync_standin.procedures \
             WHERE schema_name = $1 AND proc_name = $2 AND arg_signature = $3",
            &[&def.schema, &def.name, &signature],
        )
        .await?
        .is_some();
    let types: Vec<String> = def.args.iter().map(|a| a.rs_type.clone()).collect();
    let shown = procedure::display(Some(&def.schema), &def.name, &types);
    if exists && !def.replace {
        return Err(fail(format!(
            "procedure {shown} already exists with the same argument types (use CREATE OR REPLACE PROCEDURE)"
        )));
    }
    if !exists {
        let n: i64 = client
            .query_one("SELECT count(*) FROM kinesync_standin.procedures", &[])
            .await?
            .get(0);
        if n >= MAX_PROCEDURES {
            return Err(fail(format!(
                "cannot create procedure {shown}: a database holds at most {MAX_PROCEDURES} stored procedures (stored-procedure-constraints)"
            )));
        }
    }
    let names: Vec<String> = def.args.iter().map(|a| a.name.clone()).collect();
    client
        .execute(
            "INSERT INTO kinesync_standin.procedures \
             (schema_name, proc_name, arg_signature, arg_names, arg_types, body) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (schema_name, proc_name, arg_signature) DO UPDATE SET \
             arg_names = EXCLUDED.arg_names, arg_types = EXCLUDED.arg_types, \
             body = EXCLUDED.body, created_at = EXCLUDED.created_at",
            &[
                &def.schema,
                &def.name,
                &signature,
                &names,
                &types,
                &def.body,
            ],
        )
        .await?;
    Ok(())
}

/// Forgets a procedure (DROP PROCEDURE).
pub(super) async fn drop(client: &Client, spec: &DropProcedure) -> Result<(), ExecError> {
    let n = client
        .execute(
            "DELETE FROM kinesync_standin.procedures \
             WHERE schema_name = $1 AND proc_name = $2 AND arg_signature = $3",
            &[&spec.schema, &spec.name, &procedure::signature(&spec.args)],
        )
        .await?;
    if n == 0 {
        let types: Vec<String> = spec.args.iter().map(|a| a.base().to_string()).collect();
        let shown = procedure::display(Some(&spec.schema), &spec.name, &types);
        return Err(fail(format!("procedure {shown} does not exist")));
    }
    Ok(())
}

/// One evaluated CALL argument.
struct Value {
    ty: Type,
    text: Option<String>,
    /// A bare literal or NULL: fits any argument type.
    untyped: bool,
}

/// A stored procedure found for a CALL.
struct Found {
    schema: String,
    args: Vec<ProcArg>,
    body: String,
}

/// Runs a CALL: nesting limit, arguments, lookup, then the body.
pub(super) async fn call(
    x: &Exec<'_>,
    session: &mut Session,
    spec: &CallSpec,
    scope: Scope,
) -> Result<(), ExecError> {
    let depth = scope.depth + 1;
    if depth > MAX_NESTING {
        return Err(fail(format!(
            "stored procedure calls nest at most {MAX_NESTING} levels deep (r_CALL_procedure): calling {} would be level {depth}",
            spec.name
        )));
    }
    let values = eval_args(x.client, spec).await?;
    let found = resolve(x.client, spec, &values).await?;
    let params = check_values(x.client, &found.args, values).await?;
    let body = plpgsql::parse_body(&found.body)?;
    let name = format!("{}.{}", found.schema, spec.name);
    let inner = Scope {
        in_batch: scope.in_batch,
        depth,
    };
    let run = async {
        run_block(x, session, &params, &body, inner).await?;
        Ok(())
    };
    txn(x.client, scope.in_txn(), run)
        .await
        .map_err(|e| ExecError::InProcedure {
            name,
            source: Box::new(e),
        })
}

/// Evaluates the CALL's arguments with `SELECT <arguments>`, as text.
async fn eval_args(client: &Client, spec: &CallSpec) -> Result<Vec<Value>, ExecError> {
    let Some(sql) = &spec.select_sql else {
        return Ok(Vec::new());
    };
    let types: Vec<Type> = client
        .prepare(sql)
        .await?
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    let messages = client.simple_query(sql).await?;
    let row = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .ok_or_else(|| fail("the CALL arguments gave no value".into()))?;
    Ok(types
        .into_iter()
        .enumerate()
        .map(|(i, ty)| Value {
            ty,
            text: row.try_get(i).ok().flatten().map(str::to_string),
            untyped: spec.untyped.get(i).copied().unwrap_or(false),
        })
        .collect())
}

/// Type category, to match arguments to overloads (PostgreSQL's typcategory).
fn value_category(t: &Type) -> Option<char> {
    Some(match *t {
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => 'S',
        Type::INT2 | Type::INT4 | Type::INT8 | Type::NUMERIC | Type::FLOAT4 | Type::FLOAT8 => 'N',
        Type::BOOL => 'B',
        Type::DATE | Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::TIME | Type::TIMETZ => 'D',
        Type::JSONB | Type::JSON => 'U',
        Type::BYTEA => 'V',
        _ => return None,
    })
}

fn arg_category(base: &str) -> Option<char> {
    Some(match base {
        "varchar" | "char" => 'S',
        "smallint" | "integer" | "bigint" | "numeric" | "real" | "double precision" => 'N',
        "boolean" => 'B',
        "date" | "timestamp" | "timestamptz" | "time" | "timetz" => 'D',
        "super" => 'U',
        "varbyte" => 'V',
        _ => return None,
    })
}

/// How well `values` fit `args`: None if one does not fit, else a score:
/// 2 per value of the argument's category, 1 per literal or NULL for a
/// string argument (PostgreSQL prefers the string category for them).
fn fit(args: &[ProcArg], values: &[Value]) -> Option<usize> {
    let mut score = 0;
    for (a, v) in args.iter().zip(values) {
        let (want, got) = (arg_category(a.base()), value_category(&v.ty));
        if v.untyped {
            score += usize::from(want == Some('S'));
        } else if got.is_some() && want.is_some() {
            if want != got {
                return None;
            }
            score += 2;
        }
    }
    Some(score)
}

/// PostgreSQL's name of a value's type in messages (`unknown` for a literal).
fn shown_type(v: &Value) -> String {
    if v.untyped {
        return "unknown".into();
    }
    match v.ty {
        Type::INT2 => "smallint",
        Type::INT4 => "integer",
        Type::INT8 => "bigint",
        Type::FLOAT4 => "real",
        Type::FLOAT8 => "double precision",
        Type::BOOL => "boolean",
        Type::VARCHAR => "character varying",
        Type::BPCHAR => "character",
        Type::TIMESTAMP => "timestamp without time zone",
        Type::TIMESTAMPTZ => "timestamp with time zone",
        Type::JSONB => "super",
        Type::BYTEA => "varbyte",
        _ => v.ty.name(),
    }
    .to_string()
}

/// Candidates: the procedures of that name and argument count in the named
/// schema, or in the first schema of the search path that has any.
const RESOLVE_SQL: &str = "SELECT p.schema_name, p.arg_names, p.arg_types, p.body \
    FROM kinesync_standin.procedures p \
    WHERE p.proc_name = $1::text AND cardinality(p.arg_types) = $2::int4 \
      AND p.schema_name = COALESCE($3::text, \
        (SELECT s.name::text FROM unnest(current_schemas(false)) WITH ORDINALITY AS s(name, n) \
          WHERE EXISTS (SELECT 1 FROM kinesync_standin.procedures q \
                         WHERE q.schema_name = s.name::text AND q.proc_name = $1::text \
                           AND cardinality(q.arg_types) = $2::int4) \
          ORDER BY s.n LIMIT 1))";

/// Finds the procedure a CALL names (overloads told apart by argument
/// type categories).
async fn resolve(client: &Client, spec: &CallSpec, values: &[Value]) -> Result<Found, ExecError> {
    let n = i32::try_from(values.len()).unwrap_or(i32::MAX);
    let rows = client
        .query(RESOLVE_SQL, &[&spec.name, &n, &spec.schema])
        .await?;
    let mut best: Vec<(usize, Found)> = Vec::new();
    for row in rows {
        let names: Vec<String> = row.get(1);
        let types: Vec<String> = row.get(2);
        let args: Vec<ProcArg> = names
            .into_iter()
            .zip(types)
            .map(|(name, rs_type)| ProcArg { name, rs_type })
            .collect();
        let Some(score) = fit(&args, values) else {
            continue;
        };
        if best.first().is_some_and(|(s, _)| *s > score) {
            continue;
        }
        if best.first().is_some_and(|(s, _)| *s < score) {
            best.clear();
        }
        best.push((
            score,
            Found {
                schema: row.get(0),
                args,
                body: row.get(3),
            },
        ));
    }
    let types: Vec<String> = values.iter().map(shown_type).collect();
    let shown = procedure::display(spec.schema.as_deref(), &spec.name, &types);
    match best.len() {
        0 => Err(fail(format!("procedure {shown} does not exist"))),
        1 => Ok(best.remove(0).1),
        _ => Err(fail(format!("procedure {shown} is not unique"))),
    }
}

/// `(limit, PostgreSQL type name)` of a VARCHAR(n) / CHAR(n) argument type.
fn byte_limit(rs_type: &str) -> Option<(usize, &'static str)> {
    let (rest, name) = match rs_type.strip_prefix("varchar(") {
        Some(r) => (r, "character varying"),
        None => (rs_type.strip_prefix("char(")?, "character"),
    };
    Some((rest.strip_suffix(')')?.parse().ok()?, name))
}

/// Checks each value against its argument's type (VARCHAR/CHAR lengths in
/// bytes, as Redshift counts them; every other type by a cast) and returns
/// the parameters with the values as the declared type prints them.
async fn check_values(
    client: &Client,
    args: &[ProcArg],
    values: Vec<Value>,
) -> Result<Vec<Param>, ExecError> {
    let mut casts = Vec::new();
    for (a, v) in args.iter().zip(&values) {
        let Some(text) = &v.text else { continue };
        if let Some((limit, pg_name)) = byte_limit(&a.rs_type) {
            if text.len() > limit {
                return Err(fail(format!("value too long for type {pg_name}({limit})")));
            }
        }
        casts.push(format!("({}::{})::text", quote_literal(text), a.rs_type));
    }
    let mut cast = Vec::new();
    if !casts.is_empty() {
        let sql = format!("SELECT {}", casts.join(", "));
        let pg = rewrite::translate(
            &rewrite::lex(&sql)?,
            &Session::default(),
            &Context::default(),
        )?;
        for m in client.simple_query(&pg).await? {
            if let SimpleQueryMessage::Row(r) = m {
                cast = (0..r.len())
                    .map(|i| r.try_get(i).ok().flatten().map(str::to_string))
                    .collect();
            }
        }
    }
    let mut cast = cast.into_iter();
    Ok(args
        .iter()
        .zip(values)
        .map(|(a, v)| Param {
            name: a.name.clone(),
            value: v.text.and_then(|_| cast.next().flatten()),
            rs_type: a.rs_type.clone(),
        })
        .collect())
}

/// What a block tells its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Next,
    Return,
}

/// Runs a list of statements.
fn run_block<'a>(
    x: &'a Exec<'a>,
    session: &'a mut Session,
    params: &'a [Param],
    stmts: &'a [Stmt],
    scope: Scope,
) -> BoxFuture<'a, Result<Flow, ExecError>> {
    Box::pin(async move {
        for stmt in stmts {
            if cancelled(x.handle) {
                return Err(fail("the statement was cancelled".into()));
            }
            let flow = match stmt {
                Stmt::Sql(toks) => {
                    let sql = plpgsql::substitute(toks, params);
                    for one in rewrite::split_statements(&sql)? {
                        run_in_procedure(x, session, &one, scope, false).await?;
                    }
                    Flow::Next
                }
                Stmt::Execute(expr) => {
                    run_dynamic(x, session, params, expr, scope).await?;
                    Flow::Next
                }
                Stmt::If {
                    branches,
                    otherwise,
                } => {
                    let mut chosen = otherwise;
                    for (cond, body) in branches {
                        if eval_condition(x, session, params, cond).await? {
                            chosen = body;
                            break;
                        }
                    }
                    run_block(x, session, params, chosen, scope).await?
                }
                Stmt::Block(body) => run_block(x, session, params, body, scope).await?,
                Stmt::Null => Flow::Next,
                Stmt::Return => Flow::Return,
            };
            if flow == Flow::Return {
                return Ok(Flow::Return);
            }
        }
        Ok(Flow::Next)
    })
}

/// Evaluates an expression of the body (parameters substituted) with
/// `SELECT (<expr>)<suffix>`, rewritten with a fresh context.
async fn eval(
    x: &Exec<'_>,
    session: &mut Session,
    params: &[Param],
    expr: &[Tok],
    suffix: &str,
) -> Result<Row, ExecError> {
    let sql = format!("SELECT ({}){suffix}", plpgsql::substitute(expr, params));
    let stmts = rewrite::split_statements(&sql)?;
    let [stmt] = stmts.as_slice() else {
        return Err(RedshiftError::Syntax(format!("not one expression: {sql}")).into());
    };
    let ctx = load_context(x.client, NO_PARAMS, true).await?;
    match rewrite::rewrite_statement(stmt, session, &ctx)? {
        Action::Sql(pg) => Ok(x.client.query_one(&pg, &[]).await?),
        other => Err(fail(format!("not an expression: {other:?}"))),
    }
}

/// An IF condition: true, or false (also when NULL, as in PL/pgSQL).
async fn eval_condition(
    x: &Exec<'_>,
    session: &mut Session,
    params: &[Param],
    cond: &[Tok],
) -> Result<bool, ExecError> {
    let row = eval(x, session, params, cond, "").await?;
    let ty = row.columns().first().map(|c| c.type_().clone());
    if ty != Some(Type::BOOL) {
        let name = ty.map(|t| t.name().to_string()).unwrap_or_default();
        return Err(fail(format!("an IF condition must be boolean, not {name}")));
    }
    Ok(row.try_get::<_, Option<bool>>(0)?.unwrap_or(false))
}

/// `EXECUTE <expr>`: evaluates the command string and runs it as one
/// statement, without parameter substitution.
async fn run_dynamic(
    x: &Exec<'_>,
    session: &mut Session,
    params: &[Param],
    expr: &[Tok],
    scope: Scope,
) -> Result<(), ExecError> {
    let row = eval(x, session, params, expr, "::text").await?;
    let command: Option<String> = row.try_get(0)?;
    let command = command.ok_or_else(|| fail("query string argument of EXECUTE is null".into()))?;
    match rewrite::split_statements(&command)?.as_slice() {
        [one] => run_in_procedure(x, session, one, scope, true).await,
        [] => Err(fail("EXECUTE of an empty command string".into())),
        many => Err(fail(format!(
            "EXECUTE runs one statement; the command string holds {} (the stand-in's stricter reading)",
            many.len()
        ))),
    }
}

/// Statements that control transactions, seen in a procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Plain,
    Commit,
    Rollback,
    Truncate,
    /// Needs a transaction context of its own (stored-procedure-constraints).
    Own(&'static str),
}

fn control(toks: &[Tok]) -> Control {
    let words: Vec<String> = toks
        .iter()
        .filter(|t| t.is_significant())
        .take(3)
        .map(|t| t.word_lower().unwrap_or_default())
        .collect();
    let w = |k: usize| words.get(k).map(String::as_str).unwrap_or("");
    match (w(0), w(1), w(2)) {
        ("commit" | "end", _, _) => Control::Commit,
        ("rollback" | "abort", _, _) => Control::Rollback,
        ("truncate", _, _) => Control::Truncate,
        ("begin" | "start", _, _) => Control::Own("BEGIN / START TRANSACTION"),
        ("prepare", _, _) => Control::Own("PREPARE"),
        ("vacuum", _, _) => Control::Own("VACUUM"),
        ("create" | "drop", "database", _) => Control::Own("CREATE / DROP DATABASE"),
        ("create", "external", "table") => Control::Own("CREATE EXTERNAL TABLE"),
        ("set", "local", _) => Control::Own("SET LOCAL"),
        ("alter", "table", _) if toks.iter().any(|t| t.is_word("append")) => {
            Control::Own("ALTER TABLE APPEND")
        }
        _ => Control::Plain,
    }
}

/// Runs one statement of a procedure (static, or EXECUTEd when `dynamic`).
async fn run_in_procedure(
    x: &Exec<'_>,
    session: &mut Session,
    toks: &[Tok],
    scope: Scope,
    dynamic: bool,
) -> Result<(), ExecError> {
    let c = control(toks);
    let word = match c {
        Control::Commit => "COMMIT",
        Control::Rollback => "ROLLBACK",
        _ => "TRUNCATE",
    };
    match c {
        Control::Plain => {
            run_statement(x, toks, session, NO_PARAMS, scope).await?;
        }
        Control::Own(what) => {
            return Err(fail(format!(
                "{what} is not supported inside a stored procedure: it needs a transaction context of its own (stored-procedure-constraints)"
            )))
        }
        Control::Commit | Control::Rollback if dynamic => {
            return Err(fail(format!(
                "{word} cannot run from dynamic SQL (EXECUTE) in a stored procedure (c_PLpgSQL-statements)"
            )))
        }
        _ if scope.in_batch => {
            return Err(fail(format!(
                "{word} cannot be invoked from a procedure that is executing in an atomic context: the CALL runs inside a transaction block (BatchExecuteStatement), where a procedure and its nested calls cannot COMMIT, ROLLBACK or TRUNCATE (stored-procedure-transaction-management)"
            )))
        }
        Control::Rollback => x.client.batch_execute("ROLLBACK").await?,
        Control::Commit => x.client.batch_execute("COMMIT").await?,
        Control::Truncate => {
            // Outside a batch TRUNCATE runs (the rewriter refuses it only in
            // a batch), then commits, as Redshift's does in a procedure.
            let top = Scope {
                in_batch: false,
                depth: 0,
            };
            run_statement(x, toks, session, NO_PARAMS, top).await?;
            x.client.batch_execute("COMMIT").await?;
        }
    }
    if matches!(c, Control::Commit | Control::Rollback | Control::Truncate) {
        x.client.batch_execute("BEGIN").await?;
    }
    Ok(())
}
