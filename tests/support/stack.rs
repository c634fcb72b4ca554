//! The local stack a test runs against (addresses from `deploy/local/test`'s
//! `KINESYNC_TEST_*` variables), connecting to PostgreSQL, and polling with
//! a deadline instead of sleeping.

use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::{Client, NoTls};

/// Longest wait for anything the tests poll for.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// The seed of a randomized fault test: `KINESYNC_FAULT_SEED` if set, else
/// random. Printed (shown when the test fails) with the command that
/// re-runs exactly this case.
pub fn fault_seed(test: &str) -> u64 {
    let seed = match std::env::var("KINESYNC_FAULT_SEED") {
        Ok(text) => text.trim().parse().expect("KINESYNC_FAULT_SEED: a number"),
        Err(_) => rand::random(),
    };
    eprintln!(
        "{test}: seed {seed}; re-run with KINESYNC_FAULT_SEED={seed} deploy/local/test --test faults {test}"
    );
    seed
}

/// Addresses of the local stack.
#[derive(Debug, Clone)]
pub struct Stack {
    pub pg_url: String,
    pub kinesis_url: String,
    pub redshift_url: String,
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with deploy/local/test, which starts the local stack and sets it")
    })
}

impl Stack {
    pub fn from_env() -> Stack {
        Stack {
            pg_url: required_env("KINESYNC_TEST_PG_URL"),
            kinesis_url: required_env("KINESYNC_TEST_KINESIS_URL"),
            redshift_url: required_env("KINESYNC_TEST_REDSHIFT_URL"),
        }
    }
}

pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(connection);
    client
}

/// Polls `check` until it returns `Some`, failing the test after [`DEADLINE`].
pub async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every row of `sql`'s result, each column as text.
pub async fn text_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| row.get::<_, Option<String>>(i))
                .collect()
        })
        .collect()
}
