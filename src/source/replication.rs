//! Connections to Postgres and the administration around the slot:
//! `wal_level`, the publication (created `FOR TABLE …`, extended with tables
//! it lacks), the slot and its snapshot marker, and opening the replication
//! stream. Every identifier reaching SQL is quoted.

use std::collections::HashSet;
use std::time::Duration;

use pgwire_replication::{ReplicationClient, ReplicationConfig};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use super::error::SourceError;
use super::relation_cache::Relation;
use super::version::{ServerVersion, VERSION_QUERY};
use super::{quote_ident, quote_literal};
use crate::config::SourceConfig;
use crate::lsn::Lsn;
use crate::postgres::{redact_url, SESSION_SETTINGS};
use crate::sql::TableName;

/// Standby status updates at least this often (the server's default
/// `wal_sender_timeout` is 60 s; feedback must come well inside half of it).
/// Every second: the slot's confirmed LSN trails delivery by at most this,
/// and a graceful stop waits at most this long for the server to hear it.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// Events buffered between the replication worker and the pipeline.
pub const REPLICATION_BUFFER_EVENTS: usize = 8192;
/// Prefix of the publication comment that marks a finished snapshot.
pub const SNAPSHOT_DONE_MARKER: &str = "kinesync: snapshot complete";
/// Publication comment while a snapshot is being taken: if a start finds it,
/// an earlier snapshot was cut short and may have sent rows since deleted.
pub const SNAPSHOT_STARTED_MARKER: &str = "kinesync: snapshot started";
/// Publication comment for a slot created without a snapshot (`snapshot = never`).
pub const SNAPSHOT_SKIPPED_MARKER: &str = "kinesync: snapshot skipped";
/// `application_name` of our sessions (visible in pg_stat_activity).
pub const APPLICATION_NAME: &str = "kinesync";
pub use super::version::SUPPORTED_SERVERS;

/// Which slot a run reads, and what it may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotUse {
    /// The configured slot, created now with its first snapshot.
    Fresh,
    /// The configured slot, created again: an earlier snapshot was cut short.
    Redo,
    /// A temporary slot of its own (`produce --sink stdout`): gone with the
    /// session; no snapshot marker is written, nothing of the configured
    /// slot is read or confirmed.
    Temporary,
}

/// The name of the temporary slot of a `--sink stdout` run of this process
/// (at most 63 bytes, as PostgreSQL requires).
pub fn temporary_slot_name(slot: &str) -> String {
    let base: String = slot.chars().take(40).collect();
    format!("{base}_stdout_{}", std::process::id())
}

/// An ordinary SQL session with kinesync's pinned settings. The connection
/// task logs its end at debug level.
pub async fn connect_sql(url: &str) -> Result<Client, SourceError> {
    let mut source = parse_url(url)?;
    source.config.application_name(APPLICATION_NAME);
    let client = source.connect().await.map_err(|e| match e {
        crate::postgres::ConnectError::Url(e) => SourceError::Tls {
            detail: e.to_string(),
        },
        crate::postgres::ConnectError::Postgres(e) => SourceError::from_pg_connect(url, &e),
    })?;
    let settings: String = SESSION_SETTINGS
        .iter()
        .map(|(k, v)| format!("SET {k} = {};", quote_literal(v)))
        .collect();
    client
        .batch_execute(&settings)
        .await
        .map_err(|e| SourceError::sql("pinning session settings", &e))?;
    Ok(client)
}

/// The source URL with libpq's TLS settings (see crate::postgres).
fn parse_url(url: &str) -> Result<crate::postgres::SourceUrl, SourceError> {
    crate::postgres::SourceUrl::parse(url).map_err(|e| match e {
        crate::postgres::UrlError::Invalid { .. } => SourceError::InvalidSourceUrl {
            url: redact_url(url),
        },
        other => SourceError::Tls {
            detail: other.to_string(),
        },
    })
}

/// The database name the URL connects to (`source.db` of events).
pub fn database_name(url: &str) -> Result<String, SourceError> {
    let config = parse_url(url)?.config;
    Ok(config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres")
        .to_owned())
}

