//! Return: what happens to a connection a caller hands back, and how a
//! connection leaves the pool.
//!
//! A returned connection is closed when the caller marked it broken, when
//! the driver knows its socket is closed, or when the pool is closed; it is
//! closed as *overflow* when `pool_size` connections are already idle
//! (SQLAlchemy's `max_overflow`: extra connections live only while the load
//! needs them), unless checkouts are waiting for one: then it is kept for
//! them. Otherwise it goes on top of the idle stack. The slot is released
//! last, so the waiter it wakes finds the connection there.
//!
//! Before any of that, the backend says what the caller left behind
//! ([`Manager::on_return`], free: no I/O). A clean connection goes on at
//! once. One that needs a reset (`reset_on_return`: an open transaction, a
//! `MULTI`, a request still in flight) is reset at once in a task of its
//! own ([`Manager::reset`], bounded by `validation_timeout`), still holding
//! its slot, so no one else can get it before the reset is over; then it
//! goes on as above, or is closed if the reset failed.

use super::manager::Returned;
use super::{Inner, Manager, Tracked};
use crate::status::CloseReason;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

impl<M: Manager> Inner<M> {
    /// Takes a connection back from a caller.
    pub(super) fn give_back(
        self: &Arc<Self>,
        mut tracked: Tracked<M::Connection>,
        broken: bool,
        checked_out: Instant,
    ) {
        let held = checked_out.elapsed();
        if broken || self.closed.load(Relaxed) {
            return self.put_back(tracked, broken, held);
        }
        match self.manager.on_return(&mut tracked.conn) {
            Returned::Clean => self.put_back(tracked, false, held),
            Returned::Close => self.drop_returned(tracked, CloseReason::InFlight, held),
            how => match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    let inner = self.clone();
                    rt.spawn(async move { inner.reset(tracked, how, held).await });
                }
                // Dropped outside a runtime: nothing can run the reset.
                Err(_) => self.drop_returned(tracked, CloseReason::ResetFailed, held),
            },
        }
    }

    /// Runs the backend's reset of a returned connection (see the module
    /// docs), then puts it back, or closes it if the reset failed.
    async fn reset(&self, mut tracked: Tracked<M::Connection>, how: Returned, held: Duration) {
        let bound = self.settings.validation_timeout;
        let run = tokio::time::timeout(bound, self.manager.reset(&mut tracked.conn, how));
        match self.unless_closed(run).await {
            Some(Ok(Ok(did))) => {
                self.events.reset_done(did);
                tracked.last_ok = Instant::now();
                self.put_back(tracked, false, held);
            }
            None => self.drop_returned(tracked, CloseReason::PoolClosed, held),
            Some(failed) => {
                let error = match &failed {
                    Ok(Err(e)) => self.manager.error_message(e),
                    _ => format!("no answer within {bound:?}"),
                };
                tracing::debug!(
                    pool = %self.settings.name,
                    %error,
                    "reset on return failed: connection closed"
                );
                let reason = match how {
                    Returned::Cancel => CloseReason::InFlight,
                    _ => CloseReason::ResetFailed,
                };
                self.drop_returned(tracked, reason, held);
            }
        }
    }

    /// Closes a returned connection for `reason` and releases its slot.
    /// The return is counted here, once the connection is no longer in use
    /// (`checkouts = returns + in_use` holds at every moment).
    fn drop_returned(&self, tracked: Tracked<M::Connection>, reason: CloseReason, held: Duration) {
        self.events.returned(held);
        self.in_use.fetch_sub(1, Relaxed);
        self.close(tracked, reason);
        self.release_slot();
    }

    /// Puts a returned (and, if it needed it, reset) connection back on the
    /// idle stack, or closes it (see the module docs).
    fn put_back(&self, mut tracked: Tracked<M::Connection>, broken: bool, held: Duration) {
        let now = Instant::now();
        tracked.went_idle(now);
        self.events.returned(held);
        self.in_use.fetch_sub(1, Relaxed);
        let reason = if broken {
            CloseReason::Broken
        } else if self.manager.is_closed(&tracked.conn) {
            self.note_disconnect();
            CloseReason::Broken
        } else {
            let mut idle = super::lock(&self.idle);
            // Checked under the idle lock, which `Pool::close` holds while it
            // sets the flag and empties the stack: a return racing `close`
            // either lands before it (and is closed with the stack) or sees
            // the flag.
            if self.closed.load(Relaxed) {
                drop(idle);
                CloseReason::PoolClosed
            } else if idle.len() < self.settings.pool_size as usize + self.demand() {
                idle.push(tracked);
                drop(idle);
                self.release_slot();
                self.wake_sleepers();
                return;
            } else {
                drop(idle);
                CloseReason::Overflow
            }
        };
        self.close(tracked, reason);
        self.release_slot();
    }

    /// Checkouts that will take an idle connection as soon as one is there:
    /// those queued for a slot and those sleeping in backoff. A connection
    /// returned while they wait is kept for them even beyond `pool_size`,
    /// rather than closed as overflow and reopened by the waiter.
    fn demand(&self) -> usize {
        (self.waiting.load(Relaxed) + self.backing_off.load(Relaxed)) as usize
    }

    /// Closes a connection the pool holds.
    pub(super) fn close(&self, mut tracked: Tracked<M::Connection>, reason: CloseReason) {
        self.count_closed(reason, tracked.created);
        self.manager.on_close(&mut tracked.conn);
        drop(tracked);
    }

    /// The bookkeeping of one connection leaving the pool: open gauge,
    /// counters, metrics and the debug event, in one place.
    pub(super) fn count_closed(&self, reason: CloseReason, created: Instant) {
        let open = self.open.fetch_sub(1, Relaxed).saturating_sub(1);
        self.events.closed(reason);
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
}
