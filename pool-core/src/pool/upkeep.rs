//! Upkeep: what the pool does between checkouts, as HikariCP's housekeeper
//! and pgxpool's health check do.
//!
//! Everything else in the engine happens inside a checkout, which leaves
//! connections at the bottom of the LIFO idle stack untouched until a burst
//! reaches them. One **housekeeper** task per pool closes that gap. It is
//! started with the pool (or at the first checkout when the pool was built
//! outside a runtime), exists only when one of its features is on, holds
//! the pool only weakly, and stops on [`Pool::close`] or when the last
//! handle is dropped. Each run, every [`PoolSettings::upkeep_period`]:
//!
//! 1. **Sweep** the idle stack: a connection older than its recycle age is
//!    closed as `lifetime` (the checkout's `pool_recycle` rule, enforced
//!    anywhere in the stack; a checked-out connection is never touched); one
//!    whose socket the driver knows closed is closed as `broken`; idle ones
//!    above `min_idle` unused for `idle_timeout` are closed as
//!    `idle_timeout`, least recently used first.
//! 2. **Leaks**: a connection checked out for longer than `leak_threshold`
//!    is reported once (warning with the pool, how long, the checkout's
//!    `#[track_caller]` location and its tracing span; `db_pool_leaks_total`).
//!    It is not taken away.
//! 3. **Keepalive**: idle connections unused for `keepalive` are pinged, one
//!    at a time, within `validation_timeout`. A ping takes a free admission
//!    slot and only when no checkout waits, so it never competes with a
//!    waiting checkout. A failed one is closed as `keepalive_failed` and
//!    recorded as a disconnect (older connections get validated).
//! 4. **Min idle**: connections are opened until `min_idle` are idle (never
//!    above `pool_size` open). A failed attempt brings the next run forward
//!    to the shared backoff's next delay instead of the period.
//!
//! The checkout path pays only for leak detection when it is on: the
//! caller's location, the current span's name and id and the checkout time
//! are written into the connection's lease (one uncontended lock, no clock
//! read of its own).
//!
//! Also here: [`Pool::warm_up`] (open connections ahead of traffic within a
//! deadline) and [`Pool::pause`] / [`Pool::resume`] (HikariCP's
//! `suspendPool`: checkouts wait, within their `pool_timeout`).

use super::admission::InFlight;
use super::{lock, Inner, Manager, Pool, Pooled, Tracked};
use crate::classify::ErrorClass;
use crate::error::{Cause, PoolError};
use crate::settings::PoolSettings;
use crate::status::{CloseReason, HousekeeperStatus};
use std::panic::Location;
use std::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;
use tokio::time::Instant;

#[cfg(test)]
mod tests;

/// A pool's upkeep state: the housekeeper's switches and record, the
/// leases of open connections, the pause flag.
pub(super) struct Upkeep {
    /// Time between runs, `None` when no feature needs a housekeeper.
    period: Option<Duration>,
    /// Wakes the housekeeper to stop (close, or the pool dropped).
    stop: Arc<Notify>,
    started: AtomicBool,
    runs: AtomicU64,
    last_run: Mutex<Option<SystemTime>>,
    /// Leases of the open connections, when leak detection is on.
    leases: Mutex<Vec<Weak<Lease>>>,
    paused: AtomicBool,
    resumed: Notify,
}

impl Upkeep {
    /// Upkeep state for a pool with `settings`.
    pub(super) fn new(settings: &PoolSettings) -> Self {
        Upkeep {
            period: settings.upkeep_period(),
            stop: Arc::new(Notify::new()),
            started: AtomicBool::new(false),
            runs: AtomicU64::new(0),
            last_run: Mutex::new(None),
            leases: Mutex::new(Vec::new()),
            paused: AtomicBool::new(false),
            resumed: Notify::new(),
        }
    }

    /// True while checkouts are paused.
    pub(super) fn is_paused(&self) -> bool {
        self.paused.load(Relaxed)
    }

