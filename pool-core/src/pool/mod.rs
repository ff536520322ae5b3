//! The pool engine shared by every backend.
//!
//! # How a checkout flows
//!
//! 1. **Admission** ([`admission`]). With a limited `max_overflow`, a
//!    checkout first takes one of `pool_size + max_overflow` slots from a
//!    FIFO-fair semaphore. A returned slot goes to the longest waiter; a
//!    task that did not queue cannot barge ahead of one that did.
//! 2. **Reuse** ([`policy`]). It takes the most recently returned idle
//!    connection (LIFO: the one most likely alive and inside the pre-ping
//!    bypass window). A connection past its recycle age is closed; one whose
//!    socket is closed is discarded; one idle longer than the bypass window,
//!    or last seen before a disconnect, is pinged within
//!    `validation_timeout`. A failed one is discarded and the checkout goes
//!    on with the next.
//! 3. **Connect** ([`connect`]). With no idle connection left it opens one,
//!    bounded by `connect_timeout`. A refused or timed-out attempt is retried
//!    with the shared backoff; a fatal error (wrong password) ends the
//!    checkout at once. With `fail_fast`, a failed attempt ends it too, and
//!    while the server is down checkouts fail without trying (one probe at
//!    a time, after each backoff step).
//! 4. All of it is bounded by `pool_timeout` ([`checkout`]), which never
//!    fires early. A timeout error carries the pool's state and the last
//!    underlying cause.
//!
//! # Return
//!
//! Dropping a [`Pooled`] ([`pooled`]) gives the connection back
//! ([`checkin`]). One marked broken (by the caller's own error, through
//! [`Pooled::observe`]) or found closed is discarded; one returned while
//! `pool_size` connections are already idle is an overflow connection and is
//! closed; the others go back to the idle stack. The slot is released last,
//! so the next waiter finds the connection.
//!
//! Every counter and metric is written by [`events`], one method per event.

mod admission;
mod checkin;
mod checkout;
mod connect;
mod events;
mod manager;
#[cfg(test)]
mod model_tests;
mod policy;
mod pooled;
#[cfg(test)]
mod tests;
mod upkeep;

pub use manager::{Manager, Returned};
pub use pooled::Pooled;

use crate::error::{Cause, PoolError};
use crate::redact::redact_url;
use crate::settings::PoolSettings;
use crate::status::{CloseReason, PoolStatus};
use events::Events;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

/// An idle or checked-out connection with the facts the policy needs.
struct Tracked<C> {
    conn: C,
    /// When it was opened.
    created: Instant,
    /// When it must be replaced (`pool_recycle` minus jitter).
    retire_at: Option<Instant>,
    /// Last moment it was proven good: opened, validated, or a round trip
    /// the caller passed through [`Pooled::observe`]. A plain return does not
    /// count: a caller that gave up mid-request (its own timeout, a
    /// cancelled task) may hand back a connection that will never answer.
    last_ok: Instant,
    /// When it last went idle (opened, or returned): the idle timeout and
    /// keepalive count from here.
    idle_since: Instant,
    /// Where it is checked out, for leak detection (`None` when off).
    lease: Option<Arc<upkeep::Lease>>,
}

/// The last error seen from the server, with its wall-clock time.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LastError {
    /// The error.
    #[serde(flatten)]
    pub cause: Cause,
    /// When it happened.
    pub at: SystemTime,
}

struct Inner<M: Manager> {
    manager: M,
    settings: PoolSettings,
    target: String,
    /// `None` when overflow is unlimited.
    slots: Option<Semaphore>,
    idle: Mutex<Vec<Tracked<M::Connection>>>,
    open: AtomicU32,
    in_use: AtomicU32,
    waiting: AtomicU32,
    connecting: AtomicU32,
    /// Counters and metric handles, registered once in [`Pool::new`].
    events: Events,
    /// Time origin for `disconnect_mark`.
    base: Instant,
    /// Nanoseconds after `base` of the last disconnect seen (0 = none).
    disconnect_mark: AtomicU64,
    last_error: Mutex<Option<LastError>>,
    /// Set by [`Pool::close`], under the idle lock (so a return cannot push
    /// onto the stack after `close` emptied it).
    closed: AtomicBool,
    /// Wakes checkouts sleeping in backoff: a connection came back, a
    /// connect succeeded (the server is back), or the pool closed.
    wake: Notify,
    /// Checkouts sleeping in backoff (each holds a slot and wants a
    /// connection).
    backing_off: AtomicU32,
    /// Ends connects and pings in flight when the pool closes.
    closing: Notify,
    /// Nanoseconds the last successful connect took (0 = none yet), to time
    /// the last attempt before a deadline.
    last_connect_ns: AtomicU64,
    /// Nanoseconds after `base` (+1) of the last failed connect attempt
    /// since the last success (0 = the server is not known to be down).
    down_since: AtomicU64,
    /// Connect attempts failed in a row: the fail-fast window grows with
    /// them as the backoff does.
    down_streak: AtomicU32,
    /// The housekeeper, leases and pause flag ([`upkeep`]).
    upkeep: upkeep::Upkeep,
}

/// A pool of connections made by a [`Manager`]. Cheap to clone; clones share
/// the pool.
pub struct Pool<M: Manager> {
    inner: Arc<Inner<M>>,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Pool {
            inner: self.inner.clone(),
        }
    }
}

