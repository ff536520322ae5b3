//! Opening a connection: one attempt (connect, then the manager's
//! `after_connect`), bounded by `connect_timeout`.
//!
//! The attempt is counted while it runs (`connecting` in the status) and its
//! outcome recorded once: a success as `created` with its duration, a
//! failure by class with its cause kept as the pool's last error (so a
//! timeout error can say *why* nothing could connect). Retrying and the
//! backoff between attempts belong to the checkout, not here.

use super::admission::InFlight;
use super::{Inner, Manager, Tracked};
use crate::classify::ErrorClass;
use crate::error::{Cause, PoolError};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
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
    /// One connection attempt; `None` when the pool closed meanwhile (the
    /// attempt is abandoned).
    pub(super) async fn connect_one(
        &self,
    ) -> Option<Result<Tracked<M::Connection>, ConnectFailure>> {
        let mut attempt = Attempt {
            inner: self,
            _connecting: InFlight::count(&self.connecting),
            ended: false,
        };
        self.events.connect_started();
        let limit = self.settings.connect_timeout;
        let begun = Instant::now();
        let open_and_init = async {
            let mut fresh = Fresh {
                manager: &self.manager,
                conn: Some(self.manager.connect().await?),
            };
            self.manager.after_connect(fresh.get()).await?;
            Ok(fresh.take())
        };
        let outcome = self
            .unless_closed(tokio::time::timeout(limit, open_and_init))
            .await?;
        attempt.ended = true;
        drop(attempt);
        let failure = match outcome {
            Ok(Ok(conn)) => {
                let now = Instant::now();
                let took = now - begun;
                let open = self.open.fetch_add(1, Relaxed) + 1;
                self.events.connected(took);
                self.last_connect_ns
                    .store(took.as_nanos().max(1) as u64, Relaxed);
                self.down_since.store(0, Relaxed);
                self.down_streak.store(0, Relaxed);
                // The server answers: checkouts sleeping in backoff try now.
                self.wake_sleepers();
                tracing::debug!(
                    pool = %self.settings.name,
                    connect_ms = took.as_millis() as u64,
                    open,
                    "connection opened"
                );
                return Some(Ok(Tracked {
                    conn,
                    created: now,
                    retire_at: self.retire_at(now),
                    last_ok: now,
                    idle_since: now,
                    lease: self.new_lease(),
                }));
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
        self.down_streak.fetch_add(1, Relaxed);
        self.down_since
            .store(self.base.elapsed().as_nanos() as u64 + 1, Relaxed);
        let cause = Cause {
            class: failure.class,
            message: format!("connect to {} failed: {}", self.target, failure.message),
        };
        tracing::debug!(pool = %self.settings.name, cause = %cause, "connect attempt failed");
        self.record(cause);
        Some(Err(failure))
    }

    /// With `fail_fast`: the error a checkout that needs a new connection
    /// fails with at once while the server is down: the last connect attempt
    /// failed less than one backoff step ago (the step doubles with each
    /// failure in a row, as the backoff does), or another attempt is under
    /// way (one probe at a time, so callers do not pile onto a server that
    /// hangs). `None` when it may try.
    pub(super) fn fail_fast_error(&self) -> Option<PoolError> {
        if !self.settings.fail_fast {
            return None;
        }
        let since = self.down_since.load(Relaxed);
        if since == 0 {
            return None;
        }
        let window = self.settings.retry.bound(self.down_streak.load(Relaxed));
        let down_for =
            Duration::from_nanos((self.base.elapsed().as_nanos() as u64 + 1).saturating_sub(since));
        let retry_in = window.saturating_sub(down_for);
        if retry_in.is_zero() && self.connecting.load(Relaxed) == 0 {
            return None;
        }
        Some(self.unavailable_error(retry_in))
    }

    /// The error of a checkout failing fast: the last connect error, and
    /// when the pool tries again.
    pub(super) fn unavailable_error(&self, retry_in: Duration) -> PoolError {
        let cause = super::lock(&self.last_error)
            .as_ref()
            .map(|e| e.cause.clone())
            .unwrap_or_else(|| Cause {
                class: ErrorClass::Unavailable,
                message: format!("connect to {} failed", self.target),
            });
        PoolError::Unavailable {
            pool: self.settings.name.clone(),
            target: self.target.clone(),
            cause,
            retry_in,
        }
    }

    /// When a checkout that just failed to connect should try again: after
    /// its backoff `delay`, unless that leaves no time before `deadline` for
    /// one more connect; then the last attempt starts as late as still fits
    /// (the deadline minus twice the last successful connect time, or
    /// 100 ms before any), once. After that last attempt the checkout only
    /// waits (to be woken by a returned connection) until its deadline.
    pub(super) fn next_attempt_at(
        &self,
        now: Instant,
        delay: Duration,
        deadline: Instant,
        last_attempt_made: &mut bool,
    ) -> Instant {
        let last_ns = self.last_connect_ns.load(Relaxed);
        let estimate = if last_ns == 0 {
            Duration::from_millis(100)
        } else {
            Duration::from_nanos(last_ns.saturating_mul(2))
        }
        .min(self.settings.connect_timeout);
        let latest_start = deadline.checked_sub(estimate).unwrap_or(now);
        let by_backoff = now + delay;
        if by_backoff <= latest_start {
            by_backoff
        } else if !*last_attempt_made {
            *last_attempt_made = true;
            latest_start.max(now)
        } else {
            deadline
        }
    }
}

/// A connection opened but not yet initialised: if `after_connect` fails or
/// the attempt is dropped, the manager's `on_close` still sees it.
struct Fresh<'a, M: Manager> {
    manager: &'a M,
    conn: Option<M::Connection>,
}

impl<M: Manager> Fresh<'_, M> {
    fn get(&mut self) -> &mut M::Connection {
        self.conn.as_mut().expect("fresh connection present")
    }

    fn take(&mut self) -> M::Connection {
        self.conn.take().expect("fresh connection present")
    }
}

impl<M: Manager> Drop for Fresh<'_, M> {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            self.manager.on_close(&mut conn);
        }
    }
}

/// A connect attempt in flight: counted in `connecting` while it lives, and
/// as cancelled if dropped before it ended (so `connect_attempts = created +
/// connect_failures + connects_cancelled` holds whatever happens).
struct Attempt<'a, M: Manager> {
    inner: &'a Inner<M>,
    _connecting: InFlight<'a>,
    ended: bool,
}

impl<M: Manager> Drop for Attempt<'_, M> {
    fn drop(&mut self) {
        if !self.ended {
            self.inner.events.connect_cancelled();
        }
    }
}