    /// Stops the housekeeper and wakes paused checkouts (the pool closed).
    pub(super) fn stop(&self) {
        self.stop.notify_one();
        self.resumed.notify_waiters();
    }

    /// The housekeeper's record for [`Pool::status`].
    pub(super) fn status(&self) -> Option<HousekeeperStatus> {
        let period = self.period?;
        Some(HousekeeperStatus {
            runs: self.runs.load(Relaxed),
            last_run: *lock(&self.last_run),
            period: period.as_secs_f64(),
        })
    }
}

impl Drop for Upkeep {
    /// The last handle is gone: the housekeeper stops at once.
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

/// Where and since when a connection is checked out, read by the leak scan.
pub(super) struct Lease {
    /// True while checked out (set last by a checkout, cleared on return).
    out: AtomicBool,
    /// Reported already for this checkout.
    reported: AtomicBool,
    /// The last checkout's caller and time (`None` before the first).
    holder: Mutex<Option<Holder>>,
}

/// The checkout's caller and time, as the leak warning shows them.
#[derive(Clone, Copy)]
struct Holder {
    at: &'static Location<'static>,
    /// When the checkout completed.
    since: Instant,
    span: Option<&'static str>,
    span_id: Option<u64>,
}

/// Where a connection goes back on the idle stack.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// On top: handed out next (a fresh connection).
    Top,
    /// At the bottom: it was not used, only checked.
    Bottom,
}

/// Starts the housekeeper if the settings need one, a runtime is there and
/// it is not running yet. Called by [`Pool::new`], the slow checkout path
/// and [`Pool::warm_up`].
pub(super) fn start<M: Manager>(inner: &Arc<Inner<M>>) {
    let up = &inner.upkeep;
    let Some(period) = up.period else { return };
    if up.started.load(Relaxed) || inner.closed.load(Relaxed) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if up.started.swap(true, Relaxed) {
        return;
    }
    let pool = Arc::downgrade(inner);
    let stop = up.stop.clone();
    runtime.spawn(housekeeper(pool, stop, period));
}

