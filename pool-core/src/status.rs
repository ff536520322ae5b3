//! Pool snapshots and counters.
//!
//! [`PoolStatus`] is what health endpoints, metrics and timeout errors show:
//! the gauges (open, idle, in use, overflow in use, waiting) and the
//! monotonically growing [`PoolCounters`]. Counters reconcile: every checkout
//! ends in exactly one return or discard, so
//! `checkouts == returns + discards + (connections still checked out)`.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The one table of close reasons: each row is the enum variant, the field
/// of [`ClosedCounts`] (also its name in logs, metrics and JSON) and its doc.
/// The enum, [`CloseReason::ALL`], [`CloseReason::as_str`], [`ClosedCounts`]
/// and the counters' indices are all generated from it, so they cannot drift
/// apart.
macro_rules! close_reasons {
    ($( $(#[doc = $doc:literal])* $variant:ident => $field:ident, )+) => {
        /// Why the pool closed a connection.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum CloseReason {
            $( $(#[doc = $doc])* $variant, )+
        }

        impl CloseReason {
            /// Every reason, in table order (the order of [`CloseReason::index`]).
            pub const ALL: [CloseReason; close_reasons!(@count $($variant)+)] =
                [$(CloseReason::$variant),+];

            /// A short lowercase name, as used in logs, metrics and JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( CloseReason::$variant => stringify!($field), )+
                }
            }

            /// Its position in [`CloseReason::ALL`], for arrays of counters.
            pub fn index(self) -> usize {
                self as usize
            }
        }

        /// Connections closed, by reason.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
        pub struct ClosedCounts {
            $(
                #[doc = concat!("See [`CloseReason::", stringify!($variant), "`].")]
                pub $field: u64,
            )+
        }

        impl ClosedCounts {
            /// The count for one reason.
            pub fn get(&self, reason: CloseReason) -> u64 {
                match reason {
                    $( CloseReason::$variant => self.$field, )+
                }
            }

            /// Builds the counts from values indexed by [`CloseReason::index`].
            fn from_indexed(values: [u64; CloseReason::ALL.len()]) -> Self {
                ClosedCounts {
                    $( $field: values[CloseReason::$variant.index()], )+
                }
            }
        }
    };
    (@count $($x:ident)+) => { [$(close_reasons!(@one $x)),+].len() };
    (@one $x:ident) => { () };
}

close_reasons! {
    /// The connection was found dead (closed socket, or the caller's error
    /// marked it broken).
    Broken => broken,
    /// It was older than `pool_recycle` at checkout.
    Recycled => recycled,
    /// It was returned while `pool_size` connections were already idle.
    Overflow => overflow,
    /// Its validation ping failed or timed out.
    ValidationFailed => validation_failed,
    /// It was last proven good before a disconnect the pool saw, so it was
    /// closed rather than trusted (SQLAlchemy's invalidation).
    Invalidated => invalidated,
    /// The caller took it out of the pool.
    Detached => detached,
    /// The checkout that held it was cancelled or timed out while
    /// validating it.
    Cancelled => cancelled,
    /// The pool was closed.
    PoolClosed => pool_closed,
    /// The housekeeper closed it: idle longer than `idle_timeout` while more
    /// than `min_idle` connections were idle.
    IdleTimeout => idle_timeout,
    /// The housekeeper closed it while idle: older than `pool_recycle`.
    Lifetime => lifetime,
    /// Its background keepalive ping failed or timed out.
    KeepaliveFailed => keepalive_failed,
    /// It came back with a request still in flight that could not be ended
    /// cheaply (a Redis blocking command, a PostgreSQL cancel that did not
    /// end the request in time).
    InFlight => in_flight,
    /// Its reset on return (`reset_on_return`) failed or timed out.
    ResetFailed => reset_failed,
}

impl ClosedCounts {
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
    /// Checkouts failed at once because the server is down (`fail_fast`).
    pub failed_fast: u64,
    /// Connections handed back to the pool (kept or closed on return).
    pub returns: u64,
    /// Connection attempts.
    pub connect_attempts: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Connection attempts abandoned midway (the checkout was cancelled or
    /// the pool closed): `connect_attempts = created + connect_failures +
    /// connects_cancelled`.
    pub connects_cancelled: u64,
    /// Connections opened.
    pub created: u64,
    /// Validation pings sent.
    pub validations: u64,
    /// Checkouts that skipped validation inside the bypass window.
    pub validations_skipped: u64,
    /// Connections closed, by reason.
    pub closed: ClosedCounts,
    /// Checkouts held longer than the leak threshold (each reported once).
    pub leaks: u64,
    /// Background keepalive pings sent.
    pub keepalives: u64,
    /// Returned connections reset with a round trip (a transaction rolled
    /// back, a `MULTI` discarded, `DISCARD ALL`, ...); a clean return is
    /// not counted.
    pub resets: u64,
    /// Returned connections whose request still in flight was cancelled
    /// server-side, then reused (the others are closed: `closed.in_flight`).
    pub cancels: u64,
}

/// What the housekeeper did last (present when the pool has one).
#[derive(Debug, Clone, Default, Serialize)]
pub struct HousekeeperStatus {
    /// Runs so far.
    pub runs: u64,
    /// When the last run ended (wall clock), `None` before the first.
    pub last_run: Option<std::time::SystemTime>,
    /// Time between runs, in seconds.
    pub period: f64,
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
    /// The housekeeper, `None` when no upkeep feature is on.
    pub housekeeper: Option<HousekeeperStatus>,
    /// True while checkouts are paused ([`Pool::pause`](crate::Pool::pause)).
    pub paused: bool,
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
    pub failed_fast: AtomicU64,
    pub returns: AtomicU64,
    pub connect_attempts: AtomicU64,
    pub connect_failures: AtomicU64,
    pub connects_cancelled: AtomicU64,
    pub created: AtomicU64,
    pub validations: AtomicU64,
    pub validations_skipped: AtomicU64,
    pub leaks: AtomicU64,
    pub keepalives: AtomicU64,
    pub resets: AtomicU64,
    pub cancels: AtomicU64,
    closed: [AtomicU64; CloseReason::ALL.len()],
}

impl Stats {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub fn closed(&self, reason: CloseReason) {
        self.closed[reason.index()].fetch_add(1, Relaxed);
    }

    pub fn wait(&self, us: u64) {
        self.wait_time_us.fetch_add(us, Relaxed);
        self.max_wait_us.fetch_max(us, Relaxed);
    }

    pub fn snapshot(&self) -> PoolCounters {
        PoolCounters {
            checkouts: self.checkouts.load(Relaxed),
            checkouts_waited: self.checkouts_waited.load(Relaxed),
            wait_time_us: self.wait_time_us.load(Relaxed),
            max_wait_us: self.max_wait_us.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            fatal_errors: self.fatal_errors.load(Relaxed),
            failed_fast: self.failed_fast.load(Relaxed),
            returns: self.returns.load(Relaxed),
            connect_attempts: self.connect_attempts.load(Relaxed),
            connect_failures: self.connect_failures.load(Relaxed),
            connects_cancelled: self.connects_cancelled.load(Relaxed),
            created: self.created.load(Relaxed),
            validations: self.validations.load(Relaxed),
            validations_skipped: self.validations_skipped.load(Relaxed),
            closed: ClosedCounts::from_indexed(self.closed.each_ref().map(|c| c.load(Relaxed))),
            leaks: self.leaks.load(Relaxed),
            keepalives: self.keepalives.load(Relaxed),
            resets: self.resets.load(Relaxed),
            cancels: self.cancels.load(Relaxed),
        }
    }
}
