//! Submit, poll and read results through aws-sdk-redshiftdata.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_redshiftdata::types::{Field, StatusString};
use aws_sdk_redshiftdata::Client;
use tokio::time::Instant;

use crate::config::RedshiftConfig;
use crate::shutdown::Shutdown;

/// Wait before the first DescribeStatement call: a statement is never done
/// the moment it was submitted, and most bookkeeping statements are done
/// within a few tens of milliseconds.
const POLL_INITIAL: Duration = Duration::from_millis(50);
/// Longest wait between two DescribeStatement calls.
const POLL_MAX: Duration = Duration::from_secs(2);

/// The wait after `delay`: doubled, at most [`POLL_MAX`]. A statement
/// running `t` seconds is polled about log2(t / POLL_INITIAL) times until it
/// reaches `POLL_MAX`, then every 2 s; it is seen finished at most one wait
/// (at most as long as it ran so far, and 2 s) after it finished.
fn next_poll(delay: Duration) -> Duration {
    (delay * 2).min(POLL_MAX)
}

/// The waits of a statement expected to run about `expected`: the first
/// poll at three quarters of it, then from a quarter of it, doubling (both
/// at least [`POLL_INITIAL`]). Without an expectation: [`POLL_INITIAL`],
/// doubling. A merge run's batches are alike, so the one before tells how
/// long the next takes: about two polls each instead of log2(t / 50 ms).
fn first_polls(expected: Option<Duration>) -> (Duration, Duration) {
    match expected {
        Some(t) => ((t * 3 / 4).max(POLL_INITIAL), (t / 4).max(POLL_INITIAL)),
        None => (POLL_INITIAL, next_poll(POLL_INITIAL)),
    }
}

/// A batch's time left, extrapolated from its sub-statements finished
/// `elapsed` after the submit (a batch of alike statements, as a merge
/// batch's CALLs): the next poll comes when it should be done, instead of
/// one per doubling wait. (Extrapolating from the longest finished
/// sub-statement's own `Duration` instead polled more: bench case 5.)
fn time_left(
    described: &aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput,
    elapsed: Duration,
) -> Option<Duration> {
    use aws_sdk_redshiftdata::types::StatementStatusString::Finished;
    let subs = described.sub_statements();
    let done = subs
        .iter()
        .filter(|s| s.status() == Some(&Finished))
        .count();
    let left = subs.len().checked_sub(done)?;
    let per = elapsed.checked_div(u32::try_from(done).ok()?)?;
    (done > 0 && left > 0).then(|| per * u32::try_from(left).unwrap_or(u32::MAX))
}

/// Why a statement did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RedshiftError {
    /// A Data API call failed; `message` is [`crate::aws::AwsError`]'s line.
    #[error("{message}")]
    Api { call: &'static str, message: String },
    #[error(
        "Redshift statement failed: {error} (statement: {})",
        one_line(statement)
    )]
    Failed { statement: String, error: String },
    #[error("Redshift statement was aborted (cancelled): {}", one_line(statement))]
    Aborted { statement: String },
    #[error("Redshift statement still running after {seconds} s (redshift.statement_timeout_secs); cancelled: {}", one_line(statement))]
    Timeout { statement: String, seconds: u64 },
    #[error("shutdown requested; statement cancelled: {}", one_line(statement))]
    Cancelled { statement: String },
    #[error(
        "statement of {bytes} bytes not sent: the Data API takes at most {MAX_STATEMENT_BYTES} bytes per statement \
         (a kinesync bug for a table this wide; report it with the table's column count): {}",
        one_line(statement)
    )]
    TooLong { statement: String, bytes: usize },
}

/// The Data API's limit on one statement's text ("100 KB"; read as 100,000
/// bytes, the smaller reading).
pub const MAX_STATEMENT_BYTES: usize = 100_000;

/// Refuses a statement the Data API would reject for its size.
fn check_size(sql: &str) -> Result<(), RedshiftError> {
    if sql.len() > MAX_STATEMENT_BYTES {
        return Err(RedshiftError::TooLong {
            statement: sql.to_owned(),
            bytes: sql.len(),
        });
    }
    Ok(())
}

