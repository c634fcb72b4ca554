//! Statement execution: the background task behind every submitted
//! statement. Connects to PostgreSQL, loads the facts the rewriter needs
//! ([`load_context`]), rewrites each SQL statement and carries out the
//! resulting [`Action`]; a batch runs in one PostgreSQL transaction
//! (any failure rolls all back). Results are converted to Data API fields.
//! Stored procedures are interpreted by [`procedures`], which runs every
//! statement of a body through [`run_statement`] again (hence the boxed,
//! recursive futures).

mod procedures;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};
use tracing::{debug, warn};

use crate::kinesis_reader::{self, RefreshError};
use crate::pg::{Pg, PgError};
use crate::rewrite::{
    self, quote_ident, Action, Context, RedshiftError, Session, Tok, STAGING_TABLE,
};
use crate::statements::{lock, Column, Field, Handle, ResultSet, Status, Store};

/// Everything a statement task needs.
pub struct Engine {
    pub pg: Pg,
    pub kinesis: aws_sdk_kinesis::Client,
    pub store: Store,
}

/// Why a statement failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{0}")]
    Redshift(#[from] RedshiftError),
    #[error("{}", pg_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Connect(#[from] PgError),
    #[error("{0}")]
    Refresh(#[from] RefreshError),
    #[error("{0}")]
    Other(String),
    /// A statement of a stored procedure failed.
    #[error("{source} (in procedure {name})")]
    InProcedure {
        name: String,
        source: Box<ExecError>,
    },
}

fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}

impl ExecError {
    /// Error text as Redshift reports it in DescribeStatement.
    pub fn redshift_text(&self) -> String {
        format!("ERROR: {}", self.message())
    }

    fn message(&self) -> String {
        match self {
            ExecError::Refresh(RefreshError::Postgres(e)) => pg_message(e),
            ExecError::InProcedure { name, source } => {
                format!("{} (in procedure {name})", source.message())
            }
            _ => self.to_string(),
        }
    }
}

/// What one SQL text produced.
#[derive(Debug, Default)]
struct Outcome {
    result: Option<ResultSet>,
    rows: i64,
}

/// Runs a submitted statement to completion, updating its state.
pub async fn run(engine: Arc<Engine>, handle: Handle) {
    let req = {
        let mut st = lock(&handle);
        if st.cancel_requested || st.status.is_terminal() {
            return;
        }
        st.set_status(Status::Picked);
        st.request.clone()
    };
    let client = match engine.pg.connect(&req.database).await {
        Ok(c) => c,
        Err(e) => {
            let text = ExecError::from(e).redshift_text();
            let mut st = lock(&handle);
            for p in &mut st.parts {
                p.error = Some(text.clone());
                p.set_status(Status::Failed);
            }
            st.error = Some(text);
            st.set_status(Status::Failed);
            return;
        }
    };
    let pid: i64 = match client.query_one("SELECT pg_backend_pid()", &[]).await {
        Ok(r) => i64::from(r.get::<_, i32>(0)),
        Err(_) => 0,
    };
    {
        let mut st = lock(&handle);
        st.redshift_pid = pid;
        st.cancel_token = Some(client.cancel_token());
        if st.cancel_requested {
            abort_rest(&mut st, 0);
            return;
        }
        st.set_status(Status::Started);
    }
    crate::faults::hold_if_armed(&client).await;
    let params: Option<HashMap<String, String>> = req
        .parameters
        .as_ref()
        .map(|ps| ps.iter().cloned().collect());
    let mut session = Session::default();
    if req.is_batch {
        run_batch(&engine, &client, &handle, &mut session, &params).await;
    } else {
        run_single(&engine, &client, &handle, &mut session, &params).await;
    }
}

fn abort_rest(st: &mut crate::statements::Statement, from: usize) {
    for p in st.parts.iter_mut().skip(from) {
        if !p.status.is_terminal() {
            p.set_status(Status::Aborted);
        }
    }
    if !st.status.is_terminal() {
        st.set_status(Status::Aborted);
    }
}

fn cancelled(handle: &Handle) -> bool {
    lock(handle).cancel_requested
}

