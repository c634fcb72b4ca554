//! The Redshift Data API wire protocol (awsJson 1.1): `POST /` with
//! `x-amz-target: RedshiftData.<Operation>`, PascalCase JSON bodies, epoch
//! seconds as JSON numbers, errors as HTTP 400 `{"__type", "message"}`.
//! SigV4 signatures are accepted without checking.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tracing::debug;

use crate::exec::{self, Engine};
use crate::statements::{lock, Field, Part, Request, ResultSet, Statement, Status};

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const MAX_SQL_BYTES: usize = 100_000;
const MAX_BATCH: usize = 40;

/// An API error response.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    pub kind: &'static str,
    pub message: String,
    pub status: StatusCode,
}

impl ApiError {
    fn validation(message: impl Into<String>) -> Self {
        ApiError {
            kind: "ValidationException",
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            kind: "ResourceNotFoundException",
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"__type": self.kind, "message": self.message}).to_string();
        (
            self.status,
            [
                (header::CONTENT_TYPE, CONTENT_TYPE),
                (
                    header::HeaderName::from_static("x-amzn-errortype"),
                    self.kind,
                ),
            ],
            body,
        )
            .into_response()
    }
}

fn ok(v: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        v.to_string(),
    )
        .into_response()
}

/// The router serving the API.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new().route("/", post(handle)).with_state(engine)
}

async fn handle(State(engine): State<Arc<Engine>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let op = target.strip_prefix("RedshiftData.").unwrap_or(target);
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return ApiError {
                    kind: "SerializationException",
                    message: format!("malformed request body: {e}"),
                    status: StatusCode::BAD_REQUEST,
                }
                .into_response()
            }
        }
    };
    debug!(op, "request");
    let r = match op {
        "ExecuteStatement" => execute_statement(&engine, input),
        "BatchExecuteStatement" => batch_execute_statement(&engine, input),
        "DescribeStatement" => describe_statement(&engine, input),
        "GetStatementResult" | "GetStatementResultV2" => get_statement_result(&engine, input),
        "CancelStatement" => cancel_statement(&engine, input),
        "ListStatements" => list_statements(&engine, input),
        other => Err(ApiError {
            kind: "UnknownOperationException",
            message: format!(
                "operation {other:?} is not supported by the Redshift Data API stand-in"
            ),
            status: StatusCode::BAD_REQUEST,
        }),
    };
    match r {
        Ok(v) => ok(v),
        Err(e) => {
            debug!(op, error = %e, "request rejected");
            e.into_response()
        }
    }
}

fn parse<T: for<'de> Deserialize<'de>>(v: Value) -> Result<T, ApiError> {
    serde_json::from_value(v).map_err(|e| ApiError::validation(format!("invalid request: {e}")))
}

fn epoch(t: SystemTime) -> Value {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    json!((secs * 1000.0).round() / 1000.0)
}

#[derive(Deserialize)]
struct SqlParameter {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Target {
    database: Option<String>,
    cluster_identifier: Option<String>,
    workgroup_name: Option<String>,
    db_user: Option<String>,
    secret_arn: Option<String>,
    statement_name: Option<String>,
    client_token: Option<String>,
    session_id: Option<String>,
    result_format: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ExecuteInput {
    sql: Option<String>,
    parameters: Option<Vec<SqlParameter>>,
    #[serde(flatten)]
    target: Target,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchInput {
    sqls: Option<Vec<String>>,
    #[serde(flatten)]
    target: Target,
}

fn base_request(t: Target) -> Result<Request, ApiError> {
    if t.session_id.is_some() {
        return Err(ApiError::validation(
            "SessionId is not supported by the Redshift Data API stand-in (each statement is its own session)",
        ));
    }
    if let Some(f) = &t.result_format {
        if f != "JSON" {
            return Err(ApiError::validation(format!(
                "ResultFormat {f} is not supported by the stand-in (JSON only)"
            )));
        }
    }
    match (&t.cluster_identifier, &t.workgroup_name) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "Specify exactly one of ClusterIdentifier or WorkgroupName, not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::validation(
                "Either ClusterIdentifier or WorkgroupName is required",
            ))
        }
        _ => {}
    }
    let database = t
        .database
        .filter(|d| !d.is_empty())
        .ok_or_else(|| ApiError::validation("Database is required"))?;
    if database.len() > 127 || database.contains('\0') {
        return Err(ApiError::validation("invalid Database name"));
    }
    if let Some(tok) = &t.client_token {
        if tok.is_empty() || tok.len() > 64 {
            return Err(ApiError::validation(
                "ClientToken must be between 1 and 64 characters",
            ));
        }
    }
    Ok(Request {
        sqls: Vec::new(),
        is_batch: false,
        database,
        cluster_identifier: t.cluster_identifier,
        workgroup_name: t.workgroup_name,
        db_user: t.db_user,
        secret_arn: t.secret_arn,
        statement_name: t.statement_name,
        client_token: t.client_token,
        parameters: None,
    })
}

