-- The Kinesis stream as an external schema. Redshift assumes {{stream_role}}
-- to read it (DescribeStreamSummary, GetShardIterator, GetRecords,
-- ListShards, DescribeStream, ListStreams).
CREATE EXTERNAL SCHEMA IF NOT EXISTS {{external_schema}}
FROM KINESIS
IAM_ROLE {{stream_role}};
