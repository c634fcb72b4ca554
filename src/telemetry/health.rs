//! Liveness and readiness of a long-running kinesync process, as `/healthz`
//! and `/readyz` answer them.
//!
//! *Alive* means the main loop is still turning: it calls [`Health::beat`]
//! at least every second or so, and `/healthz` fails once the last beat is
//! older than [`STALL_AFTER`] (a loop stuck on a future that never ends, a
//! blocked runtime). *Ready* means every named condition the loop reports
//! holds (the producer: "source" = connected to its slot; the merge daemon:
//! "last_merge" = the last run did not fail) and the live probe of the
//! remote service (Kinesis DescribeStreamSummary, Data API ListStatements)
//! answered within [`PROBE_TIMEOUT`]. A probe result is reused for
//! [`PROBE_CACHE`], so a scraper cannot turn into load on AWS.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

/// `/healthz` fails when the main loop has not beaten for this long.
pub const STALL_AFTER: Duration = Duration::from_secs(120);
/// Longest wait for one readiness probe of the remote service.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a probe result is reused.
pub const PROBE_CACHE: Duration = Duration::from_secs(5);

/// A live check of a remote service: `Err` says what is wrong, in one line.
pub type Probe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// One answer of `/healthz` or `/readyz`: healthy or not, and a text body
/// with one line per check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub body: String,
}

/// The process's health state (see the module doc).
pub struct Health {
    started: Instant,
    /// Milliseconds from `started` to the last beat.
    last_beat_ms: AtomicU64,
    conditions: Mutex<BTreeMap<&'static str, Result<(), String>>>,
    probe: Mutex<Option<(&'static str, Probe)>>,
    cached: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Health {
    fn new() -> Health {
        Health {
            started: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            conditions: Mutex::new(BTreeMap::new()),
            probe: Mutex::new(None),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The main loop is turning.
    pub fn beat(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_beat_ms.store(ms, Ordering::Relaxed);
    }

    /// Sets readiness condition `name` (`Err` says why it does not hold).
    pub fn set(&self, name: &'static str, state: Result<(), String>) {
        if let Ok(mut conditions) = self.conditions.lock() {
            conditions.insert(name, state);
        }
    }

    /// Installs the live probe of the remote service, named `name`.
    pub fn set_probe(&self, name: &'static str, probe: Probe) {
        if let Ok(mut slot) = self.probe.lock() {
            *slot = Some((name, probe));
        }
    }

    /// `/healthz`.
    pub fn liveness(&self) -> Verdict {
        let now = self.started.elapsed();
        let last = Duration::from_millis(self.last_beat_ms.load(Ordering::Relaxed));
        let silent = now.saturating_sub(last);
        if silent < STALL_AFTER {
            Verdict {
                ok: true,
                body: format!("ok: main loop beat {} ms ago\n", silent.as_millis()),
            }
        } else {
            Verdict {
                ok: false,
                body: format!(
                    "stalled: main loop has not beaten for {} s (limit {} s)\n",
                    silent.as_secs(),
                    STALL_AFTER.as_secs()
                ),
            }
        }
    }

    /// `/readyz`: every condition, then the probe (cached for [`PROBE_CACHE`]).
    pub async fn readiness(&self) -> Verdict {
        let mut checks: Vec<(String, Result<(), String>)> = self
            .conditions
            .lock()
            .map(|c| {
                c.iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let probe = self.probe.lock().ok().and_then(|p| p.clone());
        if let Some((name, probe)) = probe {
            checks.push((name.to_owned(), self.probe_cached(&probe).await));
        }
        let ok = checks.iter().all(|(_, r)| r.is_ok());
        let body = checks
            .iter()
            .map(|(name, r)| match r {
                Ok(()) => format!("ok {name}\n"),
                Err(why) => format!("failing {name}: {why}\n"),
            })
            .collect();
        Verdict { ok, body }
    }

    async fn probe_cached(&self, probe: &Probe) -> Result<(), String> {
        let mut cached = self.cached.lock().await;
        if let Some((at, result)) = cached.as_ref() {
            if at.elapsed() < PROBE_CACHE {
                return result.clone();
            }
        }
        let result = match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
        };
        *cached = Some((Instant::now(), result.clone()));
        result
    }
}

/// The process's health.
pub fn health() -> &'static Health {
    static HEALTH: LazyLock<Health> = LazyLock::new(Health::new);
    &HEALTH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_only_when_every_condition_and_the_probe_hold() {
        let h = Health::new();
        h.set("source", Err("connecting".into()));
        let v = h.readiness().await;
        assert!(!v.ok);
        assert_eq!(v.body, "failing source: connecting\n");
        h.set("source", Ok(()));
        assert!(h.readiness().await.ok);
        h.set_probe(
            "kinesis",
            Arc::new(|| Box::pin(async { Err("stream not found".to_owned()) })),
        );
        let v = h.readiness().await;
        assert!(!v.ok);
        assert_eq!(v.body, "ok source\nfailing kinesis: stream not found\n");
    }

    #[tokio::test]
    async fn a_probe_answer_is_reused_for_a_while() {
        let h = Health::new();
        let calls = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&calls);
        h.set_probe(
            "kinesis",
            Arc::new(move || {
                counter.fetch_add(1, Ordering::Relaxed);
                Box::pin(async { Ok(()) })
            }),
        );
        assert!(h.readiness().await.ok);
        assert!(h.readiness().await.ok);
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn alive_right_after_a_beat() {
        let h = Health::new();
        h.beat();
        assert!(h.liveness().ok);
    }
}