/// The housekeeping task: one run at once (to fill `min_idle` at start),
/// then one per period, until stopped or the pool is gone.
async fn housekeeper<M: Manager>(pool: Weak<Inner<M>>, stop: Arc<Notify>, period: Duration) {
    let mut wait = Duration::ZERO;
    let mut delays: Option<Box<dyn Iterator<Item = Duration> + Send>> = None;
    loop {
        tokio::select! {
            _ = stop.notified() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        // Holds the pool only while running, so dropping the last handle
        // ends the task.
        let Some(inner) = pool.upgrade() else { return };
        if inner.closed.load(Relaxed) {
            return;
        }
        let filled = inner.housekeep().await;
        wait = if filled {
            delays = None;
            period
        } else {
            let retry = &inner.settings.retry;
            delays
                .get_or_insert_with(|| Box::new(retry.delays()))
                .next()
                .unwrap_or(retry.max)
                .min(period)
        };
    }
}

impl<M: Manager> Inner<M> {
    /// One housekeeping run; false when `min_idle` could not be filled.
    async fn housekeep(&self) -> bool {
        self.sweep(Instant::now());
        self.report_leaks(Instant::now());
        self.keep_alive().await;
        let filled = self.fill_min_idle().await;
        self.upkeep.runs.fetch_add(1, Relaxed);
        *lock(&self.upkeep.last_run) = Some(SystemTime::now());
        filled
    }

    /// Closes idle connections past their recycle age, known dead, or idle
    /// too long above `min_idle`.
    fn sweep(&self, now: Instant) {
        let s = &self.settings;
        let mut closing = Vec::new();
        {
            let mut idle = lock(&self.idle);
            let mut i = 0;
            while i < idle.len() {
                let t = &idle[i];
                let reason = if t.retire_at.is_some_and(|at| at <= now) {
                    Some(CloseReason::Lifetime)
                } else if self.manager.is_closed(&t.conn) {
                    Some(CloseReason::Broken)
                } else {
                    None
                };
                match reason {
                    Some(reason) => closing.push((idle.remove(i), reason)),
                    None => i += 1,
                }
            }
            if let Some(limit) = s.idle_timeout {
                // Bottom first: the least recently returned.
                let mut i = 0;
                while idle.len() > s.min_idle as usize && i < idle.len() {
                    if now.saturating_duration_since(idle[i].idle_since) >= limit {
                        closing.push((idle.remove(i), CloseReason::IdleTimeout));
                    } else {
                        i += 1;
                    }
                }
            }
        }
        for (tracked, reason) in closing {
            if reason == CloseReason::Broken {
                self.note_disconnect();
            }
            self.close(tracked, reason);
        }
    }

    /// Pings idle connections unused for `keepalive`, one at a time, while
    /// no checkout waits and a slot is free.
    async fn keep_alive(&self) {
        let Some(every) = self.settings.keepalive else {
            return;
        };
        loop {
            if self.closed.load(Relaxed) || self.waiting.load(Relaxed) > 0 {
                return;
            }
            let Some(slot) = self.try_slot() else { return };
            let now = Instant::now();
            let due = {
                let mut idle = lock(&self.idle);
                let due = idle.iter().position(|t| {
                    now.saturating_duration_since(t.last_ok.max(t.idle_since)) >= every
                });
                match due {
                    Some(i) => idle.remove(i),
                    None => return,
                }
            };
            let mut held = Checking {
                inner: self,
                tracked: Some(due),
            };
            self.events.keepalive_sent();
            let result = self.ping_within(&mut held.get().conn).await;
            let mut tracked = held.take();
            match result {
                Ok(()) => {
                    tracked.last_ok = Instant::now();
                    self.put_idle(tracked, End::Bottom);
                }
                Err(cause) => {
                    tracing::warn!(
                        pool = %self.settings.name,
                        cause = %cause,
                        "idle connection failed its keepalive ping; closed"
                    );
                    self.record(cause);
                    self.note_disconnect();
                    self.close(tracked, CloseReason::KeepaliveFailed);
                }
            }
            drop(slot);
        }
    }

    /// One ping within `validation_timeout`; the cause when it fails.
    async fn ping_within(&self, conn: &mut M::Connection) -> Result<(), Cause> {
        let limit = self.settings.validation_timeout;
        match tokio::time::timeout(limit, Box::pin(self.manager.ping(conn))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Cause {
                class: self.manager.classify(&e),
                message: format!("keepalive ping failed: {}", self.manager.error_message(&e)),
            }),
            Err(_) => Err(Cause {
                class: ErrorClass::Timeout,
                message: format!("keepalive ping timed out after {:.2}s", limit.as_secs_f64()),
            }),
        }
    }

    /// Opens connections until `min_idle` are idle, never above
    /// `pool_size` open; false when an attempt failed.
    async fn fill_min_idle(&self) -> bool {
        let s = &self.settings;
        let want = s.min_idle.min(s.pool_size) as usize;
        loop {
            if self.closed.load(Relaxed) || self.upkeep.is_paused() {
                return true;
            }
            let open = self.open.load(Relaxed) + self.connecting.load(Relaxed);
            if lock(&self.idle).len() >= want || open >= s.pool_size {
                return true;
            }
            match Box::pin(self.connect_one()).await {
                Some(Ok(tracked)) => self.put_idle(tracked, End::Top),
                Some(Err(_)) => return false,
                // The pool closed meanwhile.
                None => return true,
            }
        }
    }

    /// Puts a connection the pool holds (not a caller's) on the idle stack,
    /// or closes it when the pool is closed or `pool_size` are idle.
    fn put_idle(&self, tracked: Tracked<M::Connection>, end: End) {
        let reason = {
            let mut idle = lock(&self.idle);
            if self.closed.load(Relaxed) {
                CloseReason::PoolClosed
            } else if idle.len() >= self.settings.pool_size as usize {
                CloseReason::Overflow
            } else {
                match end {
                    End::Top => idle.push(tracked),
                    End::Bottom => idle.insert(0, tracked),
                }
                drop(idle);
                // Checkouts sleeping in backoff take it now.
                self.wake_sleepers();
                return;
            }
        };
        self.close(tracked, reason);
    }

    /// A lease for a new connection, registered for the leak scan; `None`
    /// when leak detection is off.
    pub(super) fn new_lease(&self) -> Option<Arc<Lease>> {
        self.settings.leak_threshold?;
        let lease = Arc::new(Lease {
            out: AtomicBool::new(false),
            reported: AtomicBool::new(false),
            holder: Mutex::new(None),
        });
        let mut leases = lock(&self.upkeep.leases);
        leases.retain(|l| l.strong_count() > 0);
        leases.push(Arc::downgrade(&lease));
        Some(lease)
    }

    /// Reports connections checked out longer than `leak_threshold`, once
    /// per checkout.
    fn report_leaks(&self, now: Instant) {
        let Some(limit) = self.settings.leak_threshold else {
            return;
        };
        let leases: Vec<Arc<Lease>> = {
            let mut leases = lock(&self.upkeep.leases);
            leases.retain(|l| l.strong_count() > 0);
            leases.iter().filter_map(Weak::upgrade).collect()
        };
        for lease in leases {
            if !lease.out.load(Acquire) {
                continue;
            }
            let Some(h) = *lock(&lease.holder) else {
                continue;
            };
            let held = now.saturating_duration_since(h.since);
            if held < limit || lease.reported.swap(true, Relaxed) {
                continue;
            }
            self.events.leak_found();
            tracing::warn!(
                pool = %self.settings.name,
                held_ms = held.as_millis() as u64,
                threshold_ms = limit.as_millis() as u64,
                location = %h.at,
                span = h.span.unwrap_or("none"),
                span_id = h.span_id,
                "connection checked out at {} held for {:.1}s, longer than the leak threshold \
                 ({:.1}s): possible leak",
                h.at,
                held.as_secs_f64(),
                limit.as_secs_f64()
            );
        }
    }
}

