//! The heartbeat: a transactional logical message every
//! `source.heartbeat_interval_secs`, on a session of its own.
//!
//! A slot is confirmed only at commits. When the published tables are quiet
//! nothing commits for us, the slot would hold WAL forever and the server
//! could not finish a fast shutdown; the heartbeat's commit (prefix
//! [`HEARTBEAT_PREFIX`], ignored by the streaming loop) gives the loop
//! something to confirm. Failures only log: the next tick reconnects.

use std::time::Duration;

use super::HEARTBEAT_PREFIX;
use crate::shutdown::Shutdown;
use crate::source::replication::connect_sql;

/// Every `interval`, write a transactional logical message so the slot sees
/// a commit (and can be confirmed) even when the published tables are quiet.
pub(super) async fn heartbeat_loop(url: String, interval: Duration, shutdown: Shutdown) {
    let mut client = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = ticker.tick() => {}
        }
        if client.is_none() {
            match connect_sql(&url).await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    tracing::warn!("heartbeat: {e}");
                    continue;
                }
            }
        }
        if let Some(c) = &client {
            if let Err(e) = c
                .execute(
                    "SELECT pg_logical_emit_message(true, $1, '')",
                    &[&HEARTBEAT_PREFIX],
                )
                .await
            {
                tracing::warn!("heartbeat failed: {}", crate::postgres::pg_message(&e));
                client = None;
            }
        }
    }
}
