//! `kinesync check`: the preflight a user runs first. Each prerequisite of
//! the three parts is one [`Finding`]; a failed one carries the exact fix
//! (the GRANT, the ALTER, the IAM action). Nothing is created or changed,
//! with one exception: unless `--no-write`, one probe record (partition key
//! `kinesync-check`) is put into the stream to prove the role may write. It
//! is a Debezium-style *message* event (`op` = `"m"`, `before` and `after`
//! null, no table, `message.prefix` = `kinesync-check`), which the event
//! contract (docs/events.md) tells every consumer to skip; the merge skips
//! it because it belongs to no source table.
//!
//! `--for produce` and `--for merge` check only what that process needs, so
//! each can run with its own identity (the producer has no Redshift rights,
//! the merge daemon no PutRecords right). Redshift objects `setup` has not
//! created yet are "to do", not failures.

use serde::Serialize;
use tokio_postgres::Client;

use super::{human_duration, seconds_between, Finding, Outcome, Part};
use crate::catalog::{self, KeyKind, SourceTable};
use crate::config::{Config, KeylessTables, RedshiftConfig};
use crate::postgres::redact_url;
use crate::redshift::{DataApi, Value};
use crate::scheduler::plan::{redshift_name, Objects};
use crate::shutdown::Shutdown;
use crate::sink::kinesis::{KinesisWriter, StreamSummary};
use crate::sink::{OutRecord, RecordResult, RecordWriter, SinkError};
use crate::source::version::{self, Verdict, SUPPORTED_SERVERS};
use crate::sql::{self, quote_literal, TableName, Template, Values};

/// Events per second one provisioned shard accepts.
pub const SHARD_RECORDS_PER_SECOND: u64 = 1_000;
/// Share of the stream's capacity the expected rate may use before `check`
/// asks for more shards: room for bursts and uneven partition keys.
pub const SHARD_HEADROOM: f64 = 0.8;
/// The partition key of the probe record, and its `message.prefix`.
pub const PROBE_PARTITION_KEY: &str = "kinesync-check";

/// Which process's prerequisites to check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Side {
    /// Everything.
    #[default]
    All,
    /// `produce`: the source's replication side and the stream.
    Produce,
    /// The merge daemon and setup: the source catalog and Redshift.
    Merge,
}

/// Source checks the merge daemon needs too (it reads the source catalog);
/// the rest (replication, publication, slot) are the producer's.
fn merge_needs(finding: &Finding) -> bool {
    finding.part != Part::Source
        || matches!(finding.check.as_str(), "connection" | "catalog" | "tables")
        || finding.check.starts_with("table ")
}

/// What the user asked `check` to do.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Events per second the stream must carry, to size shards against.
    pub expected_rate: Option<u64>,
    /// Skip the probe record.
    pub no_write: bool,
    /// Which process's prerequisites to check.
    pub side: Side,
}

/// Every finding, in order.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub findings: Vec<Finding>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.findings.iter().all(|f| f.outcome != Outcome::Fail)
    }
}

/// Runs every check of the source, the stream and Redshift.
pub async fn check(config: &Config, options: &CheckOptions, shutdown: Shutdown) -> CheckReport {
    let mut findings = Vec::new();
    check_source(config, &mut findings).await;
    if options.side == Side::Merge {
        findings.retain(merge_needs);
    } else {
        check_kinesis(config, options, &mut findings).await;
    }
    if options.side != Side::Produce && config.schedule.skip_idle {
        findings.push(stream_activity_finding(config).await);
    }
    match (&config.redshift, options.side) {
        (_, Side::Produce) => findings.push(Finding::skipped(
            Part::Redshift,
            "configuration",
            "--for produce: Redshift is the merge daemon's (kinesync check --for merge)",
        )),
        (Some(redshift), _) => check_redshift(config, redshift, shutdown, &mut findings).await,
        (None, _) => findings.push(Finding::skipped(
            Part::Redshift,
            "configuration",
            "no [redshift] section: only the producer side was checked",
        )),
    }
    CheckReport { findings }
}

