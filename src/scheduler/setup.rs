//! `kinesync setup`: creates (idempotently) the external schema, the
//! streaming view, the bookkeeping tables and one mirror table per source
//! table. `--print` shows the SQL instead of running it.

use crate::catalog;
use crate::config::Config;
use crate::postgres::redact_url;
use crate::redshift::DataApi;
use crate::shutdown::Shutdown;

use super::plan::{self, MirrorTable, Objects};
use super::SchedulerError;

/// Runs (or, with `print`, prints) the setup statements. Returns them.
pub async fn setup(
    config: &Config,
    print: bool,
    shutdown: Shutdown,
) -> Result<Vec<String>, SchedulerError> {
    let redshift = config
        .redshift
        .as_ref()
        .ok_or(SchedulerError::NoRedshiftConfig)?;
    let objects = Objects::new(config, redshift);
    let tables: Vec<MirrorTable> = read_mirror_tables(config).await?;
    let mut statements = plan::setup_statements(&objects, &tables)?;
    statements.extend(super::shapes::setup_shapes_statements(&objects, &tables)?);
    let view = plan::events_view_statements(&objects)?;
    if print {
        for statement in statements.iter().chain(view.iter()) {
            println!("{statement};\n");
        }
        return Ok(statements.into_iter().chain(view).collect());
    }
    let api = DataApi::connect(redshift, shutdown).await;
    for statement in &statements {
        api.execute(statement).await?;
    }
    let exists = api
        .query(&plan::events_view_exists_statement(&objects, redshift)?)
        .await?;
    if exists.is_empty() {
        for statement in &view {
            api.execute(statement).await?;
        }
        tracing::info!(view = %objects.events_view, "created the streaming view");
    } else {
        tracing::info!(view = %objects.events_view, "the streaming view exists");
    }
    tracing::info!(tables = tables.len(), "setup complete");
    Ok(statements.into_iter().chain(view).collect())
}

/// Reads the source catalog and maps each configured table to its mirror.
pub(crate) async fn read_mirror_tables(
    config: &Config,
) -> Result<Vec<MirrorTable>, SchedulerError> {
    let client = catalog::connect(&config.source.url).await.map_err(|e| {
        SchedulerError::SourceConnect(format!(
            "{}: {}",
            redact_url(&config.source.url),
            e.describe()
        ))
    })?;
    let tables = crate::source::tables::resolve(
        &client,
        &config.source.tables,
        config.source.keyless_tables,
    )
    .await?;
    let tables: Vec<MirrorTable> = tables.into_iter().map(MirrorTable::new).collect();
    plan::check_mirror_names(&tables)?;
    Ok(tables)
}
