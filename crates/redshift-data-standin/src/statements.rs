//! Statement store and state machine.
//!
//! Every ExecuteStatement / BatchExecuteStatement creates a [`Statement`]
//! (SUBMITTED); a background task (see [`crate::exec`]) moves it to PICKED,
//! STARTED and then FINISHED, FAILED or ABORTED. Sub-statements of a batch
//! are [`Part`]s with ids `<id>:<n>`. `ClientToken`s map to the statement
//! they created so a retried submit returns the same Id and runs nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// Redshift Data API statement status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Submitted,
    Picked,
    Started,
    Finished,
    Aborted,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Submitted => "SUBMITTED",
            Status::Picked => "PICKED",
            Status::Started => "STARTED",
            Status::Finished => "FINISHED",
            Status::Aborted => "ABORTED",
            Status::Failed => "FAILED",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Finished | Status::Aborted | Status::Failed)
    }
}

/// One value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Long(i64),
    Double(f64),
    Bool(bool),
    Str(String),
    Null,
}

/// Result column metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub type_name: String,
    pub is_signed: bool,
    pub precision: i32,
    pub scale: i32,
    pub length: i32,
}

/// A statement's result set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultSet {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Field>>,
}

impl ResultSet {
    /// Approximate size in bytes (what ResultSize reports).
    pub fn size_bytes(&self) -> i64 {
        self.rows
            .iter()
            .flatten()
            .map(|f| match f {
                Field::Str(s) => s.len() as i64,
                Field::Null => 0,
                Field::Bool(_) => 1,
                Field::Long(_) | Field::Double(_) => 8,
            })
            .sum()
    }
}

/// What the client asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub sqls: Vec<String>,
    pub is_batch: bool,
    pub database: String,
    pub cluster_identifier: Option<String>,
    pub workgroup_name: Option<String>,
    pub db_user: Option<String>,
    pub secret_arn: Option<String>,
    pub statement_name: Option<String>,
    pub client_token: Option<String>,
    pub parameters: Option<Vec<(String, String)>>,
}

/// One SQL text of a statement (the only one, or one sub-statement).
#[derive(Debug, Clone)]
pub struct Part {
    pub query: String,
    pub status: Status,
    pub error: Option<String>,
    pub created_at: SystemTime,
    pub timing: Timing,
    pub result: Option<ResultSet>,
    pub result_rows: i64,
    pub query_id: i64,
}

impl Part {
    fn new(query: String, now: SystemTime) -> Self {
        Part {
            query,
            status: Status::Submitted,
            error: None,
            created_at: now,
            timing: Timing::new(now),
            result: None,
            result_rows: -1,
            query_id: next_query_id(),
        }
    }

    pub fn set_status(&mut self, s: Status) {
        self.status = s;
        self.timing.record(s);
    }

    pub fn duration_ns(&self) -> i64 {
        self.timing.duration_ns()
    }
}

/// When a statement or part last changed status, started and ended.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub updated_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub ended_at: Option<SystemTime>,
}

impl Timing {
    fn new(now: SystemTime) -> Timing {
        Timing {
            updated_at: now,
            started_at: None,
            ended_at: None,
        }
    }

    /// Notes a change to status `s`, now.
    fn record(&mut self, s: Status) {
        let now = SystemTime::now();
        self.updated_at = now;
        if s == Status::Started && self.started_at.is_none() {
            self.started_at = Some(now);
        }
        if s.is_terminal() {
            self.started_at.get_or_insert(now);
            self.ended_at = Some(now);
        }
    }

    /// Running time in nanoseconds (up to now while still running).
    fn duration_ns(&self) -> i64 {
        match self.started_at {
            None => 0,
            Some(s) => {
                let e = self.ended_at.unwrap_or_else(SystemTime::now);
                e.duration_since(s)
                    .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
                    .unwrap_or(0)
            }
        }
    }
}

static QUERY_IDS: AtomicI64 = AtomicI64::new(1000);

fn next_query_id() -> i64 {
    QUERY_IDS.fetch_add(1, Ordering::Relaxed)
}