/// A pgwire-replication config for `source`'s URL, slot and publication.
pub fn replication_config(source: &SourceConfig) -> Result<ReplicationConfig, SourceError> {
    let invalid = || SourceError::InvalidSourceUrl {
        url: redact_url(&source.url),
    };
    let parsed = parse_url(&source.url)?;
    let pg = parsed.config.clone();
    let user = pg.get_user().ok_or_else(invalid)?.to_owned();
    let password = pg
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let database = database_name(&source.url)?;
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    let options: String = SESSION_SETTINGS
        .iter()
        .map(|(k, v)| format!("-c {k}={v} "))
        .collect();
    let (slot, publication) = (source.slot.clone(), source.publication.clone());
    let tcp = |host: String| {
        ReplicationConfig::new(
            host,
            user.clone(),
            password.clone(),
            database.clone(),
            slot.clone(),
            publication.clone(),
        )
        .with_port(port)
    };
    let base = match pg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => tcp(host.clone()),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(path)) => ReplicationConfig::unix(
            path.to_string_lossy().into_owned(),
            port,
            user,
            password,
            database,
            slot,
            publication,
        ),
        _ => tcp("localhost".to_owned()),
    };
    let tls = parsed.replication_tls();
    Ok(base
        .with_tls(tls)
        .with_options(options.trim_end())
        .with_application_name(APPLICATION_NAME)
        .with_status_interval(STATUS_INTERVAL)
        .with_wakeup_interval(STATUS_INTERVAL)
        .with_buffer_size(REPLICATION_BUFFER_EVENTS))
}

/// Stop unless the server's version is supported; returns the version as
/// [`ServerVersion`] displays it (`13.23`).
pub async fn check_server_version(client: &Client) -> Result<String, SourceError> {
    let row = client
        .query_one(VERSION_QUERY, &[])
        .await
        .map_err(|e| SourceError::sql("reading server_version_num", &e))?;
    let num: String = row.get(0);
    let version = parse_version(&num)?;
    version
        .supported()
        .map_err(|e| SourceError::UnsupportedServer { version: e.version })?;
    Ok(version.to_string())
}

/// The version a `server_version_num` answer names.
fn parse_version(num: &str) -> Result<ServerVersion, SourceError> {
    ServerVersion::parse(num).ok_or_else(|| SourceError::UnsupportedServer {
        version: format!("with server_version_num {num:?}"),
    })
}

/// A gated session (START_REPLICATION not sent yet) on `config`'s server,
/// and the server's version; the session asks pgoutput for logical messages
/// only if the server knows that option (it takes a second session on 13,
/// whose START_REPLICATION would fail with it).
async fn gated_session(
    config: ReplicationConfig,
) -> Result<(ReplicationClient, ServerVersion), SourceError> {
    let names = config.clone();
    let fallback = config.clone();
    let mut client = ReplicationClient::connect_gated(config)
        .await
        .map_err(|e| SourceError::from_replication(&names, e))?;
    let rows = client
        .simple_query(VERSION_QUERY)
        .await
        .map_err(|e| SourceError::from_replication(&names, e))?;
    let num = rows
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let version = parse_version(&num)?;
    if version.logical_messages() || !fallback.logical_messages {
        return Ok((client, version));
    }
    drop(client);
    let client = ReplicationClient::connect_gated(fallback.with_logical_messages(false))
        .await
        .map_err(|e| SourceError::from_replication(&names, e))?;
    Ok((client, version))
}