/// A statement shortened to one line for an error message: whitespace runs
/// collapsed, at most 200 characters.
fn one_line(statement: &str) -> String {
    let flat = statement.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &flat[..cut]),
        None => flat,
    }
}

/// One result value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Long(i64),
    Double(f64),
    Bool(bool),
    Text(String),
}

impl Value {
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Long(v) => Some(v.to_string()),
            Value::Double(v) => Some(v.to_string()),
            Value::Bool(v) => Some(v.to_string()),
            Value::Text(v) => Some(v.clone()),
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Long(v) => Some(*v),
            Value::Text(v) => v.parse().ok(),
            _ => None,
        }
    }
}

/// One result row, read by column name (the names of the result's column
/// metadata; the statements alias every column they return).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    pub fn new(names: Arc<[String]>, values: Vec<Value>) -> Row {
        Row { names, values }
    }

    /// The value of `column`, if the result has that column.
    pub fn get(&self, column: &str) -> Option<&Value> {
        let at = self.names.iter().position(|n| n == column)?;
        self.values.get(at)
    }

    /// [`Row::get`] as text (`None` for NULL or a missing column).
    pub fn text(&self, column: &str) -> Option<String> {
        self.get(column).and_then(Value::as_text)
    }

    /// The values in column order (for results whose columns are data, as
    /// `verify`'s rows).
    pub fn values(&self) -> &[Value] {
        &self.values
    }
}

/// A Data API session target (workgroup or cluster) plus credentials.
#[derive(Clone)]
pub struct DataApi {
    client: Client,
    config: RedshiftConfig,
    shutdown: Shutdown,
}

macro_rules! target {
    ($builder:expr, $config:expr) => {
        $builder
            .database(&$config.database)
            .set_workgroup_name($config.workgroup.clone())
            .set_cluster_identifier($config.cluster_id.clone())
            .set_secret_arn($config.secret_arn.clone())
            .set_db_user($config.db_user.clone())
    };
}

impl DataApi {
    /// A client from the AWS default chain (`AWS_ENDPOINT_URL_REDSHIFT_DATA`
    /// points it at a stand-in), in `redshift.region` and as the role of
    /// `redshift.assume_role_arn` if set.
    pub async fn connect(config: &RedshiftConfig, shutdown: Shutdown) -> DataApi {
        let sdk = crate::aws::sdk_config(crate::aws::AwsAccess {
            region: config.region.as_deref(),
            assume_role_arn: config.assume_role_arn.as_deref(),
            external_id: config.assume_role_external_id.as_deref(),
        })
        .await;
        DataApi {
            client: Client::new(&sdk),
            config: config.clone(),
            shutdown,
        }
    }

