//! The Kinesis sink: one PutRecords call per batch through the AWS SDK.
//!
//! This file is only the call and the classification of its answers; the
//! batching, ordering and retry policy live in `dispatch`. The stream is
//! always addressed by name (kinesalite rejects ARN-only requests; an ARN in
//! the config is reduced to its last path segment). Credentials, region and
//! endpoint come from `crate::aws` (the SDK's default chain,
//! `AWS_ENDPOINT_URL_KINESIS` points it at a stand-in; `kinesis.region` and
//! `kinesis.assume_role_arn` on top).
//!
//! Retries are the dispatcher's alone: the SDK makes one attempt per call
//! ([`SDK_MAX_ATTEMPTS`]), so a throttled or failed request comes back at
//! once and is retried with the dispatcher's jittered, capped backoff, which
//! also keeps the per-key ordering. Every attempt has a deadline
//! (`kinesis.request_timeout_secs`): a request that hangs (a stuck connection, a
//! half-open socket) fails as retryable instead of blocking its keys, and
//! with them the slot, forever. Kinesis may still have stored a timed-out
//! request: its retry is a duplicate, which the merge drops.

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamMode};
use aws_sdk_kinesis::Client;
use std::time::Duration;

use super::{OutRecord, PutError, RecordResult, RecordWriter, SinkError};
use crate::aws::{AwsError, Call};
use crate::config::KinesisConfig;

/// A PutRecords client bound to one stream.
#[derive(Clone)]
pub struct KinesisWriter {
    client: Client,
    stream_name: String,
    /// The client's region, for error messages.
    region: Option<String>,
}

/// Attempts the SDK makes per call: one; the dispatcher retries.
pub const SDK_MAX_ATTEMPTS: u32 = 1;
/// Longest wait for a TCP/TLS connection to Kinesis.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Error codes (service or per record) that mean "try again later".
const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "InternalFailure",
    "InternalFailureException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "KMSThrottlingException",
    "ThrottlingException",
    "LimitExceededException",
    "RequestTimeout",
    "RequestTimeoutException",
];

impl KinesisWriter {
    /// Build a client from the default AWS chain plus `config.region` and
    /// the role of `config.assume_role_arn`, if set.
    pub async fn from_config(config: &KinesisConfig) -> KinesisWriter {
        let sdk = crate::aws::sdk_config(crate::aws::AwsAccess {
            region: config.region.as_deref(),
            assume_role_arn: config.assume_role_arn.as_deref(),
            external_id: config.assume_role_external_id.as_deref(),
        })
        .await;
        let client_config = aws_sdk_kinesis::config::Builder::from(&sdk)
            .retry_config(
                aws_config::retry::RetryConfig::standard().with_max_attempts(SDK_MAX_ATTEMPTS),
            )
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(Duration::from_secs(config.request_timeout_secs))
                    .operation_timeout(Duration::from_secs(config.request_timeout_secs))
                    .build(),
            )
            .build();
        KinesisWriter {
            client: Client::from_conf(client_config),
            stream_name: stream_name(&config.stream).to_owned(),
            region: sdk.region().map(|r| r.as_ref().to_owned()),
        }
    }

    pub fn stream_name(&self) -> &str {
        &self.stream_name
    }

    /// `operation` on this writer's stream, for error messages.
    fn call(&self, operation: &str) -> Call {
        Call::kinesis(operation, &self.stream_name, self.region.clone())
    }

    /// Fail fast before streaming: the stream exists and we may describe it.
    pub async fn check(&self) -> Result<(), SinkError> {
        self.describe().await.map(|_| ())
    }

    /// The stream's state, shard count, capacity mode and retention.
    pub async fn describe(&self) -> Result<StreamSummary, SinkError> {
        match self
            .client
            .describe_stream_summary()
            .stream_name(&self.stream_name)
            .send()
            .await
        {
            Ok(output) => {
                let summary = output.stream_description_summary();
                Ok(StreamSummary {
                    status: summary
                        .map(|s| s.stream_status().as_str().to_owned())
                        .unwrap_or_default(),
                    open_shards: summary.map(|s| s.open_shard_count()).unwrap_or(0),
                    on_demand: summary
                        .and_then(|s| s.stream_mode_details())
                        .is_some_and(|m| m.stream_mode() == &StreamMode::OnDemand),
                    retention_hours: summary.map(|s| s.retention_period_hours()).unwrap_or(0),
                })
            }
            Err(err) => Err(
                match classify(&self.call("DescribeStreamSummary"), &self.stream_name, &err) {
                    PutError::Fatal(e) => e,
                    PutError::Retryable(detail) => SinkError::Io {
                        target: format!("Kinesis stream {:?}", self.stream_name),
                        detail,
                    },
                },
            ),
        }
    }
}