async fn check_source(config: &Config, findings: &mut Vec<Finding>) {
    let source = &config.source;
    let url = redact_url(&source.url);
    let client = match catalog::connect(&source.url).await {
        Ok(client) => client,
        Err(error) => {
            findings.push(Finding::fail(
                Part::Source,
                "connection",
                format!("cannot connect to {url}: {}", error.describe()),
                "check source.url (host, port, database, user, password, sslmode) and pg_hba.conf",
            ));
            return;
        }
    };
    let server = match client
        .query_one(&sql::CHECK_SOURCE_SERVER.plain(), &[])
        .await
    {
        Ok(row) => row,
        Err(error) => {
            findings.push(Finding::fail(
                Part::Source,
                "catalog",
                crate::postgres::pg_message(&error),
                "the role must be able to read pg_roles and pg_settings",
            ));
            return;
        }
    };
    let role: String = server.get("role_name");
    let ssl: bool = server.get("ssl");
    findings.push(Finding::ok(
        Part::Source,
        "connection",
        format!(
            "{url} as {role}, PostgreSQL {}, {}",
            server.get::<_, String>("server_version"),
            if ssl { "TLS" } else { "no TLS" }
        ),
    ));
    findings.push(version_finding(
        &server.get::<_, String>("server_version_num"),
    ));
    findings.push(wal_level_finding(&server.get::<_, String>("wal_level")));
    findings.push(privilege_finding(&server, &role));
    findings.push(wal_keep_finding(
        &server.get::<_, String>("max_slot_wal_keep_size"),
    ));
    // The configured tables, `schema.*` entries expanded (once: both the
    // table checks and the publication's coverage need them).
    let tables = match catalog::table_names(&client, source).await {
        Ok(tables) => tables,
        Err(error) => {
            findings.push(Finding::fail(
                Part::Source,
                "tables",
                error.to_string(),
                "fix source.tables: entries are schema.table or schema.*",
            ));
            Vec::new()
        }
    };
    check_tables(&client, &tables, &role, source.keyless_tables, findings).await;
    check_publication(&client, config, &tables, &role, findings).await;
    let (max_slots, slots): (i32, i32) = (
        server.get("max_replication_slots"),
        server.get("replication_slots"),
    );
    check_slot(&client, config, max_slots, slots, findings).await;
}

/// The server version against the supported ones.
fn version_finding(version_num: &str) -> Finding {
    let fix = format!("upgrade the server to {SUPPORTED_SERVERS} (docs/postgres-versions.md)");
    match version::verdict(version_num) {
        Verdict::Supported(detail) => Finding::ok(Part::Source, "server version", detail),
        Verdict::Untested(detail) => Finding::warn(Part::Source, "server version", detail, fix),
        Verdict::Refused(detail) => Finding::fail(Part::Source, "server version", detail, fix),
    }
}

/// `wal_level`: logical decoding needs `logical`.
fn wal_level_finding(wal_level: &str) -> Finding {
    if wal_level == "logical" {
        Finding::ok(Part::Source, "wal_level", "logical")
    } else {
        Finding::fail(
            Part::Source,
            "wal_level",
            format!("{wal_level}: logical decoding needs logical"),
            "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL (RDS/Aurora: set rds.logical_replication = 1 in the parameter group and reboot)",
        )
    }
}

/// Whether the role may open a replication connection, and how.
fn privilege_finding(server: &tokio_postgres::Row, role: &str) -> Finding {
    let (superuser, replication, rds): (bool, bool, bool) = (
        server.get("superuser"),
        server.get("replication"),
        server.get("rds_replication"),
    );
    if superuser || replication || rds {
        let how = if superuser {
            "superuser (works, but a dedicated role with only REPLICATION is safer: docs/security.md)"
        } else if replication {
            "has REPLICATION"
        } else {
            "member of rds_replication"
        };
        Finding::ok(
            Part::Source,
            "replication privilege",
            format!("{role} {how}"),
        )
    } else {
        Finding::fail(
            Part::Source,
            "replication privilege",
            format!("{role} may not open a replication connection"),
            format!(
                "ALTER ROLE {} REPLICATION; (RDS/Aurora: GRANT rds_replication TO {})",
                sql::quote_ident(role),
                sql::quote_ident(role)
            ),
        )
    }
}