/// A submitted statement.
pub struct Statement {
    pub id: String,
    pub request: Request,
    pub status: Status,
    pub error: Option<String>,
    pub created_at: SystemTime,
    pub timing: Timing,
    pub parts: Vec<Part>,
    pub redshift_pid: i64,
    pub query_id: i64,
    pub cancel_requested: bool,
    pub cancel_token: Option<tokio_postgres::CancelToken>,
}

impl Statement {
    pub fn set_status(&mut self, s: Status) {
        self.status = s;
        self.timing.record(s);
    }

    pub fn duration_ns(&self) -> i64 {
        self.timing.duration_ns()
    }

    /// Query text as DescribeStatement reports it.
    pub fn query_string(&self) -> String {
        self.request.sqls.join("; ")
    }

    /// Total rows over parts (or -1 when none has a count).
    pub fn result_rows(&self) -> i64 {
        let counted: Vec<i64> = self
            .parts
            .iter()
            .map(|p| p.result_rows)
            .filter(|&r| r >= 0)
            .collect();
        if counted.is_empty() {
            -1
        } else {
            counted.iter().sum()
        }
    }
}

/// Shared handle to a statement.
pub type Handle = Arc<Mutex<Statement>>;

/// Locks a statement (a poisoned lock still gives the data).
pub fn lock(h: &Handle) -> MutexGuard<'_, Statement> {
    h.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, Handle>,
    by_token: HashMap<String, String>,
    order: Vec<String>,
}

/// All statements of this process.
#[derive(Default)]
pub struct Store {
    inner: Mutex<Inner>,
}

impl Store {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a statement, or returns the one an earlier submit with the
    /// same ClientToken created. The bool is true when newly created.
    pub fn submit(&self, request: Request) -> (Handle, bool) {
        let mut inner = self.inner();
        if let Some(tok) = &request.client_token {
            if let Some(h) = inner.by_token.get(tok).and_then(|id| inner.by_id.get(id)) {
                return (h.clone(), false);
            }
        }
        let now = SystemTime::now();
        let id = uuid::Uuid::new_v4().to_string();
        let parts = request
            .sqls
            .iter()
            .map(|q| Part::new(q.clone(), now))
            .collect();
        let st = Statement {
            id: id.clone(),
            request: request.clone(),
            status: Status::Submitted,
            error: None,
            created_at: now,
            timing: Timing::new(now),
            parts,
            redshift_pid: 0,
            query_id: next_query_id(),
            cancel_requested: false,
            cancel_token: None,
        };
        let h = Arc::new(Mutex::new(st));
        if let Some(tok) = request.client_token {
            inner.by_token.insert(tok, id.clone());
        }
        inner.by_id.insert(id.clone(), h.clone());
        inner.order.push(id);
        (h, true)
    }

    /// Looks a statement up by id (`<id>` or `<id>:<n>`): returns the
    /// statement and, for a sub-statement id, the 0-based part index.
    pub fn get(&self, id: &str) -> Option<(Handle, Option<usize>)> {
        let inner = self.inner();
        if let Some(h) = inner.by_id.get(id) {
            return Some((h.clone(), None));
        }
        let (base, n) = id.rsplit_once(':')?;
        let n: usize = n.parse().ok()?;
        let h = inner.by_id.get(base)?.clone();
        let len = lock(&h).parts.len();
        let is_batch = lock(&h).request.is_batch;
        if n == 0 || n > len || !is_batch {
            return None;
        }
        Some((h, Some(n - 1)))
    }

    /// All statements, newest first.
    pub fn list(&self) -> Vec<Handle> {
        let inner = self.inner();
        inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.by_id.get(id).cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_token_dedup_and_sub_ids() {
        let store = Store::default();
        let req = Request {
            sqls: vec!["select 1".into(), "select 2".into()],
            is_batch: true,
            client_token: Some("tok".into()),
            ..Request::default()
        };
        let (a, created_a) = store.submit(req.clone());
        let (b, created_b) = store.submit(req);
        assert!(created_a && !created_b);
        let id = lock(&a).id.clone();
        assert_eq!(id, lock(&b).id);
        assert!(store.get(&id).is_some());
        assert_eq!(store.get(&format!("{id}:2")).map(|(_, n)| n), Some(Some(1)));
        assert!(store.get(&format!("{id}:3")).is_none());
        assert!(store.get("nope").is_none());
    }
}