/// What DescribeStreamSummary tells about a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    /// `ACTIVE`, `CREATING`, `UPDATING` or `DELETING`.
    pub status: String,
    pub open_shards: i32,
    /// On-demand capacity mode (scales by itself) rather than provisioned.
    pub on_demand: bool,
    pub retention_hours: i32,
}

/// The name part of a stream ARN (`arn:aws:kinesis:r:acct:stream/name`), or the name itself.
pub fn stream_name(stream: &str) -> &str {
    stream.rsplit('/').next().unwrap_or(stream)
}

impl RecordWriter for KinesisWriter {
    fn put_records(
        &self,
        records: &[OutRecord],
    ) -> impl std::future::Future<Output = Result<Vec<RecordResult>, PutError>> + Send {
        let entries: Result<Vec<PutRecordsRequestEntry>, _> = records
            .iter()
            .map(|r| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(r.data.clone()))
                    .partition_key(r.partition_key.clone())
                    .build()
            })
            .collect();
        let request = self.client.put_records().stream_name(&self.stream_name);
        let stream = self.stream_name.clone();
        let call = self.call("PutRecords");
        let count = records.len();
        async move {
            let entries = entries.map_err(|e| SinkError::Rejected {
                stream: stream.clone(),
                code: "BuildError".into(),
                detail: e.to_string(),
            })?;
            let output = request
                .set_records(Some(entries))
                .send()
                .await
                .map_err(|e| classify(&call, &stream, &e))?;
            let results = output.records();
            if results.len() != count {
                return Err(PutError::Retryable(format!(
                    "PutRecords answered {} entries for {count} records",
                    results.len()
                )));
            }
            results
                .iter()
                .map(|entry| match entry.error_code() {
                    None => Ok(RecordResult::Accepted),
                    Some(code) if RETRYABLE_CODES.contains(&code) => Ok(RecordResult::Retry {
                        code: code.to_owned(),
                    }),
                    // Unknown per-record codes: retrying is the safe side; the
                    // warning log names the code.
                    Some(code) => Ok(RecordResult::Retry {
                        code: code.to_owned(),
                    }),
                })
                .collect()
        }
    }
}

/// Map an SDK error to retry-or-stop, worded by [`crate::aws::classify`]:
/// throttling, network trouble and unknown service codes are retried; a
/// missing stream, missing credentials or region, and refused access stop
/// the producer with one line naming the fix.
fn classify<E, R>(call: &Call, stream: &str, err: &SdkError<E, R>) -> PutError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let aws = crate::aws::classify(call, err);
    if matches!(err, SdkError::ConstructionFailure(_)) {
        return PutError::Fatal(SinkError::Aws(Box::new(aws)));
    }
    match &aws {
        AwsError::NotFound { code, message, .. } => PutError::Fatal(SinkError::StreamNotFound {
            stream: stream.into(),
            detail: format!("{code}: {message}"),
        }),
        AwsError::Service { code, message, .. } if FATAL_CODES.contains(&code.as_str()) => {
            PutError::Fatal(SinkError::Rejected {
                stream: stream.into(),
                code: code.clone(),
                detail: message.clone(),
            })
        }
        AwsError::Service { .. }
        | AwsError::Throttled { .. }
        | AwsError::Unreachable { .. }
        | AwsError::Other { .. } => PutError::Retryable(aws.to_string()),
        _ => PutError::Fatal(SinkError::Aws(Box::new(aws))),
    }
}

/// Service error codes that no retry can fix (the request itself is wrong).
const FATAL_CODES: &[&str] = &[
    "ValidationException",
    "InvalidArgumentException",
    "KMSDisabledException",
    "KMSInvalidStateException",
    "KMSNotFoundException",
    "KMSOptInRequired",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_becomes_name() {
        assert_eq!(
            stream_name("arn:aws:kinesis:us-east-1:123456789012:stream/cdc"),
            "cdc"
        );
        assert_eq!(stream_name("cdc"), "cdc");
    }
}