fn check_sql(sql: &str) -> Result<(), ApiError> {
    if sql.trim().is_empty() {
        return Err(ApiError::validation("Sql must not be empty"));
    }
    if sql.len() > MAX_SQL_BYTES {
        return Err(ApiError::validation(format!(
            "Sql is longer than the maximum of {MAX_SQL_BYTES} bytes"
        )));
    }
    Ok(())
}

fn submit(engine: &Arc<Engine>, req: Request) -> Value {
    let (h, created) = engine.store.submit(req);
    if created {
        tokio::spawn(exec::run(engine.clone(), h.clone()));
    }
    let st = lock(&h);
    let mut m = Map::new();
    m.insert("Id".into(), json!(st.id));
    m.insert("CreatedAt".into(), epoch(st.created_at));
    m.insert("Database".into(), json!(st.request.database));
    insert_opt(&mut m, "ClusterIdentifier", &st.request.cluster_identifier);
    insert_opt(&mut m, "WorkgroupName", &st.request.workgroup_name);
    insert_opt(&mut m, "DbUser", &st.request.db_user);
    insert_opt(&mut m, "SecretArn", &st.request.secret_arn);
    Value::Object(m)
}

fn insert_opt(m: &mut Map<String, Value>, k: &str, v: &Option<String>) {
    if let Some(v) = v {
        m.insert(k.into(), json!(v));
    }
}

fn execute_statement(engine: &Arc<Engine>, input: Value) -> Result<Value, ApiError> {
    let i: ExecuteInput = parse(input)?;
    let sql = i
        .sql
        .ok_or_else(|| ApiError::validation("Sql is required"))?;
    check_sql(&sql)?;
    let mut req = base_request(i.target)?;
    if let Some(ps) = i.parameters {
        if ps.is_empty() {
            return Err(ApiError::validation(
                "Parameters must not be empty when given",
            ));
        }
        req.parameters = Some(ps.into_iter().map(|p| (p.name, p.value)).collect());
    }
    req.sqls = vec![sql];
    Ok(submit(engine, req))
}

fn batch_execute_statement(engine: &Arc<Engine>, input: Value) -> Result<Value, ApiError> {
    let i: BatchInput = parse(input)?;
    let sqls = i
        .sqls
        .ok_or_else(|| ApiError::validation("Sqls is required"))?;
    if sqls.is_empty() || sqls.len() > MAX_BATCH {
        return Err(ApiError::validation(format!(
            "Sqls must hold between 1 and {MAX_BATCH} statements, got {}",
            sqls.len()
        )));
    }
    for s in &sqls {
        check_sql(s)?;
    }
    let mut req = base_request(i.target)?;
    req.sqls = sqls;
    req.is_batch = true;
    Ok(submit(engine, req))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IdInput {
    id: Option<String>,
}

fn id_of(input: Value) -> Result<String, ApiError> {
    let i: IdInput = parse(input)?;
    i.id.filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::validation("Id is required"))
}

fn find(engine: &Engine, id: &str) -> Result<(crate::statements::Handle, Option<usize>), ApiError> {
    engine
        .store
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("Query does not exist: {id}")))
}

