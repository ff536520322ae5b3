//! The pool engine shared by every backend.
//!
//! # How a checkout flows
//!
//! 1. **Admission.** With a limited `max_overflow`, a checkout first takes one
//!    of `pool_size + max_overflow` slots from a FIFO-fair
//!    [`tokio::sync::Semaphore`]. A returned slot goes to the longest waiter;
//!    a task that did not queue cannot barge ahead of one that did.
//! 2. **Reuse.** It takes the most recently returned idle connection (LIFO:
//!    the one most likely alive and inside the pre-ping bypass window). A
//!    connection past its recycle age is closed; one whose socket is closed is
//!    discarded; one idle longer than the bypass window, or last seen before a
//!    disconnect, is pinged within `validation_timeout`. A failed one is
//!    discarded and the checkout goes on with the next.
//! 3. **Connect.** With no idle connection left it opens one, bounded by
//!    `connect_timeout`. A refused or timed-out attempt is retried with the
//!    shared backoff; a fatal error (wrong password) ends the checkout at once.
//! 4. All of it is bounded by `pool_timeout`, which never fires early. A
//!    timeout error carries the pool's state and the last underlying cause.
//!
//! # Return
//!
//! Dropping a [`Pooled`] gives the connection back. One marked broken (by the
//! caller's own error, through [`Pooled::observe`]) or found closed is
//! discarded; one returned while `pool_size` connections are already idle is
//! an overflow connection and is closed; the others go back to the idle stack.
//! The slot is released last, so the next waiter finds the connection.

use crate::classify::ErrorClass;
use crate::error::{chain, Cause, PoolError};
use crate::metrics::PoolMetrics;
use crate::redact::redact_url;
use crate::settings::PoolSettings;
use crate::status::{CloseReason, PoolStatus, Stats};
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;
use tracing::Instrument;

