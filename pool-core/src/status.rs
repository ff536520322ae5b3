//! Pool snapshots and counters.
//!
//! [`PoolStatus`] is what health endpoints, metrics and timeout errors show:
//! the gauges (open, idle, in use, overflow in use, waiting) and the
//! monotonically growing [`PoolCounters`]. Counters reconcile: every checkout
//! ends in exactly one return or discard, so
//! `checkouts == returns + discards + (connections still checked out)`.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why the pool closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The connection was found dead (closed socket, or the caller's error
    /// marked it broken).
    Broken,
    /// It was older than `pool_recycle` at checkout.
    Recycled,
    /// It was returned while `pool_size` connections were already idle.
    Overflow,
    /// Its validation ping failed or timed out.
    ValidationFailed,
    /// Pre-ping is off and a disconnect was seen after its last use, so it
    /// was closed rather than trusted (SQLAlchemy's invalidation).
    Invalidated,
    /// The caller took it out of the pool.
    Detached,
    /// The checkout that held it was cancelled or timed out while
    /// validating it.
    Cancelled,
    /// The pool was closed.
    PoolClosed,
}

impl CloseReason {
    /// Every reason, for metrics that pre-register their series.
    pub const ALL: [CloseReason; 8] = [
        CloseReason::Broken,
        CloseReason::Recycled,
        CloseReason::Overflow,
        CloseReason::ValidationFailed,
        CloseReason::Invalidated,
        CloseReason::Detached,
        CloseReason::Cancelled,
        CloseReason::PoolClosed,
    ];

    /// A short lowercase name, as used in logs, metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Broken => "broken",
            CloseReason::Recycled => "recycled",
            CloseReason::Overflow => "overflow",
            CloseReason::ValidationFailed => "validation_failed",
            CloseReason::Invalidated => "invalidated",
            CloseReason::Detached => "detached",
            CloseReason::Cancelled => "cancelled",
            CloseReason::PoolClosed => "pool_closed",
        }
    }
}

/// Connections closed, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClosedCounts {
    /// See [`CloseReason::Broken`].
    pub broken: u64,
    /// See [`CloseReason::Recycled`].
    pub recycled: u64,
    /// See [`CloseReason::Overflow`].
    pub overflow: u64,
    /// See [`CloseReason::ValidationFailed`].
    pub validation_failed: u64,
    /// See [`CloseReason::Invalidated`].
    pub invalidated: u64,
    /// See [`CloseReason::Detached`].
    pub detached: u64,
    /// See [`CloseReason::Cancelled`].
    pub cancelled: u64,
    /// See [`CloseReason::PoolClosed`].
    pub pool_closed: u64,
}

impl ClosedCounts {
    /// The count for one reason.
    pub fn get(&self, reason: CloseReason) -> u64 {
        match reason {
            CloseReason::Broken => self.broken,
            CloseReason::Recycled => self.recycled,
            CloseReason::Overflow => self.overflow,
            CloseReason::ValidationFailed => self.validation_failed,
            CloseReason::Invalidated => self.invalidated,
            CloseReason::Detached => self.detached,
            CloseReason::Cancelled => self.cancelled,
            CloseReason::PoolClosed => self.pool_closed,
        }
    }

    /// All closes together.
    pub fn total(&self) -> u64 {
        CloseReason::ALL.iter().map(|r| self.get(*r)).sum()
    }
}

/// Monotonic counters since the pool was created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PoolCounters {
    /// Successful checkouts.
    pub checkouts: u64,
    /// Checkouts that had to queue for a free slot.
    pub checkouts_waited: u64,
    /// Total time successful and failed checkouts took, in microseconds.
    pub wait_time_us: u64,
    /// The longest checkout, in microseconds.
    pub max_wait_us: u64,
    /// Checkouts that ran out of `pool_timeout`.
    pub timeouts: u64,
    /// Checkouts that stopped on a fatal error (wrong password, ...).
    pub fatal_errors: u64,
    /// Connections handed back to the pool (kept or closed on return).
    pub returns: u64,
    /// Connection attempts.
    pub connect_attempts: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Connections opened.
    pub created: u64,
    /// Validation pings sent.
    pub validations: u64,
    /// Checkouts that skipped validation inside the bypass window.
    pub validations_skipped: u64,
    /// Connections closed, by reason.
    pub closed: ClosedCounts,
}

/// A point-in-time view of a pool.
#[derive(Debug, Clone, Serialize)]
pub struct PoolStatus {
    /// The pool's name.
    pub name: String,
    /// `pool_size`: connections kept open.
    pub pool_size: u32,
    /// `max_overflow` (`-1` = unlimited).
    pub max_overflow: i64,
    /// `pool_size + max_overflow`, `None` when unlimited.
    pub max_size: Option<u32>,
    /// `pool_timeout` in seconds.
    pub pool_timeout: f64,
    /// Connections open now (idle + in use).
    pub open: u32,
    /// Connections idle in the pool.
    pub idle: u32,
    /// Connections checked out.
    pub in_use: u32,
    /// Open connections beyond `pool_size`.
    pub overflow_in_use: u32,
    /// Checkouts queued for a free slot.
    pub waiting: u32,
    /// Connection attempts in flight.
    pub connecting: u32,
    /// Counters since start.
    pub counters: PoolCounters,
}

/// The atomic counters behind [`PoolCounters`].
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub checkouts: AtomicU64,
    pub checkouts_waited: AtomicU64,
    pub wait_time_us: AtomicU64,
    pub max_wait_us: AtomicU64,
    pub timeouts: AtomicU64,
    pub fatal_errors: AtomicU64,
    pub returns: AtomicU64,
    pub connect_attempts: AtomicU64,
    pub connect_failures: AtomicU64,
    pub created: AtomicU64,
    pub validations: AtomicU64,
    pub validations_skipped: AtomicU64,
    closed: [AtomicU64; 8],
}

impl Stats {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub fn closed(&self, reason: CloseReason) {
        let i = CloseReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.closed[i].fetch_add(1, Relaxed);
    }

    pub fn wait(&self, us: u64) {
        self.wait_time_us.fetch_add(us, Relaxed);
        self.max_wait_us.fetch_max(us, Relaxed);
    }

    pub fn snapshot(&self) -> PoolCounters {
        let c = |i: usize| self.closed[i].load(Relaxed);
        PoolCounters {
            checkouts: self.checkouts.load(Relaxed),
            checkouts_waited: self.checkouts_waited.load(Relaxed),
            wait_time_us: self.wait_time_us.load(Relaxed),
            max_wait_us: self.max_wait_us.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            fatal_errors: self.fatal_errors.load(Relaxed),
            returns: self.returns.load(Relaxed),
            connect_attempts: self.connect_attempts.load(Relaxed),
            connect_failures: self.connect_failures.load(Relaxed),
            created: self.created.load(Relaxed),
            validations: self.validations.load(Relaxed),
            validations_skipped: self.validations_skipped.load(Relaxed),
            closed: ClosedCounts {
                broken: c(0),
                recycled: c(1),
                overflow: c(2),
                validation_failed: c(3),
                invalidated: c(4),
                detached: c(5),
                cancelled: c(6),
                pool_closed: c(7),
            },
        }
    }
}
