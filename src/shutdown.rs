//! The shutdown signal, passed down explicitly (the mini-redis pattern).
//!
//! One [`Shutdown`] is created by the caller and cloned into every task; a task
//! selects on [`Shutdown::wait`] beside its work and, when it fires, stops
//! taking new work and finishes what it has in flight. Nothing here exits the
//! process: the caller decides what "finished" means.

use tokio::sync::watch;

/// A cloneable, level-triggered shutdown flag. Triggering is idempotent and
/// every clone (including ones made later) observes it.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: std::sync::Arc<watch::Sender<bool>>,
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        let (tx, rx) = watch::channel(false);
        Shutdown {
            tx: std::sync::Arc::new(tx),
            rx,
        }
    }

    /// Ask every holder to stop.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once [`trigger`](Self::trigger) has been called (at once if it
    /// already was). Cancel-safe: use it as a `select!` branch.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        // The sender lives as long as `self`, so `wait_for` only fails if it
        // was dropped, which cannot happen while we hold a clone.
        let _ = rx.wait_for(|triggered| *triggered).await;
    }
}

/// Triggers `shutdown` on the first SIGINT (Ctrl-C) or SIGTERM. Spawns a task
/// that lives until one of them arrives; a second signal is left to the
/// default handler's absence, i.e. ignored (the drain is bounded by the
/// pipeline itself).
pub fn trigger_on_signals(shutdown: Shutdown) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received: draining and stopping"),
                _ = int.recv() => tracing::info!("SIGINT received: draining and stopping"),
            }
            shutdown.trigger();
        });
    }
    #[cfg(not(unix))]
    {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!("Ctrl-C received: draining and stopping");
                shutdown.trigger();
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clones_observe_trigger() {
        let shutdown = Shutdown::new();
        let other = shutdown.clone();
        assert!(!other.is_triggered());
        let waiter = tokio::spawn(async move { other.wait().await });
        shutdown.trigger();
        waiter.await.unwrap();
        assert!(shutdown.clone().is_triggered());
        shutdown.wait().await; // already triggered: returns at once
    }
}