    /// A failed Data API call, worded by [`crate::aws::classify`].
    fn api_error<E, R>(
        &self,
        call: &'static str,
        error: &aws_sdk_redshiftdata::error::SdkError<E, R>,
    ) -> RedshiftError
    where
        E: aws_sdk_redshiftdata::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        let target = match (&self.config.workgroup, &self.config.cluster_id) {
            (Some(w), _) => format!("workgroup {w:?}"),
            (_, Some(c)) => format!("cluster {c:?}"),
            _ => "Redshift".to_owned(),
        };
        let region = self.client.config().region().map(|r| r.as_ref().to_owned());
        let aws_call = crate::aws::Call::redshift_data(call, &target, region);
        RedshiftError::Api {
            call,
            message: crate::aws::classify(&aws_call, error).to_string(),
        }
    }

    /// A cheap call that proves the Data API answers with these credentials
    /// (ListStatements: it does not start a serverless workgroup or run SQL).
    pub async fn ping(&self) -> Result<(), RedshiftError> {
        self.client
            .list_statements()
            .max_results(1)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.api_error("ListStatements", &e))
    }

    /// Runs one statement and waits for it; returns the rows it affected.
    pub async fn execute(&self, sql: &str) -> Result<i64, RedshiftError> {
        let id = self.submit(sql).await?;
        self.wait(&id, sql).await
    }

    /// Submits one statement (ExecuteStatement); returns its id.
    async fn submit(&self, sql: &str) -> Result<String, RedshiftError> {
        tracing::debug!(sql, "execute");
        check_size(sql)?;
        let output = target!(
            self.client
                .execute_statement()
                .sql(sql)
                .client_token(client_token()),
            self.config
        )
        .send()
        .await
        .map_err(|e| self.api_error("ExecuteStatement", &e))?;
        Ok(output.id().unwrap_or_default().to_owned())
    }

    /// Runs statements as one transaction (any failure rolls all back).
    pub async fn batch(&self, sqls: &[String]) -> Result<(), RedshiftError> {
        self.batch_with_results(sqls, &[]).await.map(|_| ())
    }

    /// [`DataApi::batch`], then the rows returned by the statements at
    /// `results` (0-based positions in `sqls`), one GetStatementResult each
    /// (on the sub-statement id `<id>:<n>`): a batch whose last statements are
    /// queries costs one request per query more than a plain batch, not a
    /// statement of its own.
    pub async fn batch_with_results(
        &self,
        sqls: &[String],
        results: &[usize],
    ) -> Result<Vec<Vec<Row>>, RedshiftError> {
        self.batch_expecting_results(sqls, None, results).await
    }

    /// [`DataApi::batch_with_results`] of a batch expected to run about
    /// `expected` (polled accordingly, see [`first_polls`]).
    pub async fn batch_expecting_results(
        &self,
        sqls: &[String],
        expected: Option<Duration>,
        results: &[usize],
    ) -> Result<Vec<Vec<Row>>, RedshiftError> {
        let id = self.submit_batch(sqls).await?;
        let summary = format!("batch of {} statements", sqls.len());
        self.wait_expecting(&id, &summary, expected).await?;
        let mut rows = Vec::with_capacity(results.len());
        for at in results {
            rows.push(self.rows(&format!("{id}:{}", at + 1)).await?);
        }
        Ok(rows)
    }

    /// Submits a batch (BatchExecuteStatement); returns its id.
    async fn submit_batch(&self, sqls: &[String]) -> Result<String, RedshiftError> {
        tracing::debug!(statements = sqls.len(), "batch");
        for sql in sqls {
            check_size(sql)?;
        }
        let output = target!(
            self.client
                .batch_execute_statement()
                .set_sqls(Some(sqls.to_vec()))
                .client_token(client_token()),
            self.config
        )
        .send()
        .await
        .map_err(|e| self.api_error("BatchExecuteStatement", &e))?;
        Ok(output.id().unwrap_or_default().to_owned())
    }

    /// Runs a query and returns all its rows.
    pub async fn query(&self, sql: &str) -> Result<Vec<Row>, RedshiftError> {
        let id = self.submit(sql).await?;
        self.wait(&id, sql).await?;
        self.rows(&id).await
    }

    /// Every row of the finished statement `id`, page by page.
    async fn rows(&self, id: &str) -> Result<Vec<Row>, RedshiftError> {
        let mut rows = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let page = self
                .client
                .get_statement_result()
                .id(id)
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| self.api_error("GetStatementResult", &e))?;
            let names: Arc<[String]> = page
                .column_metadata()
                .iter()
                .map(|c| c.name().or(c.label()).unwrap_or_default().to_owned())
                .collect();
            rows.extend(
                page.records()
                    .iter()
                    .map(|record| Row::new(names.clone(), record.iter().map(value_of).collect())),
            );
            match page.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => break,
            }
        }
        Ok(rows)
    }

    /// Runs a query; every value as text (NULL as an empty string).
    pub async fn text_rows(&self, sql: &str) -> Result<Vec<Vec<String>>, RedshiftError> {
        Ok(self
            .query(sql)
            .await?
            .iter()
            .map(|row| {
                row.values()
                    .iter()
                    .map(|v| v.as_text().unwrap_or_default())
                    .collect()
            })
            .collect())
    }

    /// Polls until the statement ends. Returns its result rows.
    async fn wait(&self, id: &str, statement: &str) -> Result<i64, RedshiftError> {
        self.wait_expecting(id, statement, None).await
    }

    /// [`DataApi::wait`] for a statement expected to run about `expected`.
    async fn wait_expecting(
        &self,
        id: &str,
        statement: &str,
        expected: Option<Duration>,
    ) -> Result<i64, RedshiftError> {
        let submitted = Instant::now();
        let deadline = submitted + Duration::from_secs(self.config.statement_timeout_secs);
        let (mut delay, mut after) = first_polls(expected);
        loop {
            tokio::select! {
                _ = self.shutdown.wait() => {
                    self.cancel(id).await;
                    return Err(RedshiftError::Cancelled { statement: statement.to_owned() });
                }
                _ = tokio::time::sleep(delay) => {}
            }
            (delay, after) = (after, next_poll(after));
            let described = self
                .client
                .describe_statement()
                .id(id)
                .send()
                .await
                .map_err(|e| self.api_error("DescribeStatement", &e))?;
            match described.status() {
                Some(StatusString::Finished) => return Ok(described.result_rows()),
                Some(StatusString::Failed) => {
                    let failed_sub = described
                        .sub_statements()
                        .iter()
                        .find(|s| s.error().is_some_and(|e| !e.is_empty()))
                        .and_then(|s| s.query_string().map(str::to_owned));
                    return Err(RedshiftError::Failed {
                        statement: failed_sub.unwrap_or_else(|| statement.to_owned()),
                        error: described.error().unwrap_or("(no error text)").to_owned(),
                    });
                }
                Some(StatusString::Aborted) => {
                    return Err(RedshiftError::Aborted {
                        statement: statement.to_owned(),
                    });
                }
                _ => {}
            }
            if let Some(left) = time_left(&described, submitted.elapsed()) {
                (delay, after) = first_polls(Some(left * 4 / 3));
            }
            if Instant::now() >= deadline {
                self.cancel(id).await;
                return Err(RedshiftError::Timeout {
                    statement: statement.to_owned(),
                    seconds: self.config.statement_timeout_secs,
                });
            }
        }
    }

    async fn cancel(&self, id: &str) {
        if let Err(error) = self.client.cancel_statement().id(id).send().await {
            tracing::warn!(id, error = %aws_sdk_redshiftdata::error::DisplayErrorContext(error), "could not cancel statement");
        }
    }
}