/// A connection being pinged; closed (as cancelled) if the housekeeper is
/// dropped mid-ping (runtime shutdown), so the open count stays right.
struct Checking<'a, M: Manager> {
    inner: &'a Inner<M>,
    tracked: Option<Tracked<M::Connection>>,
}

impl<M: Manager> Checking<'_, M> {
    fn get(&mut self) -> &mut Tracked<M::Connection> {
        self.tracked.as_mut().expect("connection present")
    }

    fn take(&mut self) -> Tracked<M::Connection> {
        self.tracked.take().expect("connection present")
    }
}

impl<M: Manager> Drop for Checking<'_, M> {
    fn drop(&mut self) {
        if let Some(tracked) = self.tracked.take() {
            self.inner.close(tracked, CloseReason::Cancelled);
        }
    }
}

impl<C> Tracked<C> {
    /// The connection went back on the idle stack at `now`: its idle time
    /// starts and its lease ends.
    pub(super) fn went_idle(&mut self, now: Instant) {
        self.idle_since = now;
        if let Some(lease) = &self.lease {
            lease.out.store(false, Release);
        }
    }
}

impl<M: Manager> Pooled<M> {
    /// Writes the checkout's caller into the connection's lease (leak
    /// detection on) — the only upkeep work on the checkout path: one
    /// uncontended lock, no clock read (the checkout's own time is kept),
    /// and the current span looked up without entering or cloning it.
    pub(super) fn leased_to(self, at: &'static Location<'static>) -> Self {
        if let Some(lease) = self.tracked.as_ref().and_then(|t| t.lease.as_ref()) {
            // Without any subscriber ever set there is no current span
            // (one load); else the dispatcher is asked, nothing is cloned.
            let (span, span_id) = if tracing::dispatcher::has_been_set() {
                tracing::dispatcher::get_default(|d| {
                    let current = d.current_span();
                    (
                        current.metadata().map(|m| m.name()),
                        current.id().map(|id| id.into_u64()),
                    )
                })
            } else {
                (None, None)
            };
            *lock(&lease.holder) = Some(Holder {
                at,
                since: self.checked_out,
                span,
                span_id,
            });
            lease.reported.store(false, Relaxed);
            // Published last: the scan reads the holder only once it is set.
            lease.out.store(true, Release);
        }
        self
    }
}