async fn run_single(
    engine: &Engine,
    client: &Client,
    handle: &Handle,
    session: &mut Session,
    params: &Option<HashMap<String, String>>,
) {
    let sql = {
        let mut st = lock(handle);
        st.parts[0].set_status(Status::Started);
        st.parts[0].query.clone()
    };
    let r = run_sql_text(engine, client, handle, &sql, session, params, false).await;
    let mut st = lock(handle);
    if st.cancel_requested {
        abort_rest(&mut st, 0);
        return;
    }
    match r {
        Ok(o) => {
            st.parts[0].result = o.result;
            st.parts[0].result_rows = o.rows;
            st.parts[0].set_status(Status::Finished);
            st.set_status(Status::Finished);
        }
        Err(e) => {
            let text = e.redshift_text();
            debug!(error = %text, "statement failed");
            st.parts[0].error = Some(text.clone());
            st.parts[0].set_status(Status::Failed);
            st.error = Some(text);
            st.set_status(Status::Failed);
        }
    }
}

async fn run_batch(
    engine: &Engine,
    client: &Client,
    handle: &Handle,
    session: &mut Session,
    params: &Option<HashMap<String, String>>,
) {
    let n = lock(handle).parts.len();
    let sqls: Vec<String> = lock(handle).request.sqls.clone();
    let abort = crate::faults::take_abort_batch(client, &sqls).await;
    if let Err(e) = client.batch_execute("BEGIN").await {
        let text = ExecError::from(e).redshift_text();
        let mut st = lock(handle);
        st.error = Some(text);
        abort_rest(&mut st, 0);
        st.set_status(Status::Failed);
        return;
    }
    for i in 0..n {
        if abort && i + 1 == n {
            rollback(client).await;
            let mut st = lock(handle);
            st.error = Some("ERROR: the batch was aborted (fault abort_batch injected by the stand-in); it was rolled back".into());
            abort_rest(&mut st, 0);
            return;
        }
        let sql = {
            let mut st = lock(handle);
            if st.cancel_requested {
                None
            } else {
                st.parts[i].set_status(Status::Started);
                Some(st.parts[i].query.clone())
            }
        };
        let Some(sql) = sql else {
            rollback(client).await;
            abort_rest(&mut lock(handle), 0);
            return;
        };
        let r = run_sql_text(engine, client, handle, &sql, session, params, true).await;
        match r {
            Ok(o) => {
                let mut st = lock(handle);
                st.parts[i].result = o.result;
                st.parts[i].result_rows = o.rows;
                st.parts[i].set_status(Status::Finished);
            }
            Err(e) => {
                rollback(client).await;
                let mut st = lock(handle);
                if st.cancel_requested {
                    abort_rest(&mut st, 0);
                    return;
                }
                let text = e.redshift_text();
                debug!(error = %text, sub = i + 1, "batch sub-statement failed; rolled back");
                st.parts[i].error = Some(text.clone());
                st.parts[i].set_status(Status::Failed);
                for p in st.parts.iter_mut().skip(i + 1) {
                    p.set_status(Status::Aborted);
                }
                st.error = Some(format!(
                    "{text} (sub-statement {} of {n}; the batch was rolled back)",
                    i + 1
                ));
                st.set_status(Status::Failed);
                return;
            }
        }
    }
    let commit = client.batch_execute("COMMIT").await;
    let mut st = lock(handle);
    match commit {
        Ok(()) => st.set_status(Status::Finished),
        Err(e) => {
            st.error = Some(ExecError::from(e).redshift_text());
            st.set_status(Status::Failed);
        }
    }
}

async fn rollback(client: &Client) {
    if let Err(e) = client.batch_execute("ROLLBACK").await {
        warn!(error = %e, "rollback failed");
    }
}

/// Loads the facts the rewriter needs from the database.
pub async fn load_context(
    client: &Client,
    params: &Option<HashMap<String, String>>,
    in_batch: bool,
) -> Result<Context, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT \
               ARRAY(SELECT schema_name FROM kinesync_standin.external_schemas), \
               ARRAY(SELECT DISTINCT lower(a.attname::text) FROM pg_catalog.pg_attribute a \
                     JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     WHERE a.atttypid = 'jsonb'::regtype AND a.attnum > 0 AND NOT a.attisdropped \
                       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'kinesync_standin') \
                       AND (n.nspname NOT LIKE 'pg\\_temp%' OR n.oid = pg_my_temp_schema())), \
               ARRAY(SELECT nspname::text FROM pg_catalog.pg_namespace), \
               ARRAY(SELECT schema_name FROM kinesync_standin.streaming_views ORDER BY schema_name, view_name), \
               ARRAY(SELECT view_name FROM kinesync_standin.streaming_views ORDER BY schema_name, view_name), \
               COALESCE(current_schema()::text, 'public'), \
               ARRAY(SELECT DISTINCT schema_name FROM kinesync_standin.procedures)",
            &[],
        )
        .await?;
    let ext: Vec<String> = row.get(0);
    let sup: Vec<String> = row.get(1);
    let schemas: Vec<String> = row.get(2);
    let sv_schema: Vec<String> = row.get(3);
    let sv_name: Vec<String> = row.get(4);
    let procedure_schemas: Vec<String> = row.get(6);
    Ok(Context {
        kinesis_schemas: ext.into_iter().collect(),
        super_columns: sup.into_iter().collect(),
        schemas: schemas.into_iter().collect(),
        streaming_views: sv_schema.into_iter().zip(sv_name).collect(),
        procedure_schemas: procedure_schemas.into_iter().collect(),
        current_schema: row.get(5),
        params: params.clone(),
        in_batch,
    })
}