fn part_json(id: &str, p: &Part) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("Id".into(), json!(id));
    m.insert("Status".into(), json!(p.status.as_str()));
    if let Some(e) = &p.error {
        m.insert("Error".into(), json!(e));
    }
    m.insert("QueryString".into(), json!(p.query));
    m.insert("HasResultSet".into(), json!(p.result.is_some()));
    m.insert("ResultRows".into(), json!(p.result_rows));
    m.insert(
        "ResultSize".into(),
        json!(p.result.as_ref().map(ResultSet::size_bytes).unwrap_or(0)),
    );
    m.insert("CreatedAt".into(), epoch(p.created_at));
    m.insert("UpdatedAt".into(), epoch(p.timing.updated_at));
    m.insert("Duration".into(), json!(p.duration_ns()));
    m.insert("RedshiftQueryId".into(), json!(p.query_id));
    m
}

fn statement_common(st: &Statement, m: &mut Map<String, Value>) {
    m.insert("Database".into(), json!(st.request.database));
    insert_opt(m, "ClusterIdentifier", &st.request.cluster_identifier);
    insert_opt(m, "WorkgroupName", &st.request.workgroup_name);
    insert_opt(m, "DbUser", &st.request.db_user);
    insert_opt(m, "SecretArn", &st.request.secret_arn);
    m.insert("RedshiftPid".into(), json!(st.redshift_pid));
    if let Some(ps) = &st.request.parameters {
        m.insert(
            "QueryParameters".into(),
            Value::Array(
                ps.iter()
                    .map(|(n, v)| json!({"name": n, "value": v}))
                    .collect(),
            ),
        );
    }
}

fn describe_statement(engine: &Arc<Engine>, input: Value) -> Result<Value, ApiError> {
    let id = id_of(input)?;
    let (h, part) = find(engine, &id)?;
    let st = lock(&h);
    if let Some(n) = part {
        let mut m = part_json(&id, &st.parts[n]);
        statement_common(&st, &mut m);
        return Ok(Value::Object(m));
    }
    let mut m = Map::new();
    m.insert("Id".into(), json!(st.id));
    m.insert("Status".into(), json!(st.status.as_str()));
    if let Some(e) = &st.error {
        m.insert("Error".into(), json!(e));
    }
    m.insert("QueryString".into(), json!(st.query_string()));
    let has_result = !st.request.is_batch && st.parts.first().is_some_and(|p| p.result.is_some());
    m.insert("HasResultSet".into(), json!(has_result));
    m.insert("ResultRows".into(), json!(st.result_rows()));
    let size: i64 = st
        .parts
        .iter()
        .filter_map(|p| p.result.as_ref().map(ResultSet::size_bytes))
        .sum();
    m.insert("ResultSize".into(), json!(size));
    m.insert("CreatedAt".into(), epoch(st.created_at));
    m.insert("UpdatedAt".into(), epoch(st.timing.updated_at));
    m.insert("Duration".into(), json!(st.duration_ns()));
    m.insert("RedshiftQueryId".into(), json!(st.query_id));
    statement_common(&st, &mut m);
    if st.request.is_batch {
        let subs: Vec<Value> = st
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| Value::Object(part_json(&format!("{}:{}", st.id, i + 1), p)))
            .collect();
        m.insert("SubStatements".into(), Value::Array(subs));
    }
    Ok(Value::Object(m))
}

fn field_json(f: &Field) -> Value {
    match f {
        Field::Long(v) => json!({ "longValue": v }),
        Field::Double(v) => json!({ "doubleValue": v }),
        Field::Bool(v) => json!({ "booleanValue": v }),
        Field::Str(v) => json!({ "stringValue": v }),
        Field::Null => json!({ "isNull": true }),
    }
}

