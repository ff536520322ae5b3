//! SIGTERM / SIGINT handling.
//!
//! One listener task turns the first signal into a [`Shutdown`] that every
//! part of the service can wait on: the startup wait gives up, the HTTP
//! server stops accepting and drains in-flight requests, and `main` then
//! closes the pools. Each of those logs what it does with the signal (the
//! listener only names it), so a signal during the startup wait does not
//! talk about in-flight requests.
//!
//! A second signal while the first one's shutdown is still going on (an
//! impatient operator, `docker stop` given twice, Ctrl-C pressed again)
//! exits at once with status 128 + the signal's number (143 for SIGTERM,
//! 130 for SIGINT), as a shell reports a process killed by it.

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

/// Resolves once a shutdown signal arrived. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<Option<&'static str>>,
}

impl Shutdown {
    /// Starts listening for SIGTERM and SIGINT (Ctrl-C).
    pub fn listen() -> std::io::Result<Shutdown> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let (name, _) = next_signal(&mut term, &mut int).await;
            tracing::info!(signal = name, "shutdown signal received");
            let _ = tx.send(Some(name));
            let (name, code) = next_signal(&mut term, &mut int).await;
            tracing::warn!(
                signal = name,
                exit_code = code,
                "second shutdown signal: exiting now, in-flight requests are cut off"
            );
            std::process::exit(code);
        });
        Ok(Shutdown { rx })
    }

    /// Waits for the signal; returns its name (`SIGTERM`, `SIGINT`).
    pub async fn wait(&self) -> &'static str {
        let mut rx = self.rx.clone();
        let name = match rx.wait_for(Option::is_some).await {
            Ok(name) => name.unwrap_or("signal"),
            // The listener is gone, which it never is before sending;
            // treat it as a signal anyway.
            Err(_) => "signal",
        };
        name
    }
}

/// The next SIGTERM or SIGINT: its name and the exit status it stands for.
async fn next_signal(term: &mut Signal, int: &mut Signal) -> (&'static str, i32) {
    tokio::select! {
        _ = term.recv() => ("SIGTERM", 128 + 15),
        _ = int.recv() => ("SIGINT", 128 + 2),
    }
}