/// The first row (if any) of a catalog query; a failure says it was `what`.
async fn catalog_row(
    client: &Client,
    what: &str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, SourceError> {
    Ok(catalog_rows(client, what, sql, params)
        .await?
        .into_iter()
        .next())
}

/// The rows of a catalog query; a failure says it was `what`.
async fn catalog_rows(
    client: &Client,
    what: &str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, SourceError> {
    client
        .query(sql, params)
        .await
        .map_err(|e| SourceError::sql(what, &e))
}

/// Stop unless `wal_level = logical`.
pub async fn check_wal_level(client: &Client) -> Result<(), SourceError> {
    let row = client
        .query_one("SHOW wal_level", &[])
        .await
        .map_err(|e| SourceError::sql("reading wal_level", &e))?;
    let level: String = row.get(0);
    if level != "logical" {
        return Err(SourceError::WalLevelNotLogical { current: level });
    }
    Ok(())
}

/// Whether `publication` exists.
pub async fn publication_exists(client: &Client, publication: &str) -> Result<bool, SourceError> {
    let row = catalog_row(
        client,
        "reading pg_publication",
        "SELECT 1 FROM pg_publication WHERE pubname = $1",
        &[&publication],
    )
    .await?;
    Ok(row.is_some())
}

/// Create the publication for `tables` if missing, or add the tables it
/// lacks. Returns the tables that were added to an existing publication
/// (their existing rows are not in an earlier snapshot).
pub async fn ensure_publication(
    client: &Client,
    publication: &str,
    tables: &[Relation],
) -> Result<Vec<String>, SourceError> {
    let existing = catalog_row(
        client,
        "reading pg_publication",
        "SELECT puballtables FROM pg_publication WHERE pubname = $1",
        &[&publication],
    )
    .await?;
    let name = quote_ident(publication);
    let generated = publishes_generated_columns(client).await?;
    let Some(existing) = existing else {
        let all: Vec<&Relation> = tables.iter().collect();
        let create = format!("CREATE PUBLICATION {name} FOR TABLE");
        let with = match generated {
            true => " WITH (publish_via_partition_root = true, publish_generated_columns = stored)",
            false => " WITH (publish_via_partition_root = true)",
        };
        publication_ddl(client, &create, &all, with)
            .await
            .map_err(|detail| SourceError::PublicationSetup {
                publication: publication.to_owned(),
                detail,
            })?;
        tracing::info!(publication, tables = tables.len(), "created publication");
        return Ok(Vec::new());
    };
    if generated {
        publish_stored_generated_columns(client, publication).await?;
    }
    if existing.get::<_, bool>(0) {
        return Ok(Vec::new());
    }
    let published = published_tables(client, publication).await?;
    let missing: Vec<&Relation> = tables
        .iter()
        .filter(|t| !published.contains(&TableName::new(&t.schema, &t.name)))
        .collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let alter = format!("ALTER PUBLICATION {name} ADD TABLE");
    publication_ddl(client, &alter, &missing, "")
        .await
        .map_err(|detail| SourceError::PublicationMissingTable {
            publication: publication.to_owned(),
            table: missing[0].qualified_name(),
            detail,
        })?;
    let added: Vec<String> = missing.iter().map(|t| t.qualified_name()).collect();
    tracing::info!(publication, ?added, "added tables to publication");
    Ok(added)
}

/// Whether the server publishes stored generated columns when asked
/// (`publish_generated_columns`, PostgreSQL 18 and later).
async fn publishes_generated_columns(client: &Client) -> Result<bool, SourceError> {
    let row = client
        .query_one(VERSION_QUERY, &[])
        .await
        .map_err(|e| SourceError::sql("reading server_version_num", &e))?;
    Ok(parse_version(&row.get::<_, String>(0))?.publishes_generated_columns())
}

/// On 18 and later, an existing publication is made to publish stored
/// generated columns (the catalog resolver lists them, src/source/tables.rs,
/// so the Relation messages must carry them too).
async fn publish_stored_generated_columns(
    client: &Client,
    publication: &str,
) -> Result<(), SourceError> {
    let row = catalog_row(
        client,
        "reading pg_publication",
        "SELECT pubgencols::text FROM pg_publication WHERE pubname = $1",
        &[&publication],
    )
    .await?;
    if row.is_none_or(|r| r.get::<_, String>(0) == "s") {
        return Ok(());
    }
    let sql = format!(
        "ALTER PUBLICATION {} SET (publish_generated_columns = stored)",
        quote_ident(publication)
    );
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| SourceError::PublicationSetup {
            publication: publication.to_owned(),
            detail: format!(
                "{} (on PostgreSQL 18 kinesync publishes stored generated columns: have the publication's owner run {sql})",
                pg_message(&e)
            ),
        })?;
    tracing::info!(
        publication,
        "publication now publishes stored generated columns"
    );
    Ok(())
}

/// `{head} <the tables, quoted>{tail}`; a failure is the server's message.
async fn publication_ddl(
    client: &Client,
    head: &str,
    tables: &[&Relation],
    tail: &str,
) -> Result<(), String> {
    let list: Vec<String> = tables
        .iter()
        .map(|t| format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name)))
        .collect();
    let sql = format!("{head} {}{tail}", list.join(", "));
    client.batch_execute(&sql).await.map_err(|e| pg_message(&e))
}

/// Stops publishing `tables` (removed from `source.tables`), those of them
/// `publication` lists; a `FOR ALL TABLES` publication is left as it is.
/// Returns the tables dropped from it.
pub async fn retire_from_publication(
    client: &Client,
    publication: &str,
    tables: &[TableName],
) -> Result<Vec<TableName>, SourceError> {
    let published = published_tables(client, publication).await?;
    let listed: Vec<&TableName> = tables.iter().filter(|t| published.contains(t)).collect();
    let all_tables = catalog_row(
        client,
        "reading pg_publication",
        "SELECT puballtables FROM pg_publication WHERE pubname = $1",
        &[&publication],
    )
    .await?
    .is_some_and(|row| row.get::<_, bool>(0));
    if listed.is_empty() || all_tables {
        return Ok(Vec::new());
    }
    let list: Vec<String> = listed.iter().map(|t| t.quoted()).collect();
    let sql = format!(
        "ALTER PUBLICATION {} DROP TABLE {}",
        quote_ident(publication),
        list.join(", ")
    );
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| SourceError::PublicationSetup {
            publication: publication.to_owned(),
            detail: pg_message(&e),
        })?;
    Ok(listed.into_iter().cloned().collect())
}

