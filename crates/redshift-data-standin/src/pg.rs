//! PostgreSQL connections: one fresh connection per statement (or batch) to
//! the database the request's `Database` names, on the server given by
//! `--postgres-url`. Creates the database if missing and installs the
//! `kinesync_standin` catalog into it once per process.

use std::collections::HashSet;
use std::str::FromStr;

use tokio_postgres::{Client, Config, NoTls};
use tracing::{debug, info};

use crate::catalog;

/// Errors connecting or preparing a database.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("invalid --postgres-url: {0}")]
    Url(String),
    #[error("invalid database name {0:?}")]
    DatabaseName(String),
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
}

/// Connection factory for one PostgreSQL server.
pub struct Pg {
    base: Config,
    base_db: String,
    ready: tokio::sync::Mutex<HashSet<String>>,
}

impl Pg {
    /// Parses `url` (`postgres://user@host:port/db` or key=value form).
    pub fn new(url: &str) -> Result<Self, PgError> {
        let base = Config::from_str(url).map_err(|e| PgError::Url(e.to_string()))?;
        let base_db = base
            .get_dbname()
            .map(str::to_string)
            .unwrap_or_else(|| "postgres".to_string());
        Ok(Pg {
            base,
            base_db,
            ready: tokio::sync::Mutex::new(HashSet::new()),
        })
    }

    async fn raw_connect(&self, database: &str) -> Result<Client, PgError> {
        let mut cfg = self.base.clone();
        cfg.dbname(database);
        cfg.application_name("redshift-data-standin");
        let (client, conn) = cfg.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(error = %e, "postgres connection ended with error");
            }
        });
        Ok(client)
    }

    /// Connects to `database`, creating it and installing the catalog first if needed.
    pub async fn connect(&self, database: &str) -> Result<Client, PgError> {
        if database.is_empty() || database.len() > 127 || database.contains('\0') {
            return Err(PgError::DatabaseName(database.to_string()));
        }
        if self.ready.lock().await.contains(database) {
            // The database may have been dropped and created again since it
            // was prepared (tests do that): check that the catalog is there.
            if let Ok(client) = self.raw_connect(database).await {
                let installed = client
                    .query_one(
                        "SELECT to_regclass('kinesync_standin.external_schemas') IS NOT NULL",
                        &[],
                    )
                    .await
                    .map(|row| row.get::<_, bool>(0))
                    .unwrap_or(false);
                if installed {
                    return Ok(client);
                }
            }
        }
        let mut ready = self.ready.lock().await;
        ready.remove(database);
        self.ensure_database(database).await?;
        let mut client = self.raw_connect(database).await?;
        catalog::install(&mut client).await?;
        ready.insert(database.to_string());
        info!(database, "database ready");
        drop(ready);
        self.raw_connect(database).await
    }

    async fn ensure_database(&self, database: &str) -> Result<(), PgError> {
        if database == self.base_db {
            return Ok(());
        }
        let admin = self.raw_connect(&self.base_db).await?;
        let exists = admin
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
            .await?
            .is_some();
        if !exists {
            let sql = format!("CREATE DATABASE {}", crate::rewrite::quote_ident(database));
            match admin.batch_execute(&sql).await {
                Ok(()) => info!(database, "created database"),
                Err(e)
                    if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