/// How a readable table is keyed: refused, keyed by every column (equal
/// rows collapse, the user said there are none), or keyed.
fn key_finding(
    check: String,
    qualified: &str,
    keyed: Result<SourceTable, crate::source::tables::TablesError>,
) -> Finding {
    use crate::source::tables::TablesError;
    match keyed {
        Ok(table) if table.key == KeyKind::AllColumns => Finding::warn(
            Part::Source,
            check,
            "readable, keyed by every column (no primary key; source.keyless_tables = \"distinct_rows\"): equal rows would be one mirror row",
            format!("ALTER TABLE {qualified} ADD PRIMARY KEY (...); (or keep its rows distinct)"),
        ),
        Ok(table) => Finding::ok(Part::Source, check, format!("readable, keyed by {}", table.key)),
        Err(error @ TablesError::Keyless { .. }) => Finding::fail(
            Part::Source,
            check,
            error.to_string(),
            format!("ALTER TABLE {qualified} ADD PRIMARY KEY (...); or set source.keyless_tables = \"distinct_rows\" if its rows are never equal"),
        ),
        Err(error) => Finding::fail(
            Part::Source,
            check,
            error.to_string(),
            format!("ALTER TABLE {qualified} ADD PRIMARY KEY (...); or CREATE UNIQUE INDEX ... and ALTER TABLE {qualified} REPLICA IDENTITY USING INDEX ...;"),
        ),
    }
}

/// `max_slot_wal_keep_size`: unlimited lets a stopped producer fill the disk.
fn wal_keep_finding(keep: &str) -> Finding {
    if keep == "-1" {
        Finding::warn(
            Part::Source,
            "max_slot_wal_keep_size",
            "-1: the slot keeps WAL without limit, a stopped producer lets pg_wal grow until the disk is full",
            "ALTER SYSTEM SET max_slot_wal_keep_size = '50GB'; SELECT pg_reload_conf(); (size it to the WAL of the longest outage you accept; past it the slot is invalidated and the tables need a re-sync)",
        )
    } else {
        Finding::ok(
            Part::Source,
            "max_slot_wal_keep_size",
            format!("{keep}: past it the slot is invalidated (docs/operations.md)"),
        )
    }
}

async fn check_tables(
    client: &Client,
    tables: &[TableName],
    role: &str,
    keyless: KeylessTables,
    findings: &mut Vec<Finding>,
) {
    let role = sql::quote_ident(role);
    let statement = sql::CHECK_SOURCE_TABLE.plain();
    for table in tables {
        let (schema, name) = (&table.schema, &table.name);
        let qualified = table.quoted();
        let check = format!("table {}", table.plain());
        let row = match client.query_opt(&statement, &[schema, name]).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                findings.push(Finding::fail(
                    Part::Source,
                    check,
                    "does not exist",
                    "create it, or remove it from source.tables",
                ));
                continue;
            }
            Err(error) => {
                findings.push(Finding::fail(
                    Part::Source,
                    check,
                    crate::postgres::pg_message(&error),
                    "see docs/security.md for the grants",
                ));
                continue;
            }
        };
        let (usage, select): (bool, bool) = (row.get("schema_usage"), row.get("can_select"));
        let keyed = crate::source::tables::describe(client, table).await;
        findings.push(if !usage || !select {
            Finding::fail(
                Part::Source,
                check,
                format!("{role} may not read it (the snapshot and the catalog need SELECT)"),
                format!(
                    "GRANT USAGE ON SCHEMA {} TO {role}; GRANT SELECT ON {qualified} TO {role};",
                    sql::quote_ident(schema)
                ),
            )
        } else {
            key_finding(
                check,
                &qualified,
                keyed.and_then(|(table, _)| crate::source::tables::admit(table, keyless)),
            )
        });
        findings.extend(
            version::generated_columns_warning(&row.get::<_, Vec<String>>("generated_columns"))
                .map(|(detail, fix)| {
                    Finding::warn(
                        Part::Source,
                        format!("table {schema}.{name} generated columns"),
                        detail,
                        fix,
                    )
                }),
        );
    }
}