/// Every table `publication` publishes (all of them for `FOR ALL TABLES`).
pub async fn published_tables(
    client: &Client,
    publication: &str,
) -> Result<HashSet<TableName>, SourceError> {
    let rows = catalog_rows(
        client,
        "reading pg_publication_tables",
        "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
        &[&publication],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| TableName::from((r.get(0), r.get(1))))
        .collect())
}

/// What `pg_replication_slots` says about our slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    pub plugin: Option<String>,
    pub database: Option<String>,
    pub active_pid: Option<i32>,
    pub confirmed_flush: Lsn,
}

pub async fn slot_info(client: &Client, slot: &str) -> Result<Option<SlotInfo>, SourceError> {
    let row = catalog_row(
        client,
        "reading pg_replication_slots",
        "SELECT plugin::text, database::text, active_pid, confirmed_flush_lsn::text \
             FROM pg_replication_slots WHERE slot_name = $1",
        &[&slot],
    )
    .await?;
    Ok(row.map(|r| SlotInfo {
        plugin: r.get(0),
        database: r.get(1),
        active_pid: r.get(2),
        confirmed_flush: r
            .get::<_, Option<String>>(3)
            .and_then(|s| s.parse().ok())
            .unwrap_or_default(),
    }))
}

/// Drop the slot (used to redo a snapshot that was cut short).
pub async fn drop_slot(client: &Client, slot: &str) -> Result<(), SourceError> {
    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .map_err(|e| {
            SourceError::sql(
                "dropping the replication slot of an unfinished snapshot",
                &e,
            )
        })?;
    Ok(())
}

/// The publication's comment (our snapshot marker), if any.
pub async fn snapshot_marker(
    client: &Client,
    publication: &str,
) -> Result<Option<String>, SourceError> {
    let row = catalog_row(client, "reading the snapshot marker", "SELECT obj_description(p.oid, 'pg_publication') FROM pg_publication p WHERE p.pubname = $1", &[&publication]).await?;
    Ok(row.and_then(|r| r.get::<_, Option<String>>(0)))
}

/// Whether `marker` says the slot `slot` is ready to stream.
pub fn marker_says_ready(marker: Option<&str>, slot: &str) -> bool {
    marker.is_some_and(|m| {
        (m.starts_with(SNAPSHOT_DONE_MARKER) || m.starts_with(SNAPSHOT_SKIPPED_MARKER))
            && m.contains(&format!("slot {slot};"))
    })
}

/// Write (or with `None`, clear) the snapshot marker.
pub async fn set_snapshot_marker(
    client: &Client,
    publication: &str,
    marker: Option<&str>,
) -> Result<(), SourceError> {
    let sql = format!(
        "COMMENT ON PUBLICATION {} IS {}",
        quote_ident(publication),
        marker.map_or_else(|| "NULL".to_owned(), quote_literal)
    );
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| SourceError::sql("writing the snapshot marker", &e))
}

/// Whether `marker` says a snapshot for `slot` was started and not finished.
pub fn marker_says_started(marker: Option<&str>, slot: &str) -> bool {
    marker.is_some_and(|m| {
        m.starts_with(SNAPSHOT_STARTED_MARKER) && m.contains(&format!("slot {slot};"))
    })
}

pub fn started_marker(slot: &str) -> String {
    format!(
        "{SNAPSHOT_STARTED_MARKER} (slot {slot}; not finished). Do not edit: kinesync reads this."
    )
}

pub fn done_marker(slot: &str, consistent_point: Lsn) -> String {
    format!("{SNAPSHOT_DONE_MARKER} (slot {slot}; consistent point {consistent_point}). Do not edit: kinesync reads this.")
}

pub fn skipped_marker(slot: &str) -> String {
    format!("{SNAPSHOT_SKIPPED_MARKER} (slot {slot}; snapshot = never). Do not edit: kinesync reads this.")
}

