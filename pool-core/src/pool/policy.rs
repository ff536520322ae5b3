//! The validation policy: may this idle connection be handed out, and does
//! it need a ping first?
//!
//! A pool cannot know whether an idle socket still leads to a live server
//! without a round trip, and a round trip on every checkout halves the
//! throughput (bb8's `test_on_check_out`). So the policy trusts what it
//! recently saw, as HikariCP and pgxpool do:
//!
//! - a connection past its recycle age (`pool_recycle` minus jitter) is
//!   closed;
//! - one whose socket the driver already knows closed is discarded;
//! - one proven good (opened, pinged, or an answer the caller passed through
//!   [`Pooled::observe`](super::Pooled::observe)) less than the bypass window
//!   ago is handed out unpinged;
//! - one last proven good before a disconnect the pool saw is closed
//!   without a ping (SQLAlchemy's invalidation: a disconnect on one
//!   connection usually means the server restarted or the network broke, and
//!   every older connection is dead too; pinging them one at a time costs a
//!   `validation_timeout` each when the server is a black hole);
//! - anything else is pinged, within `validation_timeout`.
//!
//! [`Inner::verdict`] decides without I/O, so the synchronous fast path and
//! the full checkout share the same rule; [`Inner::vet`] carries it out.

use super::{Inner, Manager, Tracked};
use crate::classify::ErrorClass;
use crate::error::Cause;
use crate::status::CloseReason;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::time::Instant;

/// What the validation policy says of an idle connection.
pub(super) enum Verdict {
    /// Hand it out (pre-ping is off).
    Use,
    /// Hand it out without a ping: proven good inside the bypass window.
    UseUnpinged,
    /// Ping it first.
    Ping,
    /// Close it.
    Close(CloseReason),
}

impl<M: Manager> Inner<M> {
    /// The validation policy, in one place: what to do with an idle
    /// connection at `now`, without any I/O.
    pub(super) fn verdict(&self, t: &Tracked<M::Connection>, now: Instant) -> Verdict {
        if t.retire_at.is_some_and(|at| at <= now) {
            return Verdict::Close(CloseReason::Recycled);
        }
        if self.manager.is_closed(&t.conn) {
            return Verdict::Close(CloseReason::Broken);
        }
        if self.seen_before_disconnect(t.last_ok) {
            return Verdict::Close(CloseReason::Invalidated);
        }
        let s = &self.settings;
        if !s.pre_ping {
            Verdict::Use
        } else if now.duration_since(t.last_ok) < s.pre_ping_window {
            Verdict::UseUnpinged
        } else {
            Verdict::Ping
        }
    }

    /// Carries out the verdict on an idle connection, pinging it when the
    /// policy says so; returns the time it was found good, or why it must be
    /// closed.
    pub(super) async fn vet(&self, t: &mut Tracked<M::Connection>) -> Result<Instant, CloseReason> {
        let now = Instant::now();
        match self.verdict(t, now) {
            Verdict::Close(reason) => {
                if reason == CloseReason::Broken {
                    self.note_disconnect();
                }
                return Err(reason);
            }
            Verdict::Use => return Ok(now),
            Verdict::UseUnpinged => {
                self.events.validation_skipped();
                return Ok(now);
            }
            Verdict::Ping => {}
        }
        let s = &self.settings;
        self.events.validated();
        let ping = tokio::time::timeout(
            s.validation_timeout,
            Box::pin(self.manager.ping(&mut t.conn)),
        );
        let Some(outcome) = self.unless_closed(ping).await else {
            return Err(CloseReason::PoolClosed);
        };
        let failure = match outcome {
            Ok(Ok(())) => {
                t.last_ok = Instant::now();
                return Ok(t.last_ok);
            }
            Ok(Err(e)) => Cause {
                class: self.manager.classify(&e),
                message: format!("validation failed: {}", self.manager.error_message(&e)),
            },
            Err(_) => Cause {
                class: ErrorClass::Timeout,
                message: format!(
                    "validation ping timed out after {:.2}s",
                    s.validation_timeout.as_secs_f64()
                ),
            },
        };
        tracing::debug!(pool = %s.name, cause = %failure, "idle connection failed validation");
        self.record(failure);
        self.note_disconnect();
        Err(CloseReason::ValidationFailed)
    }

    /// `pool_recycle` minus up to 2.5 % (at most 30 s) of random jitter, so
    /// connections opened together do not all retire together; never later
    /// than `pool_recycle`.
    pub(super) fn retire_at(&self, created: Instant) -> Option<Instant> {
        let recycle = self.settings.pool_recycle?;
        let spread = recycle.mul_f64(0.025).min(Duration::from_secs(30));
        Some(created + recycle - spread.mul_f64(fastrand::f64()))
    }

    /// Marks "now" as the last disconnect and closes, at once, every idle
    /// connection last proven good before it; the checked-out ones are
    /// judged by the same mark at their next checkout.
    pub(super) fn note_disconnect(&self) {
        let now = self.base.elapsed().as_nanos() as u64 + 1;
        self.disconnect_mark.fetch_max(now, Relaxed);
        let stale: Vec<_> = {
            let mut idle = super::lock(&self.idle);
            if idle.is_empty() {
                return;
            }
            let (stale, fresh) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|t| self.seen_before_disconnect(t.last_ok));
            *idle = fresh;
            stale
        };
        for t in stale {
            self.close(t, CloseReason::Invalidated);
        }
    }

    /// True when `last_ok` is not after the last disconnect.
    pub(super) fn seen_before_disconnect(&self, last_ok: Instant) -> bool {
        let mark = self.disconnect_mark.load(Relaxed);
        mark != 0 && (last_ok.duration_since(self.base).as_nanos() as u64 + 1) <= mark
    }
}