/// What a backend provides: how to open, check and classify connections.
///
/// Implementations stay thin: no retries, timeouts or policy here — the
/// engine applies those uniformly.
pub trait Manager: Send + Sync + 'static {
    /// The connection handed to callers.
    type Connection: Send + 'static;
    /// The backend's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Opens one connection (one attempt; the engine bounds and retries it).
    fn connect(&self) -> impl Future<Output = Result<Self::Connection, Self::Error>> + Send;

    /// One cheap round trip proving the connection works.
    fn ping(
        &self,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// A local, free check whether the connection is already known dead.
    fn is_closed(&self, conn: &Self::Connection) -> bool;

    /// The backend's one error classifier.
    fn classify(&self, error: &Self::Error) -> ErrorClass;

    /// The error as shown in messages: its whole cause chain, redacted.
    /// Backends add what operators search for (a SQLSTATE, say).
    fn describe(&self, error: &Self::Error) -> String {
        chain(error)
    }

    /// The server this manager connects to, for messages (must be redacted).
    fn target(&self) -> String;
}

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
    stats: Stats,
    /// Metric handles, registered once in [`Pool::new`].
    metrics: PoolMetrics,
    /// Time origin for `disconnect_mark`.
    base: Instant,
    /// Nanoseconds after `base` of the last disconnect seen (0 = none).
    disconnect_mark: AtomicU64,
    last_error: Mutex<Option<LastError>>,
    closed: AtomicBool,
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
    /// Creates a pool. No connection is opened until the first checkout.
    pub fn new(manager: M, settings: PoolSettings) -> Self {
        let target = redact_url(&manager.target());
        let slots = settings.max_size().map(|n| Semaphore::new(n as usize));
        Pool {
            inner: Arc::new(Inner {
                manager,
                target,
                slots,
                idle: Mutex::new(Vec::with_capacity(settings.pool_size as usize)),
                open: AtomicU32::new(0),
                in_use: AtomicU32::new(0),
                waiting: AtomicU32::new(0),
                connecting: AtomicU32::new(0),
                stats: Stats::default(),
                metrics: PoolMetrics::new(&settings.name),
                base: Instant::now(),
                disconnect_mark: AtomicU64::new(0),
                last_error: Mutex::new(None),
                closed: AtomicBool::new(false),
                settings,
            }),
        }
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

    /// Checks a connection out, waiting at most `pool_timeout`.
    pub async fn get(&self) -> Result<Pooled<M>, PoolError> {
        self.get_timeout(self.inner.settings.pool_timeout).await
    }

    /// Checks a connection out, waiting at most `timeout` (a health probe
    /// uses a short one so it never queues behind a busy pool for long).
    ///
    /// Every checkout runs in a `checkout` span (debug level: free unless a
    /// subscriber enables it) that records its `wait_us` and `outcome`
    /// (`ok`, `timeout`, `fatal`, `closed`); one slower than
    /// `slow_checkout` is logged as a warning.
    pub async fn get_timeout(&self, timeout: Duration) -> Result<Pooled<M>, PoolError> {
        let inner = &*self.inner;
        // Fast path: a free slot and an idle connection that needs no ping
        // are handed out without a future, a timer, a span or a second
        // clock read (the wait is zero).
        if let Some(pooled) = self.try_get_now() {
            Stats::inc(&inner.stats.checkouts);
            inner.metrics.checkouts.increment(1);
            inner.metrics.checkout_wait.record(Duration::ZERO);
            return Ok(pooled);
        }
        self.get_slow(timeout).await
    }

    /// A checkout that cannot wait: `None` unless a slot is free and the
    /// most recently returned idle connection may be handed out unpinged.
    fn try_get_now(&self) -> Option<Pooled<M>> {
        let inner = &*self.inner;
        if inner.closed.load(Relaxed) {
            return None;
        }
        let slot = match &inner.slots {
            Some(slots) => {
                slots.try_acquire().ok()?.forget();
                Slot { inner, armed: true }
            }
            None => Slot {
                inner,
                armed: false,
            },
        };
        let now = Instant::now();
        let tracked = {
            let mut idle = lock(&inner.idle);
            match inner.verdict(idle.last()?, now) {
                Verdict::Use => {}
                Verdict::UseUnpinged => Stats::inc(&inner.stats.validations_skipped),
                // Anything else takes the full path (the slot is released
                // on drop).
                Verdict::Ping | Verdict::Close(_) => return None,
            }
            idle.pop()?
        };
        let mut pooled = self.hand_out(tracked, slot);
        pooled.checked_out = now;
        Some(pooled)
    }

    async fn get_slow(&self, timeout: Duration) -> Result<Pooled<M>, PoolError> {
        let inner = &*self.inner;
        let span = tracing::debug_span!(
            "checkout",
            pool = %inner.settings.name,
            wait_us = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let start = Instant::now();
        // One clock read for the start and the deadline.
        let deadline = tokio::time::Instant::from_std(
            start
                .checked_add(timeout)
                .unwrap_or(start + Duration::from_secs(365 * 24 * 3600)),
        );
        // Wrapping the future moves it (a large memcpy): only when a
        // subscriber wants the span.
        let outer = if span.is_disabled() {
            tokio::time::timeout_at(deadline, self.checkout()).await
        } else {
            tokio::time::timeout_at(deadline, self.checkout())
                .instrument(span.clone())
                .await
        };
        let mut result = match outer {
            Ok(result) => result,
            Err(_) => Err(self.timeout_error(timeout, start.elapsed())),
        };
        // A successful checkout carries the time it ended (read by `vet` or
        // `connect_one`): no second clock read.
        let end = match &result {
            Ok(p) => p.checked_out,
            Err(_) => Instant::now(),
        };
        let waited = end.saturating_duration_since(start);
        inner.stats.wait(waited.as_micros() as u64);
        inner.metrics.checkout_wait.record(waited);
        let outcome = match &mut result {
            Ok(_) => {
                Stats::inc(&inner.stats.checkouts);
                inner.metrics.checkouts.increment(1);
                "ok"
            }
            Err(PoolError::Timeout { .. }) => {
                Stats::inc(&inner.stats.timeouts);
                inner.metrics.timeouts.increment(1);
                "timeout"
            }
            Err(PoolError::Fatal { .. }) => {
                Stats::inc(&inner.stats.fatal_errors);
                inner.metrics.checkout_errors.increment(1);
                "fatal"
            }
            Err(PoolError::Closed(_)) => "closed",
        };
        if !span.is_disabled() {
            // `record` looks the field up by name even on a disabled span.
            span.record("wait_us", waited.as_micros() as u64);
            span.record("outcome", outcome);
        }
        if waited >= inner.settings.slow_checkout {
            tracing::warn!(
                pool = %inner.settings.name,
                waited_ms = waited.as_millis() as u64,
                ok = result.is_ok(),
                outcome,
                "slow checkout"
            );
        }
        result
    }

    async fn checkout(&self) -> Result<Pooled<M>, PoolError> {
        let inner = &self.inner;
        if inner.closed.load(Relaxed) {
            return Err(PoolError::Closed(inner.settings.name.clone()));
        }
        let slot = inner.acquire_slot().await?;
        let mut delays = None;
        loop {
            if inner.closed.load(Relaxed) {
                return Err(PoolError::Closed(inner.settings.name.clone()));
            }
            if let Some(tracked) = inner.pop_idle() {
                let mut held = Held {
                    inner,
                    tracked: Some(tracked),
                };
                match inner.vet(held.get()).await {
                    Ok(now) => {
                        let mut pooled = self.hand_out(held.take(), slot);
                        pooled.checked_out = now;
                        return Ok(pooled);
                    }
                    Err(reason) => {
                        inner.close(held.take(), reason);
                        continue;
                    }
                }
            }
            match Box::pin(inner.connect_one()).await {
                Ok(tracked) => {
                    let created = tracked.created;
                    let mut pooled = self.hand_out(tracked, slot);
                    pooled.checked_out = created;
                    return Ok(pooled);
                }
                Err(failure) if failure.class.is_fatal() => {
                    return Err(PoolError::Fatal {
                        pool: inner.settings.name.clone(),
                        target: inner.target.clone(),
                        message: failure.message,
                        source: failure.error,
                    });
                }
                Err(_) => {
                    let delay = delays
                        .get_or_insert_with(|| inner.settings.retry.delays())
                        .next()
                        .unwrap_or(inner.settings.retry.max);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn hand_out(&self, tracked: Tracked<M::Connection>, slot: Slot<'_, M>) -> Pooled<M> {
        slot.keep();
        self.inner.in_use.fetch_add(1, Relaxed);
        Pooled {
            pool: self.inner.clone(),
            tracked: Some(tracked),
            broken: false,
            // Set to the checkout's end in `get_timeout` (no clock read here).
            checked_out: self.inner.base,
        }
    }

    fn timeout_error(&self, timeout: Duration, waited: Duration) -> PoolError {
        PoolError::Timeout {
            timeout,
            waited,
            status: Box::new(self.status()),
            last_cause: lock(&self.inner.last_error)
                .as_ref()
                .map(|e| e.cause.clone()),
        }
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
            counters: inner.stats.snapshot(),
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
        self.inner.metrics.set_gauges(&self.status());
    }

    /// Records that the server dropped connections (a caller saw a
    /// disconnect elsewhere): every idle connection is validated at its next
    /// checkout, whatever the bypass window.
    pub fn note_disconnect(&self) {
        self.inner.note_disconnect();
    }

    /// Closes the pool: idle connections are closed now, checked-out ones
    /// when they come back; waiting and later checkouts fail with
    /// [`PoolError::Closed`].
    pub fn close(&self) {
        let inner = &self.inner;
        inner.closed.store(true, Relaxed);
        if let Some(slots) = &inner.slots {
            slots.close();
        }
        let idle: Vec<_> = std::mem::take(&mut *lock(&inner.idle));
        for tracked in idle {
            inner.close(tracked, CloseReason::PoolClosed);
        }
    }

    /// True once [`Pool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Relaxed)
    }
}

/// What the validation policy says of an idle connection.
enum Verdict {
    /// Hand it out (pre-ping is off).
    Use,
    /// Hand it out without a ping: proven good inside the bypass window.
    UseUnpinged,
    /// Ping it first.
    Ping,
    /// Close it.
    Close(CloseReason),
}

/// A connection attempt that failed.
struct ConnectFailure {
    class: ErrorClass,
    /// The error as the manager describes it.
    message: String,
    error: Box<dyn std::error::Error + Send + Sync>,
}

/// A connect attempt that ran out of `connect_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("connect timed out after {0:.2}s")]
struct ConnectTimedOut(f64);

impl<M: Manager> Inner<M> {
    async fn acquire_slot(&self) -> Result<Slot<'_, M>, PoolError> {
        let Some(slots) = &self.slots else {
            return Ok(Slot {
                inner: self,
                armed: false,
            });
        };
        match slots.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(tokio::sync::TryAcquireError::Closed) => {
                return Err(PoolError::Closed(self.settings.name.clone()))
            }
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                Stats::inc(&self.stats.checkouts_waited);
                let _waiting = Gauge::up(&self.waiting);
                match slots.acquire().await {
                    Ok(permit) => permit.forget(),
                    Err(_) => return Err(PoolError::Closed(self.settings.name.clone())),
                }
            }
        }
        Ok(Slot {
            inner: self,
            armed: true,
        })
    }

    fn release_slot(&self) {
        if let Some(slots) = &self.slots {
            slots.add_permits(1);
        }
    }

    fn pop_idle(&self) -> Option<Tracked<M::Connection>> {
        lock(&self.idle).pop()
    }

    /// Decides whether an idle connection may be handed out.
    /// The validation policy, in one place: what to do with an idle
    /// connection at `now`, without any I/O.
    fn verdict(&self, t: &Tracked<M::Connection>, now: Instant) -> Verdict {
        if t.retire_at.is_some_and(|at| at <= now) {
            return Verdict::Close(CloseReason::Recycled);
        }
        if self.manager.is_closed(&t.conn) {
            return Verdict::Close(CloseReason::Broken);
        }
        let stale = self.seen_before_disconnect(t.last_ok);
        let s = &self.settings;
        match (s.pre_ping, stale) {
            (false, true) => Verdict::Close(CloseReason::Invalidated),
            (false, false) => Verdict::Use,
            (true, false) if now.duration_since(t.last_ok) < s.pre_ping_window => {
                Verdict::UseUnpinged
            }
            (true, _) => Verdict::Ping,
        }
    }

    /// Decides whether an idle connection may be handed out, pinging it
    /// when the policy says so; returns the time it was found good.
    async fn vet(&self, t: &mut Tracked<M::Connection>) -> Result<Instant, CloseReason> {
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
                Stats::inc(&self.stats.validations_skipped);
                return Ok(now);
            }
            Verdict::Ping => {}
        }
        let s = &self.settings;
        Stats::inc(&self.stats.validations);
        self.metrics.validations.increment(1);
        let outcome = tokio::time::timeout(
            s.validation_timeout,
            Box::pin(self.manager.ping(&mut t.conn)),
        )
        .await;
        let failure = match outcome {
            Ok(Ok(())) => {
                t.last_ok = Instant::now();
                return Ok(t.last_ok);
            }
            Ok(Err(e)) => Cause {
                class: self.manager.classify(&e),
                message: format!("validation failed: {}", self.manager.describe(&e)),
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

    async fn connect_one(&self) -> Result<Tracked<M::Connection>, ConnectFailure> {
        Stats::inc(&self.stats.connect_attempts);
        let connecting = Gauge::up(&self.connecting);
        let limit = self.settings.connect_timeout;
        let begun = Instant::now();
        let outcome = tokio::time::timeout(limit, self.manager.connect()).await;
        drop(connecting);
        let failure = match outcome {
            Ok(Ok(conn)) => {
                let now = Instant::now();
                let took = now - begun;
                let open = self.open.fetch_add(1, Relaxed) + 1;
                Stats::inc(&self.stats.created);
                self.metrics.created.increment(1);
                self.metrics.create_time.record(took);
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
                message: self.manager.describe(&e),
                error: Box::new(e),
            },
            Err(_) => ConnectFailure {
                class: ErrorClass::Timeout,
                message: ConnectTimedOut(limit.as_secs_f64()).to_string(),
                error: Box::new(ConnectTimedOut(limit.as_secs_f64())),
            },
        };
        Stats::inc(&self.stats.connect_failures);
        self.metrics.connect_failure(failure.class);
        let cause = Cause {
            class: failure.class,
            message: format!("connect to {} failed: {}", self.target, failure.message),
        };
        tracing::debug!(pool = %self.settings.name, cause = %cause, "connect attempt failed");
        self.record(cause);
        Err(failure)
    }

    /// `pool_recycle` minus up to 2.5 % (at most 30 s) of random jitter, so
    /// connections opened together do not all retire together; never later
    /// than `pool_recycle`.
    fn retire_at(&self, created: Instant) -> Option<Instant> {
        let recycle = self.settings.pool_recycle?;
        let spread = recycle.mul_f64(0.025).min(Duration::from_secs(30));
        Some(created + recycle - spread.mul_f64(fastrand::f64()))
    }

    fn record(&self, cause: Cause) {
        *lock(&self.last_error) = Some(LastError {
            cause,
            at: SystemTime::now(),
        });
    }

    fn note_disconnect(&self) {
        let now = self.base.elapsed().as_nanos() as u64 + 1;
        self.disconnect_mark.fetch_max(now, Relaxed);
    }

    fn seen_before_disconnect(&self, last_ok: Instant) -> bool {
        let mark = self.disconnect_mark.load(Relaxed);
        mark != 0 && (last_ok.duration_since(self.base).as_nanos() as u64 + 1) <= mark
    }

    fn close(&self, tracked: Tracked<M::Connection>, reason: CloseReason) {
        self.count_closed(reason, tracked.created);
        drop(tracked);
    }

    /// The bookkeeping of one connection leaving the pool: open gauge,
    /// counters, metrics and the debug event, in one place.
    fn count_closed(&self, reason: CloseReason, created: Instant) {
        let open = self.open.fetch_sub(1, Relaxed).saturating_sub(1);
        self.stats.closed(reason);
        self.metrics.closed(reason);
        let what = match reason {
            CloseReason::Recycled => "connection recycled: older than pool_recycle, closed",
            CloseReason::Detached => "connection detached from the pool",
            _ => "connection discarded",
        };
        tracing::debug!(
            pool = %self.settings.name,
            reason = reason.as_str(),
            age_ms = created.elapsed().as_millis() as u64,
            open,
            "{what}"
        );
    }

    /// Takes a connection back from a caller.
    fn give_back(&self, tracked: Tracked<M::Connection>, broken: bool, checked_out: Instant) {
        let now = Instant::now();
        Stats::inc(&self.stats.returns);
        self.metrics.usage.record(now.duration_since(checked_out));
        self.in_use.fetch_sub(1, Relaxed);
        let reason = if broken {
            Some(CloseReason::Broken)
        } else if self.closed.load(Relaxed) {
            Some(CloseReason::PoolClosed)
        } else if self.manager.is_closed(&tracked.conn) {
            self.note_disconnect();
            Some(CloseReason::Broken)
        } else {
            let mut idle = lock(&self.idle);
            if idle.len() < self.settings.pool_size as usize {
                idle.push(tracked);
                drop(idle);
                self.release_slot();
                return;
            }
            drop(idle);
            Some(CloseReason::Overflow)
        };
        if let Some(reason) = reason {
            self.close(tracked, reason);
        }
        self.release_slot();
    }
}

/// A slot taken from the admission semaphore; released on drop unless handed
/// to a [`Pooled`].
struct Slot<'a, M: Manager> {
    inner: &'a Inner<M>,
    armed: bool,
}

impl<M: Manager> Slot<'_, M> {
    fn keep(mut self) {
        self.armed = false;
    }
}

