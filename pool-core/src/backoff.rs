//! The one retry policy: exponential backoff with jitter, on `backon`.
//!
//! Used by checkouts that retry a connect during an outage and by startup
//! waits. Delays start at about [`RetryPolicy::initial`], double each
//! attempt, and never exceed [`RetryPolicy::max`]. Each delay is drawn from
//! `[d/2, d)` ("equal jitter"), so clients that failed together do not retry
//! together, while a sleep is never longer than the cap — readiness is noticed
//! within one cap of the server coming back.

use backon::{BackoffBuilder, ExponentialBuilder};
use serde::Serialize;
use std::time::Duration;

/// Exponential backoff with equal jitter, bounded by a cap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Upper bound of the first sleep.
    #[serde(with = "crate::settings::secs")]
    pub initial: Duration,
    /// Upper bound of every sleep (jitter included).
    #[serde(with = "crate::settings::secs")]
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The upper bound of the `n`-th sleep (1-based): `initial` doubled
    /// `n - 1` times, at most `max`. Without jitter, for waits that must be
    /// predictable (the fail-fast window).
    pub fn bound(&self, n: u32) -> Duration {
        let max = self.max.max(self.initial);
        let doublings = n.saturating_sub(1).min(30);
        self.initial.saturating_mul(1 << doublings).min(max)
    }

    /// An endless iterator of sleeps; callers bound it with their deadline.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send + 'static {
        // backon adds a jitter of 0-100% on top of its current delay, so we
        // hand it half of our bounds: its sleeps land in [d/2, d).
        let max = self.max.max(Duration::from_millis(1));
        ExponentialBuilder::default()
            .with_min_delay((self.initial.min(max)) / 2)
            .with_max_delay(max / 2)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
            .map(move |d| d.min(max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_double_up_to_the_cap() {
        let p = RetryPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(1),
        };
        let ms: Vec<u128> = (0..8).map(|n| p.bound(n).as_millis()).collect();
        assert_eq!(ms, [50, 50, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.bound(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn delays_grow_and_stay_under_the_cap() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(800),
        };
        let delays: Vec<Duration> = policy.delays().take(12).collect();
        assert_eq!(delays.len(), 12, "the iterator never ends by itself");
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] < Duration::from_millis(100));
        for d in &delays {
            assert!(*d <= policy.max, "{d:?} over the cap");
        }
        // After the ramp, every sleep is in the upper half of the cap.
        for d in &delays[4..] {
            assert!(*d >= Duration::from_millis(400), "{d:?}");
        }
    }

    #[test]
    fn delays_are_jittered() {
        let policy = RetryPolicy::default();
        let a: Vec<Duration> = policy.delays().take(8).collect();
        let b: Vec<Duration> = policy.delays().take(8).collect();
        assert_ne!(a, b, "two clients must not sleep in lockstep");
    }
}
