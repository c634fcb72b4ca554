//! Whether the stream received any record since a given time, asked of
//! Kinesis, not Redshift: an idle scheduled run then skips the warehouse
//! entirely (a Redshift Serverless activation is billed for at least 60 s).
//!
//! Protocol: `ListShards` (every shard, open or closed), then per shard an
//! `AT_TIMESTAMP` iterator and `GetRecords` with `Limit = 1`. A record means
//! activity. An empty answer is proof of quiet only when the shard is read
//! to its tip (`MillisBehindLatest = 0`) or closed (no next iterator):
//! Kinesis may answer empty while records lie further on, so the read goes
//! on for at most [`MAX_READS_PER_SHARD`] calls and then counts as activity.
//! Every doubt (an error included) counts as activity: a needless run costs
//! a warehouse wake-up, a wrongly skipped one would delay data.

use std::time::{Duration, SystemTime};

use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;

use crate::aws::{classify, AwsAccess, AwsError, Call};
use crate::config::KinesisConfig;

/// GetRecords calls per shard before an unfinished read counts as activity.
pub const MAX_READS_PER_SHARD: usize = 5;
/// How far before the previous run's start the check looks, for clock skew
/// between this host and Kinesis' arrival timestamps (hosts keep time by
/// NTP; the lease phase before each refresh adds more slack).
pub const CLOCK_MARGIN: Duration = Duration::from_secs(5);

/// What the check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// A record arrived (or could not be ruled out) in this shard.
    Arrived { shard_index: usize },
    /// No shard received a record since the time asked about.
    Quiet { shards: usize },
}

/// A Kinesis client for the activity check.
#[derive(Debug, Clone)]
pub struct StreamActivity {
    client: Client,
    stream: String,
    region: Option<String>,
}

impl StreamActivity {
    /// A client from the default AWS chain plus `[kinesis]`'s region and role.
    pub async fn from_config(config: &KinesisConfig) -> StreamActivity {
        let sdk = crate::aws::sdk_config(AwsAccess {
            region: config.region.as_deref(),
            assume_role_arn: config.assume_role_arn.as_deref(),
            external_id: config.assume_role_external_id.as_deref(),
        })
        .await;
        let timeout = Duration::from_secs(config.request_timeout_secs);
        let client_config = aws_sdk_kinesis::config::Builder::from(&sdk)
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(timeout)
                    .operation_timeout(timeout)
                    .build(),
            )
            .build();
        StreamActivity {
            client: Client::from_conf(client_config),
            stream: crate::sink::kinesis::stream_name(&config.stream).to_owned(),
            region: sdk.region().map(|r| r.as_ref().to_owned()),
        }
    }

    /// Whether any record arrived at or after `since` minus [`CLOCK_MARGIN`].
    pub async fn since(&self, since: SystemTime) -> Result<Activity, AwsError> {
        let from = since.checked_sub(CLOCK_MARGIN).unwrap_or(since);
        let shards = self.shard_ids().await?;
        for (shard_index, shard) in shards.iter().enumerate() {
            if self.shard_received(shard, from).await? {
                return Ok(Activity::Arrived { shard_index });
            }
        }
        Ok(Activity::Quiet {
            shards: shards.len(),
        })
    }

    fn call(&self, operation: &str) -> Call {
        Call::kinesis(operation, &self.stream, self.region.clone())
    }

    /// Every shard of the stream, following ListShards' pages.
    async fn shard_ids(&self) -> Result<Vec<String>, AwsError> {
        let mut ids = Vec::new();
        let mut next: Option<String> = None;
        loop {
            // With a NextToken, ListShards refuses the stream name.
            let request = match &next {
                Some(token) => self.client.list_shards().next_token(token),
                None => self.client.list_shards().stream_name(&self.stream),
            };
            let page = request
                .send()
                .await
                .map_err(|e| classify(&self.call("ListShards"), &e))?;
            ids.extend(page.shards().iter().map(|s| s.shard_id().to_owned()));
            match page.next_token() {
                Some(token) => next = Some(token.to_owned()),
                None => return Ok(ids),
            }
        }
    }

    /// Whether `shard` holds a record that arrived at or after `from`.
    async fn shard_received(&self, shard: &str, from: SystemTime) -> Result<bool, AwsError> {
        let iterator = self
            .client
            .get_shard_iterator()
            .stream_name(&self.stream)
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(DateTime::from(from))
            .send()
            .await
            .map_err(|e| classify(&self.call("GetShardIterator"), &e))?;
        let mut iterator = iterator.shard_iterator().map(str::to_owned);
        for _ in 0..MAX_READS_PER_SHARD {
            let Some(current) = iterator else {
                return Ok(false);
            };
            let page = self
                .client
                .get_records()
                .shard_iterator(current)
                .limit(1)
                .send()
                .await
                .map_err(|e| classify(&self.call("GetRecords"), &e))?;
            if !page.records().is_empty() {
                return Ok(true);
            }
            if page.millis_behind_latest() == Some(0) {
                return Ok(false);
            }
            iterator = page.next_shard_iterator().map(str::to_owned);
        }
        Ok(true)
    }
}
