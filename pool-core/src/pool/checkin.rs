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

use super::{Inner, Manager, Tracked};
use crate::status::CloseReason;
use std::sync::atomic::Ordering::Relaxed;
use tokio::time::Instant;

impl<M: Manager> Inner<M> {
    /// Takes a connection back from a caller.
    pub(super) fn give_back(
        &self,
        mut tracked: Tracked<M::Connection>,
        broken: bool,
        checked_out: Instant,
    ) {
        let now = Instant::now();
        tracked.went_idle(now);
        self.events.returned(now.duration_since(checked_out));
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
