//! [`Pooled`]: the handle a caller holds while a connection is checked out.
//!
//! It dereferences to the backend's connection and gives it back on drop,
//! so a caller cannot forget to return it, and a cancelled task returns it
//! too. What the caller learns about the connection flows back through it:
//! [`Pooled::observe`] passes results through the backend's classifier,
//! marking the connection broken on a disconnect and renewing its bypass
//! window when the server answered.

use super::{Inner, Manager, Tracked};
use crate::error::Cause;
use crate::status::CloseReason;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A checked-out connection. Dereferences to the backend's connection;
/// dropping it returns the connection to the pool.
pub struct Pooled<M: Manager> {
    pub(super) pool: Arc<Inner<M>>,
    pub(super) tracked: Option<Tracked<M::Connection>>,
    pub(super) broken: bool,
    /// When the checkout completed, for the usage-time histogram.
    pub(super) checked_out: Instant,
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
                        message: self.pool.manager.error_message(e),
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
        let mut tracked = self.tracked.take().expect("pooled connection present");
        let inner = &self.pool;
        inner.manager.on_close(&mut tracked.conn);
        inner.events.returned(self.checked_out.elapsed());
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