impl<M: Manager> Drop for Slot<'_, M> {
    fn drop(&mut self) {
        if self.armed {
            self.inner.release_slot();
        }
    }
}

/// An idle connection being vetted; closed (as cancelled) if the checkout is
/// dropped mid-way, so the open count stays right.
struct Held<'a, M: Manager> {
    inner: &'a Inner<M>,
    tracked: Option<Tracked<M::Connection>>,
}

impl<M: Manager> Held<'_, M> {
    fn get(&mut self) -> &mut Tracked<M::Connection> {
        self.tracked.as_mut().expect("held connection present")
    }

    fn take(&mut self) -> Tracked<M::Connection> {
        self.tracked.take().expect("held connection present")
    }
}

impl<M: Manager> Drop for Held<'_, M> {
    fn drop(&mut self) {
        if let Some(tracked) = self.tracked.take() {
            self.inner.close(tracked, CloseReason::Cancelled);
        }
    }
}

/// Counts something in flight for as long as it lives.
struct Gauge<'a>(&'a AtomicU32);

impl<'a> Gauge<'a> {
    fn up(counter: &'a AtomicU32) -> Self {
        counter.fetch_add(1, Relaxed);
        Gauge(counter)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// A checked-out connection. Dereferences to the backend's connection;
/// dropping it returns the connection to the pool.
pub struct Pooled<M: Manager> {
    pool: Arc<Inner<M>>,
    tracked: Option<Tracked<M::Connection>>,
    broken: bool,
    /// When the checkout completed, for the usage-time histogram.
    checked_out: Instant,
}

impl<M: Manager> Pooled<M> {
    /// Marks the connection unusable: it is closed instead of returned.
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// True once marked broken.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Passes a result through, marking the connection broken when its
    /// error means the connection is dead (I/O, closed, admin shutdown,
    /// timeout) — the backend's one classifier decides. Older idle
    /// connections are then validated at their next checkout.
    ///
    /// A result that proves the server answered (success, or a statement
    /// error) renews the connection's bypass window.
    pub fn observe<T>(&mut self, result: Result<T, M::Error>) -> Result<T, M::Error> {
        let answered = match &result {
            Ok(_) => true,
            Err(e) => {
                let class = self.pool.manager.classify(e);
                if class.breaks_connection() {
                    self.broken = true;
                    self.pool.note_disconnect();
                    self.pool.record(Cause {
                        class,
                        message: self.pool.manager.describe(e),
                    });
                }
                !class.breaks_connection()
            }
        };
        if answered {
            if let Some(t) = self.tracked.as_mut() {
                t.last_ok = Instant::now();
            }
        }
        result
    }

    /// How long ago the connection was opened.
    pub fn age(&self) -> Duration {
        self.tracked().created.elapsed()
    }

    /// Takes the connection out of the pool for good; the pool opens another
    /// when it needs one.
    pub fn detach(mut self) -> M::Connection {
        let tracked = self.tracked.take().expect("pooled connection present");
        let inner = &self.pool;
        Stats::inc(&inner.stats.returns);
        inner.metrics.usage.record(self.checked_out.elapsed());
        inner.in_use.fetch_sub(1, Relaxed);
        inner.count_closed(CloseReason::Detached, tracked.created);
        inner.release_slot();
        tracked.conn
    }

    fn tracked(&self) -> &Tracked<M::Connection> {
        self.tracked.as_ref().expect("pooled connection present")
    }
}

impl<M: Manager> Deref for Pooled<M> {
    type Target = M::Connection;

    fn deref(&self) -> &M::Connection {
        &self.tracked().conn
    }
}

impl<M: Manager> DerefMut for Pooled<M> {
    fn deref_mut(&mut self) -> &mut M::Connection {
        &mut self
            .tracked
            .as_mut()
            .expect("pooled connection present")
            .conn
    }
}

impl<M: Manager> Drop for Pooled<M> {
    fn drop(&mut self) {
        if let Some(tracked) = self.tracked.take() {
            self.pool.give_back(tracked, self.broken, self.checked_out);
        }
    }
}

impl<M: Manager> std::fmt::Debug for Pooled<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("pool", &self.pool.settings.name)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}