async fn check_publication(
    client: &Client,
    config: &Config,
    wanted: &[TableName],
    role: &str,
    findings: &mut Vec<Finding>,
) {
    let source = &config.source;
    let publication = sql::quote_ident(&source.publication);
    let check = format!("publication {}", source.publication);
    let rows = match client
        .query(
            &sql::CHECK_SOURCE_PUBLICATION.plain(),
            &[&source.publication],
        )
        .await
    {
        Ok(rows) => rows,
        Err(error) => {
            findings.push(Finding::fail(
                Part::Source,
                check,
                crate::postgres::pg_message(&error),
                "the role must be able to read pg_publication",
            ));
            return;
        }
    };
    let Some(first) = rows.first() else {
        findings.push(Finding::warn(
            Part::Source,
            check,
            "does not exist yet: `kinesync produce` creates it, which needs the role to own every table",
            format!(
                "as the tables' owner: CREATE PUBLICATION {publication} FOR TABLE ... WITH (publish_via_partition_root = true); ALTER PUBLICATION {publication} OWNER TO {};",
                sql::quote_ident(role)
            ),
        ));
        return;
    };
    findings.push(coverage_finding(
        first,
        &rows,
        wanted,
        &check,
        role,
        &publication,
    ));
}

/// Whether the publication (its rows from check/source_publication.sql)
/// covers every wanted table, publishes every operation and is the role's.
fn coverage_finding(
    first: &tokio_postgres::Row,
    rows: &[tokio_postgres::Row],
    wanted: &[TableName],
    check: &str,
    role: &str,
    publication: &str,
) -> Finding {
    let owner: String = first.get("owner");
    let owned: bool = first.get("owned");
    let publishes_all: bool = first.get("publishes_all");
    let covered: Vec<TableName> = rows
        .iter()
        .filter_map(|r| {
            Some(TableName::from((
                r.get::<_, Option<String>>("table_schema")?,
                r.get::<_, Option<String>>("table_name")?,
            )))
        })
        .collect();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|t| !covered.contains(t))
        .map(TableName::quoted)
        .collect();
    if !missing.is_empty() {
        Finding::fail(
            Part::Source,
            check,
            format!("does not cover {}", missing.join(", ")),
            format!(
                "as the owner of the tables and the publication: ALTER PUBLICATION {publication} ADD TABLE {}; (existing rows need a re-sync: docs/operations.md)",
                missing.join(", ")
            ),
        )
    } else if !publishes_all {
        Finding::fail(
            Part::Source,
            check,
            "does not publish every operation (insert, update, delete, truncate)",
            format!("ALTER PUBLICATION {publication} SET (publish = 'insert, update, delete, truncate');"),
        )
    } else if !owned {
        Finding::warn(
            Part::Source,
            check,
            format!("owned by {owner}, not by {role}: the producer cannot record that its snapshot finished"),
            format!("ALTER PUBLICATION {publication} OWNER TO {};", sql::quote_ident(role)),
        )
    } else {
        Finding::ok(
            Part::Source,
            check,
            format!("covers all {} configured tables", wanted.len()),
        )
    }
}