/// Open the replication stream on an existing slot, from its confirmed
/// position, reporting `ack` as flushed until the pipeline confirms more.
pub async fn start_stream(
    config: ReplicationConfig,
    ack: Lsn,
) -> Result<ReplicationClient, SourceError> {
    let names = config.clone();
    let config = config
        .with_start_lsn(pgwire_replication::Lsn::ZERO)
        .with_ack_lsn(ack.into());
    let (mut client, _) = gated_session(config).await?;
    client
        .start()
        .await
        .map_err(|e| SourceError::from_replication(&names, e))?;
    client
        .wait_started()
        .await
        .map_err(|e| SourceError::from_replication(&names, e))?;
    Ok(client)
}

/// Create `config`'s slot on a gated session (START_REPLICATION not sent
/// yet), in the server version's syntax (src/source/version.rs), exporting a snapshot or not, temporary (gone with the session) or
/// not. Returns the session and the server's answer (see
/// [`consistent_point`]; the snapshot name is the third column).
pub async fn create_slot(
    config: ReplicationConfig,
    temporary: bool,
    export_snapshot: bool,
) -> Result<(ReplicationClient, Vec<pgwire_replication::QueryRow>), SourceError> {
    let slot = config.slot.clone();
    let names = config.clone();
    let (mut client, version) = gated_session(config).await?;
    let command = version.create_slot_command(&quote_ident(&slot), temporary, export_snapshot);
    let rows = client
        .simple_query(&command)
        .await
        .map_err(|e| SourceError::from_replication(&names, e))?;
    Ok((client, rows))
}

/// Create the slot without a snapshot (`snapshot = never`); returns the
/// still gated session and the slot's consistent point.
pub async fn create_slot_without_snapshot(
    config: ReplicationConfig,
    temporary: bool,
) -> Result<(ReplicationClient, Lsn), SourceError> {
    let (client, rows) = create_slot(config, temporary, false).await?;
    Ok((client, consistent_point(&rows)?))
}

/// The consistent point (second column) of a CREATE_REPLICATION_SLOT answer.
pub fn consistent_point(rows: &[pgwire_replication::QueryRow]) -> Result<Lsn, SourceError> {
    rows.first()
        .and_then(|r| r.get(1).cloned().flatten())
        .and_then(|b| String::from_utf8_lossy(&b).parse().ok())
        .ok_or_else(|| SourceError::Snapshot {
            detail: "CREATE_REPLICATION_SLOT returned no consistent point".into(),
        })
}

/// Kept at its old path for callers not yet moved to [`crate::postgres::pg_message`].
pub use crate::postgres::pg_message;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trip() {
        assert!(marker_says_ready(
            Some(&done_marker("kinesync", Lsn(42))),
            "kinesync"
        ));
        assert!(marker_says_ready(
            Some(&skipped_marker("kinesync")),
            "kinesync"
        ));
        assert!(!marker_says_ready(
            Some(&done_marker("other", Lsn(42))),
            "kinesync"
        ));
        assert!(!marker_says_ready(Some("hand-written comment"), "kinesync"));
        assert!(!marker_says_ready(None, "kinesync"));
        assert!(!marker_says_ready(
            Some(&started_marker("kinesync")),
            "kinesync"
        ));
        assert!(marker_says_started(
            Some(&started_marker("kinesync")),
            "kinesync"
        ));
        assert!(!marker_says_started(
            Some(&started_marker("other")),
            "kinesync"
        ));
    }

    #[test]
    fn temporary_slot_names_fit_postgres_limit() {
        let name = temporary_slot_name(&"s".repeat(63));
        assert!(name.len() <= 63, "{name}");
        assert!(
            name.starts_with("sss") && name.contains("_stdout_"),
            "{name}"
        );
    }

    #[test]
    fn replication_config_from_url() {
        let source = SourceConfig {
            url: "postgres://rep:s3cret@db.example:6543/app?sslmode=require".into(),
            tables: vec!["public.t".into()],
            publication: "kinesync".into(),
            slot: "kinesync".into(),
            snapshot: Default::default(),
            heartbeat_interval_secs: 10,
            keyless_tables: Default::default(),
            resync_table: "public.kinesync_resync".into(),
            resync_chunk_rows: 2048,
        };
        let cfg = replication_config(&source).unwrap();
        assert_eq!(
            (
                cfg.host.as_str(),
                cfg.port,
                cfg.user.as_str(),
                cfg.database.as_str()
            ),
            ("db.example", 6543, "rep", "app")
        );
        assert_eq!(cfg.password, "s3cret");
        assert_eq!(cfg.tls.mode, pgwire_replication::SslMode::Require);
        assert!(cfg
            .options
            .as_deref()
            .unwrap_or("")
            .contains("-c timezone=UTC"));
    }
}
