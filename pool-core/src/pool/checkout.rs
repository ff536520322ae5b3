//! Checkout: admission, reuse, connect, all inside `pool_timeout`.
//!
//! The common case, a free slot and an idle connection inside its bypass
//! window, is served synchronously by [`Pool::try_get_now`]: no future, no
//! timer, no span. Everything else goes through [`Pool::checkout`], bounded
//! as a whole by one deadline so `pool_timeout` never fires early (a waiter
//! that gets a slot late still has the rest of its time to connect, as
//! SQLAlchemy's `test_timeout_race` demands) and never late.
//!
//! A checkout owns what it holds at every await point through guards (the
//! [`Slot`], the [`Held`] connection being vetted), so dropping the future
//! anywhere (the caller's own timeout, a cancelled task) gives everything
//! back and keeps the counters exact.

use super::admission::{InFlight, Slot};
use super::events::Outcome;
use super::policy::Verdict;
use super::{lock, Inner, Manager, Pool, Pooled, Tracked};
use crate::error::PoolError;
use crate::status::CloseReason;
use std::future::Future;
use std::panic::Location;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

impl<M: Manager> Pool<M> {
    /// Checks a connection out, waiting at most `pool_timeout`.
    ///
    /// The caller's location is kept for leak detection
    /// (`leak_threshold`), so this is a `#[track_caller]` function returning
    /// the checkout's future.
    #[track_caller]
    pub fn get(&self) -> impl Future<Output = Result<Pooled<M>, PoolError>> + Send + '_ {
        self.get_timeout(self.inner.settings.pool_timeout)
    }

    /// Checks a connection out, waiting at most `timeout` (a health probe
    /// uses a short one so it never queues behind a busy pool for long).
    ///
    /// Every checkout runs in a `checkout` span (debug level: free unless a
    /// subscriber enables it) that records its `wait_us` and `outcome`
    /// (`ok`, `timeout`, `fatal`, `closed`); one slower than
    /// `slow_checkout` is logged as a warning.
    #[track_caller]
    pub fn get_timeout(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<Pooled<M>, PoolError>> + Send + '_ {
        let at = Location::caller();
        async move {
            // Fast path: a free slot and an idle connection that needs no
            // ping are handed out without a future, a timer, a span or a
            // second clock read (the wait is zero).
            if let Some(pooled) = self.try_get_now() {
                self.inner.events.checked_out_at_once();
                return Ok(pooled.leased_to(at));
            }
            Ok(self.get_slow(timeout).await?.leased_to(at))
        }
    }

    /// A checkout that cannot wait: `None` unless a slot is free and the
    /// most recently returned idle connection may be handed out unpinged.
    fn try_get_now(&self) -> Option<Pooled<M>> {
        let inner = &*self.inner;
        if inner.closed.load(Relaxed) || inner.upkeep.is_paused() {
            return None;
        }
        let slot = inner.try_slot()?;
        let now = Instant::now();
        let tracked = {
            let mut idle = lock(&inner.idle);
            match inner.verdict(idle.last()?, now) {
                Verdict::Use => {}
                Verdict::UseUnpinged => inner.events.validation_skipped(),
                // Anything else takes the full path (the slot is released
                // on drop).
                Verdict::Ping | Verdict::Close(_) => return None,
            }
            idle.pop()?
        };
        Some(self.hand_out(tracked, slot, now))
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
        let deadline = start
            .checked_add(timeout)
            .unwrap_or(start + Duration::from_secs(365 * 24 * 3600));
        // Wrapping the future moves it (a large memcpy): only when a
        // subscriber wants the span.
        let checkout = self.checkout(deadline);
        tokio::pin!(checkout);
        let outer = if span.is_disabled() {
            tokio::time::timeout_at(deadline, &mut checkout).await
        } else {
            tokio::time::timeout_at(deadline, &mut checkout)
                .instrument(span.clone())
                .await
        };
        let result = match outer {
            Ok(result) => result,
            // The error is built while the checkout still counts itself
            // (as waiting, say), so its snapshot includes it.
            Err(_) => Err(self.timeout_error(timeout, start.elapsed())),
        };
        // A successful checkout carries the time it ended (read by `vet` or
        // `connect_one`): no second clock read.
        let end = match &result {
            Ok(p) => p.checked_out,
            Err(_) => Instant::now(),
        };
        let waited = end.saturating_duration_since(start);
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(PoolError::Timeout { .. }) => Outcome::Timeout,
            Err(PoolError::Fatal { .. }) => Outcome::Fatal,
            Err(PoolError::Unavailable { .. }) => Outcome::Unavailable,
            Err(PoolError::Closed(_)) => Outcome::Closed,
        };
        inner.events.checkout_ended(outcome, waited);
        if !span.is_disabled() {
            // `record` looks the field up by name even on a disabled span.
            span.record("wait_us", waited.as_micros() as u64);
            span.record("outcome", outcome.as_str());
        }
        if waited >= inner.settings.slow_checkout {
            tracing::warn!(
                pool = %inner.settings.name,
                waited_ms = waited.as_millis() as u64,
                ok = result.is_ok(),
                outcome = outcome.as_str(),
                "slow checkout"
            );
        }
        result
    }

    /// The full checkout: a slot, then an idle connection that passes the
    /// policy, else a new one, retrying unavailable servers with backoff.
    /// A closed pool ends it at any await point.
    async fn checkout(&self, deadline: Instant) -> Result<Pooled<M>, PoolError> {
        let inner = &self.inner;
        super::upkeep::start(inner);
        inner.wait_while_paused().await;
        if inner.closed.load(Relaxed) {
            return Err(inner.closed_error());
        }
        let slot = inner.acquire_slot().await?;
        let mut delays = None;
        let mut last_attempt_made = false;
        loop {
            if inner.closed.load(Relaxed) {
                return Err(inner.closed_error());
            }
            if let Some(tracked) = inner.pop_idle() {
                let mut held = Held {
                    inner,
                    tracked: Some(tracked),
                };
                match inner.vet(held.get()).await {
                    Ok(now) => return self.hand_out_open(held.take(), slot, now),
                    Err(reason) => {
                        inner.close(held.take(), reason);
                        continue;
                    }
                }
            }
            if let Some(down) = inner.fail_fast_error() {
                return Err(down);
            }
            let Some(attempt) = Box::pin(inner.connect_one()).await else {
                return Err(inner.closed_error());
            };
            match attempt {
                Ok(tracked) => {
                    let created = tracked.created;
                    return self.hand_out_open(tracked, slot, created);
                }
                Err(failure) if failure.class.is_fatal() => {
                    return Err(PoolError::Fatal {
                        pool: inner.settings.name.clone(),
                        target: inner.target.clone(),
                        message: failure.message,
                        source: failure.error,
                    });
                }
                Err(_) if inner.settings.fail_fast => {
                    let retry_in = inner.settings.retry.bound(inner.down_streak.load(Relaxed));
                    return Err(inner.unavailable_error(retry_in));
                }
                Err(_) => {
                    let delay = delays
                        .get_or_insert_with(|| inner.settings.retry.delays())
                        .next()
                        .unwrap_or(inner.settings.retry.max);
                    let wake_at = inner.next_attempt_at(
                        Instant::now(),
                        delay,
                        deadline,
                        &mut last_attempt_made,
                    );
                    inner.back_off_until(wake_at).await;
                }
            }
        }
    }

    /// Hands a connection out unless the pool closed meanwhile (on another
    /// thread); then it goes back, and is closed with the pool.
    fn hand_out_open(
        &self,
        tracked: Tracked<M::Connection>,
        slot: Slot<'_, M>,
        now: Instant,
    ) -> Result<Pooled<M>, PoolError> {
        let pooled = self.hand_out(tracked, slot, now);
        if self.inner.closed.load(Relaxed) {
            drop(pooled);
            return Err(self.inner.closed_error());
        }
        Ok(pooled)
    }

    /// Turns a vetted or new connection and its slot into a [`Pooled`],
    /// checked out at `now`.
    fn hand_out(
        &self,
        tracked: Tracked<M::Connection>,
        slot: Slot<'_, M>,
        now: Instant,
    ) -> Pooled<M> {
        slot.keep();
        self.inner.in_use.fetch_add(1, Relaxed);
        Pooled {
            pool: self.inner.clone(),
            tracked: Some(tracked),
            broken: false,
            checked_out: now,
        }
    }

    pub(super) fn timeout_error(&self, timeout: Duration, waited: Duration) -> PoolError {
        PoolError::Timeout {
            timeout,
            waited,
            status: Box::new(self.status()),
            last_cause: lock(&self.inner.last_error)
                .as_ref()
                .map(|e| e.cause.clone()),
        }
    }
}

impl<M: Manager> Inner<M> {
    fn pop_idle(&self) -> Option<Tracked<M::Connection>> {
        lock(&self.idle).pop()
    }

    /// Sleeps in backoff until `wake_at`, or until woken: by a returned
    /// connection (taken on the next turn of the loop), a successful connect
    /// elsewhere (the server is back) or the pool closing.
    async fn back_off_until(&self, wake_at: Instant) {
        let _sleeping = InFlight::count(&self.backing_off);
        let woken = self.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        // Registered first, checked second: a return or close that came
        // in between is not missed.
        if self.closed.load(Relaxed) || !lock(&self.idle).is_empty() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake_at) => {}
            _ = woken => {}
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
            let reason = if self.inner.closed.load(Relaxed) {
                CloseReason::PoolClosed
            } else {
                CloseReason::Cancelled
            };
            self.inner.close(tracked, reason);
        }
    }
}