async fn check_slot(
    client: &Client,
    config: &Config,
    max_slots: i32,
    slots: i32,
    findings: &mut Vec<Finding>,
) {
    let slot_name = &config.source.slot;
    let check = format!("slot {slot_name}");
    let row = match client
        .query_opt(&sql::CHECK_SOURCE_SLOT.plain(), &[slot_name])
        .await
    {
        Ok(row) => row,
        Err(error) => {
            findings.push(Finding::fail(
                Part::Source,
                check,
                crate::postgres::pg_message(&error),
                "the role must be able to read pg_replication_slots",
            ));
            return;
        }
    };
    let Some(row) = row else {
        findings.push(if slots >= max_slots {
            Finding::fail(
                Part::Source,
                check,
                format!("does not exist, and all {max_slots} replication slots are taken"),
                "drop an unused slot (SELECT pg_drop_replication_slot('...')) or raise max_replication_slots (restart needed)",
            )
        } else {
            Finding::ok(
                Part::Source,
                check,
                "does not exist yet: `kinesync produce` creates it and snapshots the tables",
            )
        });
        return;
    };
    let plugin: String = row.get("plugin");
    let this_database: bool = row.get::<_, Option<bool>>("this_database").unwrap_or(false);
    let wal_status: String = row.get("wal_status");
    let retained: i64 = row.get::<_, Option<i64>>("retained_bytes").unwrap_or(0);
    findings.push(if plugin != "pgoutput" || !this_database {
        Finding::fail(
            Part::Source,
            check,
            format!("exists but is not a pgoutput slot of this database (plugin {plugin})"),
            "set source.slot to another name, or drop it if it is unused: SELECT pg_drop_replication_slot('...')",
        )
    } else if wal_status == "lost" {
        Finding::fail(
            Part::Source,
            check,
            "invalidated: the WAL it needed was removed (max_slot_wal_keep_size), changes were lost",
            "re-sync: stop the producer, SELECT pg_drop_replication_slot(...), then follow docs/operations.md \"Re-syncing\"",
        )
    } else {
        Finding::ok(
            Part::Source,
            check,
            format!(
                "pgoutput, {}, retains {} MiB of WAL (wal_status {wal_status})",
                if row.get::<_, bool>("active") {
                    "in use by a producer"
                } else {
                    "idle"
                },
                retained / (1024 * 1024)
            ),
        )
    });
}

async fn check_kinesis(config: &Config, options: &CheckOptions, findings: &mut Vec<Finding>) {
    let writer = KinesisWriter::from_config(&config.kinesis).await;
    let stream = writer.stream_name().to_owned();
    let check = format!("stream {stream}");
    let summary = match writer.describe().await {
        Ok(summary) => summary,
        Err(error) => {
            findings.push(Finding::fail(
                Part::Kinesis,
                check,
                error.to_string(),
                describe_fix(&error, &stream),
            ));
            return;
        }
    };
    if summary.status != "ACTIVE" {
        findings.push(Finding::fail(
            Part::Kinesis,
            check,
            format!("is {}, not ACTIVE", summary.status),
            "wait until it is ACTIVE (aws kinesis describe-stream-summary)",
        ));
        return;
    }
    let capacity = u64::try_from(summary.open_shards).unwrap_or(0) * SHARD_RECORDS_PER_SECOND;
    let mode = if summary.on_demand {
        "on-demand".to_owned()
    } else {
        format!(
            "{} open shards (up to {capacity} events/s)",
            summary.open_shards
        )
    };
    findings.push(Finding::ok(
        Part::Kinesis,
        check.clone(),
        format!("ACTIVE, {mode}, retention {} h", summary.retention_hours),
    ));
    if let Some(expected) = options.expected_rate {
        findings.push(capacity_finding(&summary, expected, &mode, &stream));
    }
    if let Some(finding) = retention_finding(config, &summary) {
        findings.push(finding);
    }
    if options.no_write {
        findings.push(Finding::skipped(Part::Kinesis, "write", "--no-write"));
        return;
    }
    findings.push(write_probe(&writer, config, &stream).await);
}

