//! Test harness: starts the stand-in in-process against the PostgreSQL and
//! Kinesis (kinesalite) given by STANDIN_TEST_PG_URL / STANDIN_TEST_KINESIS_URL
//! and drives it with the real aws-sdk-redshiftdata client.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use aws_sdk_redshiftdata::operation::describe_statement::DescribeStatementOutput;
use aws_sdk_redshiftdata::types::{Field, StatusString};

pub fn env_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "environment variable {var} must be set for the redshift-data-standin integration tests \
             (STANDIN_TEST_PG_URL=postgres://postgres@127.0.0.1:55433/postgres, \
             STANDIN_TEST_KINESIS_URL=http://127.0.0.1:4568)"
        ),
    }
}

pub fn kinesis_client(url: &str) -> aws_sdk_kinesis::Client {
    let conf = aws_sdk_kinesis::Config::builder()
        .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
        .region(aws_sdk_kinesis::config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .build();
    aws_sdk_kinesis::Client::from_conf(conf)
}

pub struct Server {
    pub rs: aws_sdk_redshiftdata::Client,
    pub kinesis: aws_sdk_kinesis::Client,
    pub db: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn unique(prefix: &str) -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &u[..12])
}

pub async fn start() -> Server {
    let pg = env_url("STANDIN_TEST_PG_URL");
    let kin = env_url("STANDIN_TEST_KINESIS_URL");
    let kinesis = kinesis_client(&kin);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let config = redshift_data_standin::Config {
        postgres_url: pg,
        kinesis: kinesis.clone(),
    };
    tokio::spawn(async move {
        let r = redshift_data_standin::serve(listener, config, async {
            let _ = rx.await;
        })
        .await;
        if let Err(e) = r {
            eprintln!("server error: {e:#}");
        }
    });
    let conf = aws_sdk_redshiftdata::Config::builder()
        .behavior_version(aws_sdk_redshiftdata::config::BehaviorVersion::latest())
        .region(aws_sdk_redshiftdata::config::Region::new("us-east-1"))
        .endpoint_url(format!("http://{addr}"))
        .credentials_provider(aws_sdk_redshiftdata::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .build();
    Server {
        rs: aws_sdk_redshiftdata::Client::from_conf(conf),
        kinesis,
        db: unique("standin_test"),
        shutdown: Some(tx),
    }
}

pub fn is_terminal(s: &StatusString) -> bool {
    matches!(
        s,
        StatusString::Finished | StatusString::Failed | StatusString::Aborted
    )
}

impl Server {
    pub async fn submit(&self, sql: &str) -> String {
        self.rs
            .execute_statement()
            .sql(sql)
            .database(&self.db)
            .workgroup_name("wg")
            .send()
            .await
            .expect("ExecuteStatement")
            .id()
            .expect("Id in response")
            .to_string()
    }

    pub async fn submit_batch(&self, sqls: &[&str]) -> String {
        let mut req = self
            .rs
            .batch_execute_statement()
            .database(&self.db)
            .cluster_identifier("cluster");
        for s in sqls {
            req = req.sqls(*s);
        }
        req.send()
            .await
            .expect("BatchExecuteStatement")
            .id()
            .expect("Id in response")
            .to_string()
    }

    pub async fn describe(&self, id: &str) -> DescribeStatementOutput {
        self.rs
            .describe_statement()
            .id(id)
            .send()
            .await
            .expect("DescribeStatement")
    }

    pub async fn wait(&self, id: &str) -> DescribeStatementOutput {
        let start = Instant::now();
        loop {
            let d = self.describe(id).await;
            if d.status().is_some_and(is_terminal) {
                return d;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "statement {id} did not finish: {d:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Runs SQL, expects FINISHED.
    pub async fn ok(&self, sql: &str) -> String {
        let id = self.submit(sql).await;
        let d = self.wait(&id).await;
        assert_eq!(
            d.status(),
            Some(&StatusString::Finished),
            "statement failed: {sql}\nerror: {:?}",
            d.error()
        );
        id
    }

    /// Runs SQL, expects FAILED, returns the error text.
    pub async fn fails(&self, sql: &str) -> String {
        let id = self.submit(sql).await;
        let d = self.wait(&id).await;
        assert_eq!(
            d.status(),
            Some(&StatusString::Failed),
            "statement should have failed: {sql}"
        );
        let e = d.error().unwrap_or_default().to_string();
        assert!(e.starts_with("ERROR: "), "error text {e:?}");
        e
    }

    pub async fn rows_of(&self, id: &str) -> Vec<Vec<Field>> {
        self.rs
            .get_statement_result()
            .id(id)
            .send()
            .await
            .expect("GetStatementResult")
            .records()
            .to_vec()
    }

    /// Runs a query and returns its rows rendered as strings ("NULL" for null).
    pub async fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let id = self.ok(sql).await;
        self.rows_of(&id)
            .await
            .iter()
            .map(|r| r.iter().map(show).collect())
            .collect()
    }

    /// A single value.
    pub async fn scalar(&self, sql: &str) -> String {
        let rows = self.query(sql).await;
        assert_eq!(rows.len(), 1, "one row expected from {sql}: {rows:?}");
        rows[0][0].clone()
    }

    pub async fn create_stream(&self, name: &str, shards: i32) {
        self.kinesis
            .create_stream()
            .stream_name(name)
            .shard_count(shards)
            .send()
            .await
            .expect("CreateStream");
        let start = Instant::now();
        loop {
            let d = self
                .kinesis
                .describe_stream_summary()
                .stream_name(name)
                .send()
                .await
                .expect("DescribeStreamSummary");
            if d.stream_description_summary()
                .map(|s| s.stream_status().as_str())
                == Some("ACTIVE")
            {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "stream not active"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn put(&self, stream: &str, key: &str, data: &[u8]) {
        self.kinesis
            .put_record()
            .stream_name(stream)
            .partition_key(key)
            .data(aws_sdk_kinesis::primitives::Blob::new(data.to_vec()))
            .send()
            .await
            .expect("PutRecord");
    }

    pub async fn delete_stream(&self, name: &str) {
        let _ = self.kinesis.delete_stream().stream_name(name).send().await;
    }
}

pub fn show(f: &Field) -> String {
    match f {
        Field::LongValue(v) => v.to_string(),
        Field::DoubleValue(v) => v.to_string(),
        Field::BooleanValue(v) => v.to_string(),
        Field::StringValue(v) => v.clone(),
        Field::IsNull(_) => "NULL".to_string(),
        other => format!("{other:?}"),
    }
}