impl<M: Manager> std::fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.inner.settings.name)
            .field("target", &self.inner.target)
            .field("status", &self.status())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave their data half-updated
    // (single push/pop/assign), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<M: Manager> Pool<M> {
    /// Creates a pool and, when an upkeep feature is on and a tokio runtime
    /// is running, its housekeeper (else at the first checkout). Without
    /// `min_idle` no connection is opened until the first checkout.
    pub fn new(manager: M, settings: PoolSettings) -> Self {
        let target = redact_url(&manager.target());
        let slots = settings.max_size().map(|n| Semaphore::new(n as usize));
        let pool = Pool {
            inner: Arc::new(Inner {
                manager,
                target,
                slots,
                idle: Mutex::new(Vec::with_capacity(settings.pool_size as usize)),
                open: AtomicU32::new(0),
                in_use: AtomicU32::new(0),
                waiting: AtomicU32::new(0),
                connecting: AtomicU32::new(0),
                events: Events::new(&settings.name),
                base: Instant::now(),
                disconnect_mark: AtomicU64::new(0),
                last_error: Mutex::new(None),
                closed: AtomicBool::new(false),
                wake: Notify::new(),
                backing_off: AtomicU32::new(0),
                closing: Notify::new(),
                last_connect_ns: AtomicU64::new(0),
                down_since: AtomicU64::new(0),
                down_streak: AtomicU32::new(0),
                upkeep: upkeep::Upkeep::new(&settings),
                settings,
            }),
        };
        upkeep::start(&pool.inner);
        pool
    }

    /// The settings the pool runs with.
    pub fn settings(&self) -> &PoolSettings {
        &self.inner.settings
    }

    /// The backend's manager.
    pub fn manager(&self) -> &M {
        &self.inner.manager
    }

    /// The server, redacted.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// A snapshot of the pool's gauges and counters.
    pub fn status(&self) -> PoolStatus {
        let inner = &self.inner;
        let s = &inner.settings;
        let open = inner.open.load(Relaxed);
        PoolStatus {
            name: s.name.clone(),
            pool_size: s.pool_size,
            max_overflow: s.max_overflow_value(),
            max_size: s.max_size(),
            pool_timeout: s.pool_timeout.as_secs_f64(),
            open,
            idle: lock(&inner.idle).len() as u32,
            in_use: inner.in_use.load(Relaxed),
            overflow_in_use: open.saturating_sub(s.pool_size),
            waiting: inner.waiting.load(Relaxed),
            connecting: inner.connecting.load(Relaxed),
            counters: inner.events.counters(),
            housekeeper: inner.upkeep.status(),
            paused: inner.upkeep.is_paused(),
        }
    }

    /// The last error the pool saw from the server, if any.
    pub fn last_error(&self) -> Option<LastError> {
        lock(&self.inner.last_error).clone()
    }

    /// Sets the pool's gauges (`db_pool_connections{state}`,
    /// `db_pool_waiting_checkouts`, `db_pool_connections_min`/`_max`) from
    /// [`Pool::status`]. Call it right before each metrics scrape; the
    /// gauges are not touched on the checkout path. See [`crate::metrics`].
    pub fn update_gauges(&self) {
        self.inner.events.set_gauges(&self.status());
    }

    /// Records that the server dropped connections (a caller saw a
    /// disconnect elsewhere). As SQLAlchemy does, every connection last
    /// proven good before now is invalidated: the idle ones are closed at
    /// once (not pinged one at a time, which costs `validation_timeout` each
    /// when the server is a black hole), the checked-out ones at their next
    /// checkout unless a round trip proved them good since.
    pub fn note_disconnect(&self) {
        self.inner.note_disconnect();
    }

    /// Closes the pool: idle connections are closed now, checked-out ones
    /// when they come back; waiting and later checkouts fail with
    /// [`PoolError::Closed`]; the housekeeper stops.
    ///
    /// Connects and validation pings in flight are abandoned at once (their
    /// checkouts fail with [`PoolError::Closed`]), and checkouts sleeping in
    /// backoff wake up to fail.
    pub fn close(&self) {
        let inner = &self.inner;
        let idle: Vec<_> = {
            let mut idle = lock(&inner.idle);
            inner.closed.store(true, Relaxed);
            std::mem::take(&mut *idle)
        };
        inner.upkeep.stop();
        if let Some(slots) = &inner.slots {
            slots.close();
        }
        inner.closing.notify_waiters();
        inner.wake.notify_waiters();
        for tracked in idle {
            inner.close(tracked, CloseReason::PoolClosed);
        }
    }

    /// True once [`Pool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Relaxed)
    }
}

impl<M: Manager> Inner<M> {
    /// Keeps `cause` as the pool's last error.
    fn record(&self, cause: Cause) {
        *lock(&self.last_error) = Some(LastError {
            cause,
            at: SystemTime::now(),
        });
    }

    /// The error of a checkout on a closed pool.
    fn closed_error(&self) -> PoolError {
        PoolError::Closed(self.settings.name.clone())
    }

    /// Runs `f` unless the pool closes first (then `None`, and `f` is
    /// dropped: a connect or ping in flight is abandoned).
    async fn unless_closed<F: std::future::Future>(&self, f: F) -> Option<F::Output> {
        let closing = self.closing.notified();
        tokio::pin!(closing);
        closing.as_mut().enable();
        if self.closed.load(Relaxed) {
            return None;
        }
        tokio::select! {
            biased;
            _ = closing => None,
            out = f => Some(out),
        }
    }

    /// Wakes the checkouts sleeping in backoff, if any (free otherwise).
    fn wake_sleepers(&self) {
        if self.backing_off.load(Relaxed) > 0 {
            self.wake.notify_waiters();
        }
    }
}