/// Whether `expected` events/s fit the stream's shards (with headroom).
/// The merge daemon's idle check (schedule.skip_idle) can read the stream.
async fn stream_activity_finding(config: &Config) -> Finding {
    let activity = crate::scheduler::activity::StreamActivity::from_config(&config.kinesis).await;
    let since = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    let check = "idle check (schedule.skip_idle)";
    match activity.since(since).await {
        Ok(_) => Finding::ok(
            Part::Kinesis,
            check,
            "the merge daemon can ask the stream whether records arrived (ListShards, GetShardIterator, GetRecords)",
        ),
        Err(error) => Finding::warn(
            Part::Kinesis,
            check,
            error.problem(),
            format!(
                "{}; until then every tick runs the merge (and wakes Redshift): grant the scheduler kinesis:ListShards, kinesis:GetShardIterator, kinesis:GetRecords on the stream (and kms:Decrypt on its key), or set schedule.skip_idle = false",
                error.fix()
            ),
        ),
    }
}

fn capacity_finding(summary: &StreamSummary, expected: u64, mode: &str, stream: &str) -> Finding {
    let capacity = u64::try_from(summary.open_shards).unwrap_or(0) * SHARD_RECORDS_PER_SECOND;
    let needed = (expected as f64 / (SHARD_RECORDS_PER_SECOND as f64 * SHARD_HEADROOM)).ceil();
    if summary.on_demand || expected as f64 <= capacity as f64 * SHARD_HEADROOM {
        Finding::ok(
            Part::Kinesis,
            "shard capacity",
            format!("{expected} events/s expected fits {mode}"),
        )
    } else {
        Finding::fail(
            Part::Kinesis,
            "shard capacity",
            format!("{expected} events/s expected needs {needed} shards, the stream has {}", summary.open_shards),
            format!("aws kinesis update-shard-count --stream-name {stream} --target-shard-count {needed} --scaling-type UNIFORM_SCALING (or switch to on-demand)"),
        )
    }
}

/// A warning when the stream's retention is not `redshift.retention_hours`.
fn retention_finding(config: &Config, summary: &StreamSummary) -> Option<Finding> {
    let configured = config.redshift.as_ref()?.retention_hours;
    (i64::from(summary.retention_hours) != configured as i64).then(|| {
        Finding::warn(
            Part::Kinesis,
            "retention",
            format!(
                "the stream keeps records {} h, redshift.retention_hours says {configured} h (the merge warns by it)",
                summary.retention_hours
            ),
            format!("set redshift.retention_hours = {}", summary.retention_hours),
        )
    })
}

/// PutRecords of one probe record (a message event consumers skip).
async fn write_probe(writer: &KinesisWriter, config: &Config, stream: &str) -> Finding {
    let probe = OutRecord {
        seq: 0,
        partition_key: PROBE_PARTITION_KEY.to_owned(),
        data: probe_event(config).to_string().into_bytes(),
        ordered: true,
    };
    match writer.put_records(&[probe]).await {
        Ok(results) if results.iter().all(|r| *r == RecordResult::Accepted) => {
            Finding::ok(Part::Kinesis, "write", "PutRecords accepted a probe record")
        }
        Ok(results) => Finding::warn(
            Part::Kinesis,
            "write",
            format!("the probe record was not accepted: {results:?}"),
            "the stream is throttling: add shards or switch to on-demand",
        ),
        Err(error) => Finding::fail(
            Part::Kinesis,
            "write",
            error.to_string(),
            format!("allow kinesis:PutRecords on the stream {stream} for the producer's role (docs/security.md)"),
        ),
    }
}

/// The probe record: a Debezium-style message event (`op` = `"m"`), the
/// shape docs/events.md tells consumers to skip.
fn probe_event(config: &Config) -> serde_json::Value {
    let now = chrono::Utc::now();
    serde_json::json!({
        "before": null,
        "after": null,
        "op": "m",
        "ts_ms": now.timestamp_millis(),
        "source": {
            "version": env!("CARGO_PKG_VERSION"),
            "connector": "postgresql",
            "name": config.source.slot,
            "ts_ms": now.timestamp_millis(),
            "snapshot": "false",
            "db": null,
            "sequence": null,
            "schema": null,
            "table": null,
            "txId": null,
            "lsn": null,
            "commit_lsn": null,
            "xmin": null,
        },
        "message": {
            "prefix": PROBE_PARTITION_KEY,
            "content": format!("written by kinesync check at {}", now.to_rfc3339()),
        },
    })
}

