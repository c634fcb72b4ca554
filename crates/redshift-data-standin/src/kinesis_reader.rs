//! Streaming view refresh: reads a Kinesis stream from the sequence numbers
//! a view consumed last (per shard, kept in
//! `kinesync_standin.stream_positions`; TRIM_HORIZON the first time) to the
//! tip, stages the records in a temp table shaped like the stream relation,
//! runs the view's translated SELECT over it into the view's table, and
//! records the new positions, all in one PostgreSQL transaction: an error in
//! the view's expressions consumes nothing. Oversized records are skipped
//! and logged to `kinesync_standin.sys_stream_scan_errors`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client as Kinesis;
use tokio_postgres::Client;
use tracing::{debug, info, warn};

use crate::catalog::MAX_RECORD_BYTES;
use crate::rewrite::{quote_ident, STAGING_TABLE};

/// Errors of a refresh.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Kinesis(String),
    #[error("materialized view {0} is not a streaming materialized view")]
    NotStreaming(String),
    #[error("query cancelled on user's request")]
    Cancelled,
}

/// SQL creating the staging table (same columns as a Kinesis stream relation).
pub fn staging_ddl() -> String {
    format!(
        "DROP TABLE IF EXISTS pg_temp.{STAGING_TABLE}; \
         CREATE TEMP TABLE {STAGING_TABLE} (\
           approximate_arrival_timestamp timestamp, \
           partition_key varchar(256), \
           shard_id varchar(128), \
           sequence_number varchar(128), \
           refresh_time timestamp, \
           kinesis_data bytea)"
    )
}

/// Checks that a stream exists (used by CREATE MATERIALIZED VIEW).
pub async fn check_stream(kinesis: &Kinesis, stream: &str) -> Result<(), RefreshError> {
    kinesis
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .map_err(|e| kinesis_error(stream, e))?;
    Ok(())
}

fn kinesis_error<E>(stream: &str, e: aws_sdk_kinesis::error::SdkError<E>) -> RefreshError
where
    E: std::error::Error + aws_sdk_kinesis::error::ProvideErrorMetadata + 'static,
{
    let code = e.as_service_error().and_then(|s| s.code()).unwrap_or("");
    if code == "ResourceNotFoundException" {
        RefreshError::Kinesis(format!("Kinesis stream \"{stream}\" does not exist"))
    } else {
        RefreshError::Kinesis(format!(
            "Kinesis error reading stream \"{stream}\": {}",
            DisplayErrorContext(&e)
        ))
    }
}

/// Microsecond-truncated now (PG timestamps hold microseconds).
fn now_micros() -> SystemTime {
    let now = SystemTime::now();
    match now.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_micros(d.as_micros() as u64),
        Err(_) => now,
    }
}

struct Staged {
    arrival: Vec<SystemTime>,
    partition: Vec<String>,
    sequence: Vec<String>,
    data: Vec<Vec<u8>>,
}

