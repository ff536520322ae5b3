//! SIGTERM / SIGINT handling.
//!
//! One listener task turns the first signal into a [`Shutdown`] that every
//! part of the service can wait on: the startup wait gives up, the HTTP
//! server stops accepting and drains in-flight requests, and `main` then
//! closes the pools.

use tokio::sync::watch;

/// Resolves once a shutdown signal arrived. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Starts listening for SIGTERM and SIGINT (Ctrl-C).
    pub fn listen() -> std::io::Result<Shutdown> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(
                signal = name,
                "shutting down: no new connections, finishing in-flight requests"
            );
            let _ = tx.send(true);
        });
        Ok(Shutdown { rx })
    }

    /// Waits for the signal.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        // An error means the listener is gone, which it never is before
        // sending; treat it as a signal anyway.
        let _ = rx.wait_for(|signalled| *signalled).await;
    }
}
