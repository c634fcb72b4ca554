//! Fault injection for tests of Data API clients: rows in
//! `kinesync_standin.fault_injection` of the database a statement runs in
//! make the stand-in misbehave the way Redshift can. Scoped to one database,
//! so tests sharing a stand-in do not see each other's faults.
//!
//! - `abort_batch`: the next `remaining` BatchExecuteStatement calls (only
//!   those with a statement containing `matching`, when set) run every
//!   sub-statement but the last, roll back and end ABORTED (as a batch
//!   cancelled or aborted by the cluster does).
//! - `hold_after_refresh`: a successful REFRESH of a streaming view arms the
//!   row; the next statement to start in the database waits while the row
//!   exists (at most [`HOLD_LIMIT`]), so a test can kill the client between
//!   the refresh and what follows. `hits` counts the statements held.
//! - `expire_unread`: the next REFRESH of a streaming view skips the first
//!   `remaining` records it reads and moves past them, as Kinesis does with
//!   records that expired before anyone read them; `hits` counts them.
//!
//! Errors reading the table (a catalog not installed yet) mean "no fault".

use std::time::Duration;

use tokio_postgres::Client;

/// Longest time a statement is held by `hold_after_refresh`.
pub const HOLD_LIMIT: Duration = Duration::from_secs(120);
/// How often a held statement checks whether it may go on.
const HOLD_POLL: Duration = Duration::from_millis(50);

/// Consumes one `abort_batch` fault for a batch of `sqls`, if any is left.
pub async fn take_abort_batch(client: &Client, sqls: &[String]) -> bool {
    client
        .query_opt(
            "UPDATE kinesync_standin.fault_injection SET remaining = remaining - 1, hits = hits + 1 \
             WHERE fault = 'abort_batch' AND remaining > 0 \
             AND (matching IS NULL OR EXISTS (SELECT 1 FROM unnest($1::text[]) AS s WHERE strpos(s, matching) > 0)) \
             RETURNING fault",
            &[&sqls],
        )
        .await
        .ok()
        .flatten()
        .is_some()
}

/// How many records the refresh in progress must treat as expired (run
/// inside the refresh's transaction; consumes the fault).
pub async fn take_expired(client: &Client) -> u64 {
    client
        .query_opt(
            "WITH old AS (SELECT remaining FROM kinesync_standin.fault_injection \
                          WHERE fault = 'expire_unread' AND remaining > 0 FOR UPDATE) \
             UPDATE kinesync_standin.fault_injection AS f SET hits = f.hits + old.remaining, remaining = 0 \
             FROM old WHERE f.fault = 'expire_unread' RETURNING old.remaining",
            &[],
        )
        .await
        .ok()
        .flatten()
        .and_then(|row| u64::try_from(row.get::<_, i32>(0)).ok())
        .unwrap_or(0)
}

/// Arms `hold_after_refresh` (run inside the refresh's transaction).
pub async fn arm_after_refresh(client: &Client) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE kinesync_standin.fault_injection SET armed = true WHERE fault = 'hold_after_refresh'",
            &[],
        )
        .await
        .map(|_| ())
}

/// Waits while an armed `hold_after_refresh` row exists (disarming it).
pub async fn hold_if_armed(client: &Client) {
    let armed = client
        .query_opt(
            "UPDATE kinesync_standin.fault_injection SET armed = false, hits = hits + 1 \
             WHERE fault = 'hold_after_refresh' AND armed RETURNING fault",
            &[],
        )
        .await
        .ok()
        .flatten()
        .is_some();
    if !armed {
        return;
    }
    tracing::info!("holding a statement after a refresh (fault hold_after_refresh)");
    let deadline = tokio::time::Instant::now() + HOLD_LIMIT;
    while tokio::time::Instant::now() < deadline {
        let present = client
            .query_opt(
                "SELECT 1 FROM kinesync_standin.fault_injection WHERE fault = 'hold_after_refresh'",
                &[],
            )
            .await
            .ok()
            .flatten()
            .is_some();
        if !present {
            return;
        }
        tokio::time::sleep(HOLD_POLL).await;
    }
}