impl<M: Manager> Pool<M> {
    /// Opens connections until `n` are open (default: `min_idle`, or
    /// `pool_size` without one; never above `pool_size`), within `within`,
    /// retrying an unavailable server with the shared backoff. Returns the
    /// connections open. Call it before reporting ready, so the first
    /// requests do not pay every connect.
    ///
    /// Fails with [`PoolError::Timeout`] (with the last cause, say a refused
    /// connection) when `within` passes first, [`PoolError::Fatal`] on an
    /// error waiting will not fix, [`PoolError::Closed`] on a closed pool.
    pub async fn warm_up(&self, n: Option<u32>, within: Duration) -> Result<u32, PoolError> {
        let inner = &*self.inner;
        start(&self.inner);
        let s = &inner.settings;
        let default = if s.min_idle > 0 {
            s.min_idle
        } else {
            s.pool_size
        };
        let target = n.unwrap_or(default).min(s.pool_size);
        let started = Instant::now();
        let fill = async {
            let mut delays = None;
            loop {
                if inner.closed.load(Relaxed) {
                    return Err(inner.closed_error());
                }
                let open = inner.open.load(Relaxed);
                if open >= target {
                    return Ok(open);
                }
                let Some(outcome) = Box::pin(inner.connect_one()).await else {
                    return Err(inner.closed_error());
                };
                match outcome {
                    Ok(tracked) => inner.put_idle(tracked, End::Top),
                    Err(failure) if failure.class.is_fatal() => {
                        return Err(PoolError::Fatal {
                            pool: s.name.clone(),
                            target: inner.target.clone(),
                            message: failure.message,
                            source: failure.error,
                        });
                    }
                    Err(_) => {
                        let delay = delays
                            .get_or_insert_with(|| s.retry.delays())
                            .next()
                            .unwrap_or(s.retry.max);
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        };
        match tokio::time::timeout(within, fill).await {
            Ok(result) => result,
            Err(_) => Err(self.timeout_error(within, started.elapsed())),
        }
    }

    /// Pauses checkouts (HikariCP's `suspendPool`), for a maintenance
    /// window: new checkouts wait, within their own `pool_timeout`, until
    /// [`Pool::resume`]. Checked-out connections are not affected.
    pub fn pause(&self) {
        self.inner.upkeep.paused.store(true, Relaxed);
    }

    /// Resumes checkouts after [`Pool::pause`]; waiting ones go on.
    pub fn resume(&self) {
        self.inner.upkeep.paused.store(false, Relaxed);
        self.inner.upkeep.resumed.notify_waiters();
    }

    /// True while the pool is paused.
    pub fn is_paused(&self) -> bool {
        self.inner.upkeep.is_paused()
    }
}

impl<M: Manager> Inner<M> {
    /// Waits while the pool is paused (counted as waiting); returns at once
    /// otherwise, or when the pool closes.
    pub(super) async fn wait_while_paused(&self) {
        if !self.upkeep.is_paused() {
            return;
        }
        let _waiting = InFlight::count(&self.waiting);
        loop {
            let resumed = self.upkeep.resumed.notified();
            tokio::pin!(resumed);
            resumed.as_mut().enable();
            if !self.upkeep.is_paused() || self.closed.load(Relaxed) {
                return;
            }
            resumed.await;
        }
    }
}