/// A fresh `ClientToken` for one submit (the SDK's retries of it reuse it,
/// so a retried submit never runs twice). From the OS-seeded `rand` rather
/// than the SDK's default provider, which seeds from the clock: two
/// processes must never share a token, or the Data API would hand one of
/// them the other's statement and results.
fn client_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn value_of(field: &Field) -> Value {
    match field {
        Field::IsNull(true) => Value::Null,
        Field::LongValue(v) => Value::Long(*v),
        Field::DoubleValue(v) => Value::Double(*v),
        Field::BooleanValue(v) => Value::Bool(*v),
        Field::StringValue(v) => Value::Text(v.clone()),
        Field::BlobValue(b) => Value::Text(hex::encode(b.as_ref())),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_start_short_and_double_or_follow_the_expected_duration() {
        assert_eq!(
            first_polls(None),
            (POLL_INITIAL, POLL_INITIAL * 2),
            "no expectation: 50 ms, then 100 ms"
        );
        assert_eq!(next_poll(Duration::from_millis(1500)), POLL_MAX);
        let (first, then) = first_polls(Some(Duration::from_secs(4)));
        assert_eq!(first, Duration::from_secs(3));
        assert_eq!(then, Duration::from_secs(1));
        assert_eq!(
            first_polls(Some(Duration::from_millis(1))),
            (POLL_INITIAL, POLL_INITIAL)
        );
    }
}
