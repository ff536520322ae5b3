//! The one place that records what happens in a pool.
//!
//! Every event (a checkout ending, a connection opened or closed, a
//! validation) is counted in two sinks: the pool's own atomic counters, read
//! by [`Pool::status`](super::Pool::status) for health reports and timeout
//! errors, and the `metrics` facade for whatever exporter the application
//! installed. Recording both here, one method per event, keeps them equal by
//! construction: the engine never touches either sink directly.

use crate::classify::ErrorClass;
use crate::metrics::PoolMetrics;
use crate::status::{CloseReason, PoolCounters, PoolStatus, Stats};
use std::time::Duration;

/// How a checkout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A connection was handed out.
    Ok,
    /// The checkout ran out of time.
    Timeout,
    /// A fatal error stopped it.
    Fatal,
    /// It failed at once: `fail_fast` and the server is down.
    Unavailable,
    /// The pool was closed.
    Closed,
}

impl Outcome {
    /// The name recorded in the `checkout` span and the slow-checkout log.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Timeout => "timeout",
            Outcome::Fatal => "fatal",
            Outcome::Unavailable => "unavailable",
            Outcome::Closed => "closed",
        }
    }
}

/// A pool's counters and metric handles, written only through the methods
/// below.
pub(crate) struct Events {
    stats: Stats,
    metrics: PoolMetrics,
}

impl Events {
    /// Registers the metric handles of the pool `name`.
    pub(crate) fn new(name: &str) -> Self {
        Events {
            stats: Stats::default(),
            metrics: PoolMetrics::new(name),
        }
    }

    /// A checkout that found a free idle connection without waiting.
    pub(crate) fn checked_out_at_once(&self) {
        Stats::inc(&self.stats.checkouts);
        self.metrics.checkouts.increment(1);
        self.metrics.checkout_wait.record(Duration::ZERO);
    }

    /// A checkout that went the slow way ended after `waited`.
    pub(crate) fn checkout_ended(&self, outcome: Outcome, waited: Duration) {
        self.stats.wait(waited.as_micros() as u64);
        self.metrics.checkout_wait.record(waited);
        match outcome {
            Outcome::Ok => {
                Stats::inc(&self.stats.checkouts);
                self.metrics.checkouts.increment(1);
            }
            Outcome::Timeout => {
                Stats::inc(&self.stats.timeouts);
                self.metrics.timeouts.increment(1);
            }
            Outcome::Fatal => {
                Stats::inc(&self.stats.fatal_errors);
                self.metrics.checkout_errors.increment(1);
            }
            Outcome::Unavailable => {
                Stats::inc(&self.stats.failed_fast);
                self.metrics.failed_fast.increment(1);
            }
            Outcome::Closed => {}
        }
    }

    /// A checkout found every slot taken and queued.
    pub(crate) fn checkout_queued(&self) {
        Stats::inc(&self.stats.checkouts_waited);
    }

    /// A caller handed its connection back (kept, closed or detached) after
    /// holding it for `held`.
    pub(crate) fn returned(&self, held: Duration) {
        Stats::inc(&self.stats.returns);
        self.metrics.usage.record(held);
    }

    /// A connection attempt started.
    pub(crate) fn connect_started(&self) {
        Stats::inc(&self.stats.connect_attempts);
    }

    /// A connection attempt succeeded after `took`.
    pub(crate) fn connected(&self, took: Duration) {
        Stats::inc(&self.stats.created);
        self.metrics.created.increment(1);
        self.metrics.create_time.record(took);
    }

    /// A connection attempt failed with an error of `class`.
    pub(crate) fn connect_failed(&self, class: ErrorClass) {
        Stats::inc(&self.stats.connect_failures);
        self.metrics.connect_failure(class);
    }

    /// A connection attempt was abandoned midway.
    pub(crate) fn connect_cancelled(&self) {
        Stats::inc(&self.stats.connects_cancelled);
    }

    /// A validation ping was sent.
    pub(crate) fn validated(&self) {
        Stats::inc(&self.stats.validations);
        self.metrics.validations.increment(1);
    }

    /// An idle connection was handed out unpinged, inside its bypass window.
    pub(crate) fn validation_skipped(&self) {
        Stats::inc(&self.stats.validations_skipped);
    }

    /// A background keepalive ping was sent.
    pub(crate) fn keepalive_sent(&self) {
        Stats::inc(&self.stats.keepalives);
        self.metrics.keepalives.increment(1);
    }

    /// A checkout was found held longer than the leak threshold.
    pub(crate) fn leak_found(&self) {
        Stats::inc(&self.stats.leaks);
        self.metrics.leaks.increment(1);
    }

    /// A returned connection's reset ended well, having done `did`.
    pub(crate) fn reset_done(&self, did: crate::pool::Returned) {
        match did {
            crate::pool::Returned::Cancel => {
                Stats::inc(&self.stats.cancels);
                self.metrics.cancels.increment(1);
            }
            crate::pool::Returned::Reset => {
                Stats::inc(&self.stats.resets);
                self.metrics.resets.increment(1);
            }
            _ => {}
        }
    }

    /// A connection was closed.
    pub(crate) fn closed(&self, reason: CloseReason) {
        self.stats.closed(reason);
        self.metrics.closed(reason);
    }

    /// The counters now.
    pub(crate) fn counters(&self) -> PoolCounters {
        self.stats.snapshot()
    }

    /// Sets the metric gauges from a snapshot.
    pub(crate) fn set_gauges(&self, status: &PoolStatus) {
        self.metrics.set_gauges(status);
    }
}