/// What a statement runs with: the connection and the statement it belongs to.
struct Exec<'a> {
    engine: &'a Engine,
    client: &'a Client,
    handle: &'a Handle,
}

/// Where a statement runs: inside a batch's transaction or not, and how
/// deep in stored procedure calls (0: sent by the client; a procedure's
/// statements run at its call level, 1 for the outermost CALL).
#[derive(Debug, Clone, Copy)]
struct Scope {
    in_batch: bool,
    depth: u32,
}

impl Scope {
    /// True when a transaction is open around the statement (a batch's, or
    /// a CALL's).
    fn in_txn(self) -> bool {
        self.in_batch || self.depth > 0
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs one Data API SQL text (possibly several `;`-separated statements).
async fn run_sql_text(
    engine: &Engine,
    client: &Client,
    handle: &Handle,
    sql: &str,
    session: &mut Session,
    params: &Option<HashMap<String, String>>,
    in_batch: bool,
) -> Result<Outcome, ExecError> {
    let stmts = rewrite::split_statements(sql)?;
    if stmts.is_empty() {
        return Err(RedshiftError::Syntax("empty query".into()).into());
    }
    let x = Exec {
        engine,
        client,
        handle,
    };
    let scope = Scope { in_batch, depth: 0 };
    let mut outcome = Outcome::default();
    for toks in stmts {
        outcome = run_statement(&x, &toks, session, params, scope).await?;
    }
    Ok(outcome)
}

/// Rewrites one statement with a freshly loaded [`Context`] and carries out
/// its [`Action`].
fn run_statement<'a>(
    x: &'a Exec<'a>,
    toks: &'a [Tok],
    session: &'a mut Session,
    params: &'a Option<HashMap<String, String>>,
    scope: Scope,
) -> BoxFuture<'a, Result<Outcome, ExecError>> {
    Box::pin(async move {
        let ctx = load_context(x.client, params, scope.in_txn()).await?;
        let action = rewrite::rewrite_statement(toks, session, &ctx)?;
        debug!(?action, "rewritten");
        run_action(x, action, session, scope).await
    })
}

async fn run_action(
    x: &Exec<'_>,
    action: Action,
    session: &mut Session,
    scope: Scope,
) -> Result<Outcome, ExecError> {
    let (client, in_txn) = (x.client, scope.in_txn());
    match action {
        Action::Sql(pg_sql) => return run_pg(client, &pg_sql).await,
        Action::Set { .. } | Action::Noop { .. } => {}
        Action::CreateExternalSchema {
            schema,
            if_not_exists,
            iam_role,
        } => {
            txn(client, in_txn, async {
                create_external_schema(client, &schema, if_not_exists, &iam_role).await
            })
            .await?
        }
        Action::DropSchema { schemas, sql } => {
            txn(client, in_txn, drop_schemas(client, &schemas, &sql)).await?
        }
        Action::CreateStreamingView { .. } => create_streaming_view(x, action, in_txn).await?,
        Action::RefreshStreamingView { schema, name } => {
            let h = x.handle.clone();
            let is_cancelled = move || cancelled(&h);
            let n =
                kinesis_reader::refresh(client, &x.engine.kinesis, &schema, &name, &is_cancelled)
                    .await?;
            return Ok(Outcome {
                result: None,
                rows: i64::try_from(n).unwrap_or(i64::MAX),
            });
        }
        Action::DropStreamingView {
            schema,
            name,
            if_exists,
        } => {
            txn(
                client,
                in_txn,
                drop_streaming_view(client, &schema, &name, if_exists),
            )
            .await?
        }
        Action::CreateProcedure(def) => {
            txn(client, in_txn, procedures::create(client, &def)).await?
        }
        Action::DropProcedure(spec) => txn(client, in_txn, procedures::drop(client, &spec)).await?,
        Action::Call(spec) => procedures::call(x, session, &spec, scope).await?,
    }
    Ok(Outcome::default())
}

