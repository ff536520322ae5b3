//! Admission: who may hold one of the pool's `pool_size + max_overflow` slots.
//!
//! A slot is a permit of a FIFO-fair [`tokio::sync::Semaphore`]. Taking the
//! slot first, before looking at idle connections, is what makes the pool
//! fair under exhaustion: a returned slot goes to the longest waiter, and a
//! task that did not queue cannot barge ahead of one that did (bb8's
//! barging starves waiters; deadpool's semaphore does not). Permits are
//! `forget`-ten and given back by hand so a [`Pooled`](super::Pooled) does
//! not borrow the semaphore. With unlimited overflow there is no semaphore
//! and every checkout is admitted at once.

use super::{Inner, Manager};
use crate::error::PoolError;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// A slot taken from the admission semaphore; released on drop unless handed
/// to a [`Pooled`](super::Pooled).
pub(super) struct Slot<'a, M: Manager> {
    inner: &'a Inner<M>,
    armed: bool,
}

impl<M: Manager> Slot<'_, M> {
    /// The slot now belongs to a checked-out connection, which releases it
    /// on return.
    pub(super) fn keep(mut self) {
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

impl<M: Manager> Inner<M> {
    /// A slot if one is free now, without waiting.
    pub(super) fn try_slot(&self) -> Option<Slot<'_, M>> {
        let armed = match &self.slots {
            Some(slots) => {
                slots.try_acquire().ok()?.forget();
                true
            }
            None => false,
        };
        Some(Slot { inner: self, armed })
    }

    /// Takes a slot, queueing (FIFO) while all are held. Fails once the pool
    /// is closed.
    pub(super) async fn acquire_slot(&self) -> Result<Slot<'_, M>, PoolError> {
        let Some(slots) = &self.slots else {
            return Ok(Slot {
                inner: self,
                armed: false,
            });
        };
        match slots.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(self.closed_error()),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                self.events.checkout_queued();
                let _waiting = InFlight::count(&self.waiting);
                match slots.acquire().await {
                    Ok(permit) => permit.forget(),
                    Err(_) => return Err(self.closed_error()),
                }
            }
        }
        Ok(Slot {
            inner: self,
            armed: true,
        })
    }

    /// Gives a slot back: the longest waiter gets it.
    pub(super) fn release_slot(&self) {
        if let Some(slots) = &self.slots {
            slots.add_permits(1);
        }
    }
}

/// Counts something in flight (a queued checkout, a connect) for as long as
/// it lives, so a cancelled future cannot leave the gauge too high.
pub(super) struct InFlight<'a>(&'a AtomicU32);

impl<'a> InFlight<'a> {
    /// Adds one to `counter` until dropped.
    pub(super) fn count(counter: &'a AtomicU32) -> Self {
        counter.fetch_add(1, Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}