impl Staged {
    fn new() -> Self {
        Staged {
            arrival: Vec::new(),
            partition: Vec::new(),
            sequence: Vec::new(),
            data: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.sequence.len()
    }

    async fn flush(
        &mut self,
        client: &Client,
        shard: &str,
        refresh_time: SystemTime,
    ) -> Result<(), tokio_postgres::Error> {
        if self.len() == 0 {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO pg_temp.{STAGING_TABLE} (approximate_arrival_timestamp, partition_key, shard_id, sequence_number, refresh_time, kinesis_data) \
             SELECT a, p, $3, s, $4, d FROM unnest($1::timestamp[], $2::text[], $5::text[], $6::bytea[]) AS u(a, p, s, d)"
        );
        client
            .execute(
                &sql,
                &[
                    &self.arrival,
                    &self.partition,
                    &shard,
                    &refresh_time,
                    &self.sequence,
                    &self.data,
                ],
            )
            .await?;
        *self = Staged::new();
        Ok(())
    }
}

/// Lists all shard ids of a stream (ListShards, paging).
async fn list_shards(kinesis: &Kinesis, stream: &str) -> Result<Vec<String>, RefreshError> {
    let mut shards = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let req = match &next {
            Some(tok) => kinesis.list_shards().next_token(tok),
            None => kinesis.list_shards().stream_name(stream),
        };
        let out = req.send().await.map_err(|e| kinesis_error(stream, e))?;
        shards.extend(out.shards().iter().map(|s| s.shard_id().to_string()));
        match out.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(shards)
}

/// Refreshes streaming view `schema.name` (the caller must not be in a transaction).
pub async fn refresh(
    client: &Client,
    kinesis: &Kinesis,
    schema: &str,
    name: &str,
    is_cancelled: &(dyn Fn() -> bool + Send + Sync),
) -> Result<u64, RefreshError> {
    client.batch_execute("BEGIN").await?;
    let r = refresh_in_txn(client, kinesis, schema, name, is_cancelled).await;
    match r {
        Ok(n) => {
            client.batch_execute("COMMIT").await?;
            Ok(n)
        }
        Err(e) => {
            if let Err(re) = client.batch_execute("ROLLBACK").await {
                warn!(error = %re, "rollback after failed refresh");
            }
            Err(e)
        }
    }
}

async fn refresh_in_txn(
    client: &Client,
    kinesis: &Kinesis,
    schema: &str,
    name: &str,
    is_cancelled: &(dyn Fn() -> bool + Send + Sync),
) -> Result<u64, RefreshError> {
    let row = client
        .query_opt(
            "SELECT external_schema, stream_name, select_sql FROM kinesync_standin.streaming_views \
             WHERE schema_name = $1 AND view_name = $2 FOR UPDATE",
            &[&schema, &name],
        )
        .await?
        .ok_or_else(|| RefreshError::NotStreaming(format!("{schema}.{name}")))?;
    let ext_schema: String = row.get(0);
    let stream: String = row.get(1);
    let select_sql: String = row.get(2);
    let positions: std::collections::HashMap<String, String> = client
        .query(
            "SELECT shard_id, sequence_number FROM kinesync_standin.stream_positions \
             WHERE schema_name = $1 AND view_name = $2",
            &[&schema, &name],
        )
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();

    let refresh_time = now_micros();
    client.batch_execute(&staging_ddl()).await?;
    let shards = list_shards(kinesis, &stream).await?;
    let mut new_positions: Vec<(String, String)> = Vec::new();
    let mut expired = crate::faults::take_expired(client).await;
    let mut total = 0usize;
    let mut skipped = 0usize;
    for shard in &shards {
        let mut req = kinesis
            .get_shard_iterator()
            .stream_name(&stream)
            .shard_id(shard);
        req = match positions.get(shard) {
            Some(seq) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            None => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let mut iterator = req
            .send()
            .await
            .map_err(|e| kinesis_error(&stream, e))?
            .shard_iterator()
            .map(str::to_string);
        let mut staged = Staged::new();
        let mut last_seq: Option<String> = None;
        let mut empty_rounds = 0;
        while let Some(it) = iterator.take() {
            if is_cancelled() {
                return Err(RefreshError::Cancelled);
            }
            let out = kinesis
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .map_err(|e| kinesis_error(&stream, e))?;
            let records = out.records();
            for rec in records {
                let data = rec.data().as_ref();
                let seq = rec.sequence_number().to_string();
                if expired > 0 {
                    // Fault injection: as if it had expired unread.
                    expired -= 1;
                    last_seq = Some(seq);
                    continue;
                }
                if data.len() > MAX_RECORD_BYTES {
                    skipped += 1;
                    client
                        .execute(
                            "INSERT INTO kinesync_standin.sys_stream_scan_errors \
                             (mv_schema, mv_name, external_schema_name, stream_name, shard_id, partition_key, sequence_number, record_length, error_code, reason) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9)",
                            &[
                                &schema,
                                &name,
                                &ext_schema,
                                &stream,
                                shard,
                                &rec.partition_key(),
                                &seq,
                                &(data.len() as i64),
                                &format!("record of {} bytes exceeds the maximum of {MAX_RECORD_BYTES} bytes", data.len()),
                            ],
                        )
                        .await?;
                    warn!(
                        stream,
                        shard,
                        seq,
                        len = data.len(),
                        "skipped oversized record"
                    );
                } else {
                    let arrival = rec
                        .approximate_arrival_timestamp()
                        .map(|t| {
                            UNIX_EPOCH
                                + Duration::from_secs(t.secs().max(0) as u64)
                                + Duration::from_micros(u64::from(t.subsec_nanos() / 1000))
                        })
                        .unwrap_or(refresh_time);
                    staged.arrival.push(arrival);
                    staged
                        .partition
                        .push(rec.partition_key().unwrap_or_default().to_string());
                    staged.sequence.push(seq.clone());
                    staged.data.push(data.to_vec());
                    total += 1;
                }
                last_seq = Some(seq);
                if staged.len() >= 1000 {
                    staged.flush(client, shard, refresh_time).await?;
                }
            }
            let behind = out.millis_behind_latest().unwrap_or(0);
            if records.is_empty() {
                empty_rounds += 1;
                if behind == 0 || empty_rounds >= 5 {
                    break;
                }
            } else {
                empty_rounds = 0;
            }
            iterator = out.next_shard_iterator().map(str::to_string);
        }
        staged.flush(client, shard, refresh_time).await?;
        if let Some(seq) = last_seq {
            new_positions.push((shard.clone(), seq));
        }
    }
    debug!(stream, records = total, "staged stream records");
    let view = format!("{}.{}", quote_ident(schema), quote_ident(name));
    let inserted = client
        .execute(&format!("INSERT INTO {view} {select_sql}"), &[])
        .await?;
    for (shard, seq) in &new_positions {
        client
            .execute(
                "INSERT INTO kinesync_standin.stream_positions (schema_name, view_name, shard_id, sequence_number, updated_at) \
                 VALUES ($1, $2, $3, $4, now() AT TIME ZONE 'UTC') \
                 ON CONFLICT (schema_name, view_name, shard_id) DO UPDATE \
                 SET sequence_number = EXCLUDED.sequence_number, updated_at = EXCLUDED.updated_at",
                &[&schema, &name, shard, seq],
            )
            .await?;
    }
    client
        .execute(
            "UPDATE kinesync_standin.streaming_views SET last_refresh_at = $3 \
             WHERE schema_name = $1 AND view_name = $2",
            &[&schema, &name, &refresh_time],
        )
        .await?;
    crate::faults::arm_after_refresh(client).await?;
    client
        .batch_execute(&format!("DROP TABLE pg_temp.{STAGING_TABLE}"))
        .await?;
    info!(view = %view, stream, shards = shards.len(), read = total, skipped, inserted, "refreshed streaming view");
    Ok(inserted)
}
