//! The Kinesis stand-in: creating a test's stream and reading every record
//! back.

use tokio::time::Instant;

use super::pipeline::Pipeline;
use super::stack::{poll, Stack, DEADLINE};

impl Pipeline {
    /// Every change event in the stream (shape records left out: see
    /// [`Pipeline::read_stream_with_shapes`]), read from TRIM_HORIZON on
    /// every shard.
    pub async fn read_stream(&self) -> Vec<StreamRecord> {
        let records = read_stream(&self.stack, &self.stream).await;
        records.into_iter().filter(|r| !r.is_shape()).collect()
    }

    /// Every record in the stream, shape records (`op = "s"`) included.
    pub async fn read_stream_with_shapes(&self) -> Vec<StreamRecord> {
        read_stream(&self.stack, &self.stream).await
    }
}

impl StreamRecord {
    /// A shape record (docs/events.md), not a change event.
    pub fn is_shape(&self) -> bool {
        self.event["op"] == "s"
    }
}

/// One record read back from the stream.
#[derive(Debug, Clone)]
pub struct StreamRecord {
    pub shard: String,
    pub partition_key: String,
    pub event: serde_json::Value,
}

/// A Kinesis client for the stand-in.
pub async fn kinesis_client(stack: &Stack) -> aws_sdk_kinesis::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&stack.kinesis_url)
        .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
            "local", "local", None, None, "test",
        ))
        .load()
        .await;
    aws_sdk_kinesis::Client::new(&config)
}

/// Every record of `stream`: per shard, GetShardIterator(TRIM_HORIZON) and
/// GetRecords until a call returns nothing and is not behind the tip.
/// Records of one shard keep their order; shards follow one another.
pub async fn read_stream(stack: &Stack, stream: &str) -> Vec<StreamRecord> {
    let kinesis = kinesis_client(stack).await;
    let description = kinesis
        .describe_stream()
        .stream_name(stream)
        .send()
        .await
        .unwrap_or_else(|e| panic!("describe stream {stream}: {e:?}"));
    let shards: Vec<String> = description
        .stream_description()
        .expect("stream description")
        .shards()
        .iter()
        .map(|s| s.shard_id().to_owned())
        .collect();
    let mut records = Vec::new();
    for shard in shards {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(&shard)
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap_or_else(|e| panic!("shard iterator {shard}: {e:?}"))
            .shard_iterator()
            .map(str::to_owned);
        let deadline = Instant::now() + DEADLINE;
        while let Some(it) = iterator {
            assert!(
                Instant::now() < deadline,
                "reading shard {shard} took over {DEADLINE:?}"
            );
            let page = kinesis
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .unwrap_or_else(|e| panic!("get records {shard}: {e:?}"));
            for record in page.records() {
                let data = record.data().as_ref();
                let event = serde_json::from_slice(data).unwrap_or_else(|e| {
                    panic!(
                        "record is not JSON ({e}): {}",
                        String::from_utf8_lossy(data)
                    )
                });
                records.push(StreamRecord {
                    shard: shard.clone(),
                    partition_key: record.partition_key().unwrap_or_default().to_owned(),
                    event,
                });
            }
            let caught_up =
                page.records().is_empty() && page.millis_behind_latest().is_none_or(|ms| ms == 0);
            iterator = if caught_up {
                None
            } else {
                page.next_shard_iterator().map(str::to_owned)
            };
        }
    }
    records
}

/// Creates a Kinesis stream with 2 shards on the stand-in and waits until ACTIVE.
pub async fn create_stream(stack: &Stack, stream: &str) {
    let kinesis = kinesis_client(stack).await;
    let _ = kinesis.delete_stream().stream_name(stream).send().await;
    poll(&format!("stream {stream} to be deleted"), || async {
        kinesis
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .is_err()
            .then_some(())
    })
    .await;
    kinesis
        .create_stream()
        .stream_name(stream)
        .shard_count(2)
        .send()
        .await
        .expect("create stream");
    poll(&format!("stream {stream} to be ACTIVE"), || async {
        let summary = kinesis
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .ok()?;
        let status = summary
            .stream_description_summary()?
            .stream_status()
            .clone();
        (status == aws_sdk_kinesis::types::StreamStatus::Active).then_some(())
    })
    .await;
}