fn get_statement_result(engine: &Arc<Engine>, input: Value) -> Result<Value, ApiError> {
    let id = id_of(input)?;
    let (h, part) = find(engine, &id)?;
    let st = lock(&h);
    let p = match part {
        Some(n) => &st.parts[n],
        None if st.request.is_batch => {
            return Err(ApiError::validation(format!(
                "{id} is a batch statement: get the result of a sub-statement ({id}:<n>)"
            )))
        }
        None => &st.parts[0],
    };
    if p.status != Status::Finished {
        return Err(ApiError::not_found(format!(
            "Query does not have result. Please check query status with DescribeStatement. (status {})",
            p.status.as_str()
        )));
    }
    let Some(rs) = &p.result else {
        return Err(ApiError::not_found(
            "Query does not have result. Please check query status with DescribeStatement.",
        ));
    };
    let cols: Vec<Value> = rs
        .columns
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "label": c.name,
                "typeName": c.type_name,
                "nullable": 1,
                "isSigned": c.is_signed,
                "isCaseSensitive": matches!(c.type_name.as_str(), "varchar" | "bpchar" | "super"),
                "isCurrency": false,
                "precision": c.precision,
                "scale": c.scale,
                "length": c.length,
                "schemaName": "",
                "tableName": "",
            })
        })
        .collect();
    let records: Vec<Value> = rs
        .rows
        .iter()
        .map(|r| Value::Array(r.iter().map(field_json).collect()))
        .collect();
    Ok(json!({
        "ColumnMetadata": cols,
        "Records": records,
        "TotalNumRows": rs.rows.len(),
    }))
}

fn cancel_statement(engine: &Arc<Engine>, input: Value) -> Result<Value, ApiError> {
    let id = id_of(input)?;
    let (h, part) = find(engine, &id)?;
    if part.is_some() {
        return Err(ApiError::validation(
            "CancelStatement takes the Id of the statement, not of a sub-statement",
        ));
    }
    if exec::cancel(&h) {
        Ok(json!({ "Status": true }))
    } else {
        let status = lock(&h).status.as_str();
        Err(ApiError::validation(format!(
            "Could not cancel a query that is already in {status} state with ID: {id}"
        )))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    max_results: Option<usize>,
    next_token: Option<String>,
    statement_name: Option<String>,
    status: Option<String>,
}

fn list_statements(engine: &Arc<Engine>, input: Value) -> Result<Value, ApiError> {
    let i: ListInput = parse(input)?;
    let max = i.max_results.unwrap_or(100).clamp(1, 100);
    let skip: usize = match &i.next_token {
        Some(t) => t
            .parse()
            .map_err(|_| ApiError::validation("invalid NextToken"))?,
        None => 0,
    };
    let wanted = i.status.unwrap_or_else(|| "ALL".into());
    let all: Vec<Value> = engine
        .store
        .list()
        .iter()
        .filter_map(|h| {
            let st = lock(h);
            if wanted != "ALL" && st.status.as_str() != wanted {
                return None;
            }
            if let Some(prefix) = &i.statement_name {
                if !st
                    .request
                    .statement_name
                    .as_deref()
                    .is_some_and(|n| n.starts_with(prefix.as_str()))
                {
                    return None;
                }
            }
            let mut m = Map::new();
            m.insert("Id".into(), json!(st.id));
            m.insert("Status".into(), json!(st.status.as_str()));
            m.insert("CreatedAt".into(), epoch(st.created_at));
            m.insert("UpdatedAt".into(), epoch(st.timing.updated_at));
            m.insert("IsBatchStatement".into(), json!(st.request.is_batch));
            if st.request.is_batch {
                m.insert("QueryStrings".into(), json!(st.request.sqls));
            } else {
                m.insert("QueryString".into(), json!(st.query_string()));
            }
            insert_opt(&mut m, "StatementName", &st.request.statement_name);
            insert_opt(&mut m, "SecretArn", &st.request.secret_arn);
            Some(Value::Object(m))
        })
        .collect();
    let page: Vec<Value> = all.iter().skip(skip).take(max).cloned().collect();
    let mut out = json!({ "Statements": page });
    if skip + max < all.len() {
        out["NextToken"] = json!((skip + max).to_string());
    }
    Ok(out)
}
