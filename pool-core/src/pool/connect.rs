//! Opening a connection: one attempt, bounded by `connect_timeout`.
//!
//! The attempt is counted while it runs (`connecting` in the status) and its
//! outcome recorded once: a success as `created` with its duration, a
//! failure by class with its cause kept as the pool's last error (so a
//! timeout error can say *why* nothing could connect). Retrying and the
//! backoff between attempts belong to the checkout, not here.

use super::admission::InFlight;
use super::{Inner, Manager, Tracked};
use crate::classify::ErrorClass;
use crate::error::Cause;
use std::sync::atomic::Ordering::Relaxed;
use tokio::time::Instant;

/// A connection attempt that failed.
pub(super) struct ConnectFailure {
    pub(super) class: ErrorClass,
    /// The error as the manager words it.
    pub(super) message: String,
    pub(super) error: Box<dyn std::error::Error + Send + Sync>,
}

/// A connect attempt that ran out of `connect_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("connect timed out after {0:.2}s")]
struct ConnectTimedOut(f64);

impl<M: Manager> Inner<M> {
    /// One connection attempt.
    pub(super) async fn connect_one(&self) -> Result<Tracked<M::Connection>, ConnectFailure> {
        self.events.connect_started();
        let connecting = InFlight::count(&self.connecting);
        let limit = self.settings.connect_timeout;
        let begun = Instant::now();
        let outcome = tokio::time::timeout(limit, self.manager.connect()).await;
        drop(connecting);
        let failure = match outcome {
            Ok(Ok(conn)) => {
                let now = Instant::now();
                let took = now - begun;
                let open = self.open.fetch_add(1, Relaxed) + 1;
                self.events.connected(took);
                tracing::debug!(
                    pool = %self.settings.name,
                    connect_ms = took.as_millis() as u64,
                    open,
                    "connection opened"
                );
                return Ok(Tracked {
                    conn,
                    created: now,
                    retire_at: self.retire_at(now),
                    last_ok: now,
                });
            }
            Ok(Err(e)) => ConnectFailure {
                class: self.manager.classify(&e),
                message: self.manager.error_message(&e),
                error: Box::new(e),
            },
            Err(_) => ConnectFailure {
                class: ErrorClass::Timeout,
                message: ConnectTimedOut(limit.as_secs_f64()).to_string(),
                error: Box::new(ConnectTimedOut(limit.as_secs_f64())),
            },
        };
        self.events.connect_failed(failure.class);
        let cause = Cause {
            class: failure.class,
            message: format!("connect to {} failed: {}", self.target, failure.message),
        };
        tracing::debug!(pool = %self.settings.name, cause = %cause, "connect attempt failed");
        self.record(cause);
        Err(failure)
    }
}