async fn drop_schemas(client: &Client, schemas: &[String], sql: &str) -> Result<(), ExecError> {
    client.batch_execute(sql).await?;
    for t in ["external_schemas", "procedures"] {
        client
            .execute(
                &format!("DELETE FROM kinesync_standin.{t} WHERE schema_name = ANY($1)"),
                &[&schemas],
            )
            .await?;
    }
    Ok(())
}

async fn create_streaming_view(
    x: &Exec<'_>,
    action: Action,
    in_txn: bool,
) -> Result<(), ExecError> {
    let Action::CreateStreamingView {
        schema,
        name,
        external_schema,
        stream,
        select_sql,
        auto_refresh,
        sort_key,
    } = action
    else {
        return Ok(());
    };
    let client = x.client;
    kinesis_reader::check_stream(&x.engine.kinesis, &stream).await?;
    let table = format!("{}.{}", quote_ident(&schema), quote_ident(&name));
    txn(client, in_txn, async {
        client.batch_execute(&kinesis_reader::staging_ddl()).await?;
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} AS {select_sql} WITH NO DATA"
            ))
            .await?;
        if !sort_key.is_empty() {
            let columns: Vec<String> = sort_key.iter().map(|c| quote_ident(c)).collect();
            client
                .batch_execute(&format!("CREATE INDEX ON {table} ({})", columns.join(", ")))
                .await?;
        }
        client
            .execute(
                "INSERT INTO kinesync_standin.streaming_views \
                 (schema_name, view_name, external_schema, stream_name, select_sql, auto_refresh) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &schema,
                    &name,
                    &external_schema,
                    &stream,
                    &select_sql,
                    &auto_refresh,
                ],
            )
            .await?;
        client
            .batch_execute(&format!("DROP TABLE pg_temp.{STAGING_TABLE}"))
            .await?;
        Ok(())
    })
    .await
}

async fn drop_streaming_view(
    client: &Client,
    schema: &str,
    name: &str,
    if_exists: bool,
) -> Result<(), ExecError> {
    let ie = if if_exists { "IF EXISTS " } else { "" };
    client
        .batch_execute(&format!(
            "DROP TABLE {ie}{}.{}",
            quote_ident(schema),
            quote_ident(name)
        ))
        .await?;
    for t in ["streaming_views", "stream_positions"] {
        client
            .execute(
                &format!(
                    "DELETE FROM kinesync_standin.{t} WHERE schema_name = $1 AND view_name = $2"
                ),
                &[&schema, &name],
            )
            .await?;
    }
    Ok(())
}

/// Runs `body` in a transaction of its own unless one is already open (a
/// batch's or a CALL's).
async fn txn<F>(client: &Client, in_txn: bool, body: F) -> Result<(), ExecError>
where
    F: std::future::Future<Output = Result<(), ExecError>>,
{
    if in_txn {
        return body.await;
    }
    client.batch_execute("BEGIN").await?;
    match body.await {
        Ok(()) => {
            client.batch_execute("COMMIT").await?;
            Ok(())
        }
        Err(e) => {
            rollback(client).await;
            Err(e)
        }
    }
}

async fn create_external_schema(
    client: &Client,
    schema: &str,
    if_not_exists: bool,
    iam_role: &str,
) -> Result<(), ExecError> {
    let known = client
        .query_opt(
            "SELECT 1 FROM kinesync_standin.external_schemas WHERE schema_name = $1",
            &[&schema],
        )
        .await?
        .is_some();
    let ns = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1",
            &[&schema],
        )
        .await?
        .is_some();
    if known || ns {
        if if_not_exists {
            return Ok(());
        }
        return Err(ExecError::Other(format!(
            "Schema \"{schema}\" already exists"
        )));
    }
    client
        .batch_execute(&format!("CREATE SCHEMA {}", quote_ident(schema)))
        .await?;
    client
        .execute(
            "INSERT INTO kinesync_standin.external_schemas (schema_name, source, iam_role) VALUES ($1, 'KINESIS', $2)",
            &[&schema, &iam_role],
        )
        .await?;
    Ok(())
}