/// The fix for a failed DescribeStreamSummary: create the stream only when
/// it is missing; otherwise what the AWS error says.
fn describe_fix(error: &SinkError, stream: &str) -> String {
    match error {
        SinkError::StreamNotFound { .. } => format!(
            "create it (aws kinesis create-stream --stream-name {stream} --stream-mode-details StreamMode=ON_DEMAND), or fix kinesis.stream and kinesis.region"
        ),
        SinkError::Aws(aws) => aws.fix(),
        _ => "check the network, AWS_ENDPOINT_URL_KINESIS and kinesis.region".to_owned(),
    }
}

/// The fix for a setup object that is missing.
const RUN_SETUP: &str = "run `kinesync setup` (docs/redshift.md)";

/// The fix for a failed Data API call: the permissions of the
/// authentication in use, and the configured target.
fn data_api_fix(redshift: &RedshiftConfig) -> String {
    format!(
        "allow redshift-data:ExecuteStatement, DescribeStatement, GetStatementResult, BatchExecuteStatement and {} for the scheduler's role; check redshift.{} and database {}",
        if redshift.workgroup.is_some() { "redshift-serverless:GetCredentials" } else if redshift.secret_arn.is_some() { "secretsmanager:GetSecretValue on the secret" } else { "redshift:GetClusterCredentials" },
        if redshift.workgroup.is_some() { "workgroup" } else { "cluster_id" },
        redshift.database
    )
}

async fn check_redshift(
    config: &Config,
    redshift: &RedshiftConfig,
    shutdown: Shutdown,
    findings: &mut Vec<Finding>,
) {
    let objects = Objects::new(config, redshift);
    let api = DataApi::connect(redshift, shutdown).await;
    let target = redshift
        .workgroup
        .as_ref()
        .map(|w| format!("workgroup {w}"))
        .or_else(|| redshift.cluster_id.as_ref().map(|c| format!("cluster {c}")))
        .unwrap_or_default();
    let values = redshift_values(redshift, &objects);
    let statements = match sql::CHECK_REDSHIFT_OBJECTS.render(&values) {
        Ok(statements) => statements,
        Err(error) => {
            tracing::error!(%error, "template");
            return;
        }
    };
    let counts = match object_counts(&api, &statements).await {
        Ok(counts) => counts,
        Err(error) => {
            findings.push(Finding::fail(
                Part::Redshift,
                "Data API",
                error.to_string(),
                data_api_fix(redshift),
            ));
            return;
        }
    };
    findings.push(Finding::ok(
        Part::Redshift,
        "Data API",
        format!("{target}, database {}", redshift.database),
    ));
    let count = |i: usize| counts.get(i).copied().unwrap_or(0);
    for (i, what) in [
        (0, format!("external schema {}", redshift.external_schema)),
        (
            1,
            format!(
                "events view {}.{}",
                redshift.mirror_schema, redshift.events_view
            ),
        ),
        (
            2,
            format!("checkpoint {}.kinesync_checkpoint", redshift.mirror_schema),
        ),
    ] {
        findings.push(if count(i) > 0 {
            Finding::ok(Part::Redshift, what, "present")
        } else {
            Finding::todo(Part::Redshift, what, "to do: run setup", RUN_SETUP)
        });
    }
    if count(2) == 0 {
        return;
    }
    check_checkpoint(&api, redshift, &values, findings).await;
}