/// Data API type name of a PostgreSQL type.
fn type_name(t: &Type) -> String {
    match *t {
        Type::INT2 => "int2",
        Type::INT4 => "int4",
        Type::INT8 => "int8",
        Type::FLOAT4 => "float4",
        Type::FLOAT8 => "float8",
        Type::BOOL => "bool",
        Type::VARCHAR | Type::TEXT | Type::NAME => "varchar",
        Type::BPCHAR => "bpchar",
        Type::NUMERIC => "numeric",
        Type::TIMESTAMP => "timestamp",
        Type::TIMESTAMPTZ => "timestamptz",
        Type::DATE => "date",
        Type::TIME => "time",
        Type::TIMETZ => "timetz",
        Type::JSONB | Type::JSON => "super",
        Type::BYTEA => "varbyte",
        _ => return t.name().to_string(),
    }
    .to_string()
}

fn column(c: &tokio_postgres::Column) -> Column {
    let t = c.type_();
    let m = c.type_modifier();
    let (precision, scale, length) = match *t {
        Type::NUMERIC if m >= 4 => (((m - 4) >> 16) & 0xffff, (m - 4) & 0xffff, 0),
        Type::VARCHAR | Type::BPCHAR if m >= 4 => (m - 4, 0, m - 4),
        Type::INT2 => (5, 0, 0),
        Type::INT4 => (10, 0, 0),
        Type::INT8 => (19, 0, 0),
        Type::FLOAT4 => (8, 0, 0),
        Type::FLOAT8 => (17, 0, 0),
        _ => (0, 0, 0),
    };
    Column {
        name: crate::rewrite::long_names::redshift_name(c.name())
            .unwrap_or_else(|| c.name().to_string()),
        type_name: type_name(t),
        is_signed: matches!(
            *t,
            Type::INT2 | Type::INT4 | Type::INT8 | Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC
        ),
        precision,
        scale,
        length,
    }
}

fn field(t: &Type, v: Option<&str>) -> Field {
    let Some(s) = v else { return Field::Null };
    match *t {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => s
            .parse::<i64>()
            .map(Field::Long)
            .unwrap_or_else(|_| Field::Str(s.to_string())),
        Type::FLOAT4 | Type::FLOAT8 => match s.parse::<f64>() {
            Ok(f) if f.is_finite() => Field::Double(f),
            _ => Field::Str(s.to_string()),
        },
        Type::BOOL => Field::Bool(s == "t"),
        Type::BYTEA => Field::Str(s.strip_prefix("\\x").unwrap_or(s).to_string()),
        _ => Field::Str(
            crate::rewrite::long_names::redshift_name(s).unwrap_or_else(|| s.to_string()),
        ),
    }
}

/// Runs one PostgreSQL statement: prepare for column types, then the
/// simple protocol for text values (any type) and the command count.
async fn run_pg(client: &Client, sql: &str) -> Result<Outcome, ExecError> {
    let stmt = client.prepare(sql).await?;
    let cols: Vec<(Type, Column)> = stmt
        .columns()
        .iter()
        .map(|c| (c.type_().clone(), column(c)))
        .collect();
    drop(stmt);
    let msgs = client.simple_query(sql).await?;
    let mut rows = Vec::new();
    let mut count: i64 = 0;
    for m in msgs {
        match m {
            SimpleQueryMessage::Row(r) => {
                let row = (0..r.len())
                    .map(|i| {
                        let t = cols.get(i).map(|c| &c.0).unwrap_or(&Type::TEXT);
                        field(t, r.get(i))
                    })
                    .collect();
                rows.push(row);
            }
            SimpleQueryMessage::CommandComplete(n) => {
                count = i64::try_from(n).unwrap_or(i64::MAX);
            }
            _ => {}
        }
    }
    if cols.is_empty() {
        return Ok(Outcome {
            result: None,
            rows: count,
        });
    }
    let n = rows.len() as i64;
    Ok(Outcome {
        result: Some(ResultSet {
            columns: cols.into_iter().map(|c| c.1).collect(),
            rows,
        }),
        rows: n,
    })
}

/// Requests cancellation; true if the statement was still running.
pub fn cancel(handle: &Handle) -> bool {
    let token = {
        let mut st = lock(handle);
        if st.status.is_terminal() {
            return false;
        }
        st.cancel_requested = true;
        if st.status == Status::Submitted {
            abort_rest(&mut st, 0);
        }
        st.cancel_token.clone()
    };
    if let Some(t) = token {
        tokio::spawn(async move {
            if let Err(e) = t.cancel_query(NoTls).await {
                warn!(error = %e, "cancel request to postgres failed");
            }
        });
    }
    true
}