/// The checkpoint's last merge against the stream's retention.
async fn check_checkpoint(
    api: &DataApi,
    redshift: &RedshiftConfig,
    values: &Values,
    findings: &mut Vec<Finding>,
) {
    let checkpoint = match render(sql::CHECK_REDSHIFT_CHECKPOINT, values) {
        Some(statement) => api.query(&statement).await,
        None => return,
    };
    let row = match checkpoint {
        Ok(rows) => rows.into_iter().next(),
        Err(error) => {
            findings.push(Finding::fail(
                Part::Redshift,
                "checkpoint",
                error.to_string(),
                "grant the merge user SELECT on the mirror schema's tables (docs/security.md)",
            ));
            return;
        }
    };
    let text = |column: &str| row.as_ref().and_then(|r| r.text(column));
    let (Some(merged_at), Some(now)) = (text("merged_at"), text("now")) else {
        findings.push(Finding::todo(
            Part::Redshift,
            "checkpoint",
            format!(
                "to do: run setup (no row for events view {})",
                redshift.events_view
            ),
            RUN_SETUP,
        ));
        return;
    };
    if text("watermark")
        .as_deref()
        .is_some_and(|w| w.starts_with("1900-01-01"))
    {
        findings.push(Finding::ok(
            Part::Redshift,
            "checkpoint",
            "no merge yet: the first `kinesync merge` starts from the beginning of the stream",
        ));
        return;
    }
    findings.push(retention_margin_finding(redshift, &merged_at, &now));
}

/// How long ago the last merge was, against the retention (and its warning fraction).
fn retention_margin_finding(redshift: &RedshiftConfig, merged_at: &str, now: &str) -> Finding {
    let age = seconds_between(merged_at, now).unwrap_or(0);
    let retention = redshift.retention_hours as i64 * 3600;
    let detail = format!(
        "last merge {} ago ({merged_at}), retention margin {}",
        human_duration(age),
        human_duration((retention - age).max(0))
    );
    if age >= retention {
        Finding::fail(
            Part::Redshift,
            "retention margin",
            format!("{detail}: events older than the stream's retention may have expired unmerged"),
            "check for lost events and re-sync the affected tables: docs/operations.md \"Retention\"",
        )
    } else if age as f64 >= retention as f64 * redshift.retention_warn_fraction {
        Finding::warn(
            Part::Redshift,
            "retention margin",
            detail,
            "make sure `kinesync merge` runs (its schedule, its logs): events expire from the stream after the retention",
        )
    } else {
        Finding::ok(Part::Redshift, "retention margin", detail)
    }
}

/// The one count each statement of check/redshift_objects.sql returns.
async fn object_counts(
    api: &DataApi,
    statements: &[String],
) -> Result<Vec<i64>, crate::redshift::RedshiftError> {
    let mut counts = Vec::with_capacity(statements.len());
    for statement in statements {
        let rows = api.query(statement).await?;
        counts.push(
            rows.first()
                .and_then(|r| r.values().first())
                .and_then(Value::as_i64)
                .unwrap_or(0),
        );
    }
    Ok(counts)
}

/// Literal values of the Redshift-side check and status templates. Names are
/// compared as Redshift stores them (ASCII letters folded, r_names).
pub(crate) fn redshift_values(redshift: &RedshiftConfig, objects: &Objects) -> Values {
    Values::from([
        (
            "external_schema_literal",
            quote_literal(&redshift_name(&redshift.external_schema)),
        ),
        (
            "mirror_schema_literal",
            quote_literal(&redshift_name(&redshift.mirror_schema)),
        ),
        (
            "events_view_name_literal",
            quote_literal(&redshift_name(&redshift.events_view)),
        ),
        ("events_view_literal", quote_literal(&redshift.events_view)),
        ("checkpoint", objects.checkpoint.clone()),
    ])
}

/// A one-statement template, rendered; `None` (logged) on a template bug.
pub(crate) fn render(template: Template, values: &Values) -> Option<String> {
    match template.render_one(values) {
        Ok(statement) => Some(statement),
        Err(error) => {
            tracing::error!(%error, "template");
            None
        }
    }
}
