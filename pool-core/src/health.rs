//! Health probes: one backend-neutral report and one up/degraded/down rule.
//!
//! A backend supplies only the probe operation, by implementing
//! [`HealthCheck`] for its manager (PostgreSQL: `SELECT 1`; Redis: `PING`
//! and a write/read round trip). [`Pool::health`] does the rest, the same
//! way for every backend:
//!
//! 1. checks a connection out with [`Pool::get_timeout`] and the probe's own
//!    short timeout, so a probe never queues behind an exhausted pool for
//!    longer than that;
//! 2. runs the operation within what is left of the timeout, through
//!    [`Pooled::observe`](crate::Pooled::observe), so a dead connection is discarded, not returned;
//! 3. decides the status with [`decide`] and returns a serde-serializable
//!    [`HealthReport`]: status, probe latency, the pool's snapshot and
//!    counters, and the pool's last error with its time and class.
//!
//! # The rule
//!
//! | what the probe saw | status |
//! |---|---|
//! | the operation succeeded | `up` |
//! | the checkout timed out, every slot is in use (`in_use >= max_size`), and no server error in the last [`RECENT_ERROR_WINDOW`] | `degraded`: busy, not broken |
//! | the checkout timed out with a recent server error, or with free slots (the server does not answer) | `down` |
//! | the checkout failed (wrong password, unknown database), the pool is closed, or the operation failed or timed out | `down` |
//!
//! Messages in the report come from the engine and the backends' error
//! chains, which are redacted: no password appears.

use crate::classify::ErrorClass;
use crate::error::{chain, Cause, PoolError};
use crate::pool::{LastError, Manager, Pool};
use crate::status::PoolStatus;
use serde::Serialize;
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A server error younger than this makes a timed-out probe `down` rather
/// than `degraded`.
pub const RECENT_ERROR_WINDOW: Duration = Duration::from_secs(10);

/// The least time the probe operation gets, even when the checkout used up
/// nearly all of the probe's timeout.
const MIN_CHECK_TIME: Duration = Duration::from_millis(50);

/// The probe operation a backend supplies.
pub trait HealthCheck: Manager {
    /// One real round trip on a checked-out connection that proves the
    /// server serves requests (`SELECT 1`; `PING` plus a write and a read).
    /// The engine bounds it with the probe's timeout.
    fn check(
        &self,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// A component's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// The probe got a connection and the round trip succeeded.
    Up,
    /// The server is fine but the pool is saturated: the probe could not
    /// get a connection in time because every slot is in use.
    Degraded,
    /// The server cannot be used: it refuses, does not answer, rejects the
    /// credentials, or the pool is closed.
    Down,
}

impl HealthStatus {
    /// Lowercase name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Up => "up",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Down => "down",
        }
    }

    /// True for [`HealthStatus::Up`].
    pub fn is_up(self) -> bool {
        self == HealthStatus::Up
    }

    /// The worse of several statuses (`up` for none): the status of a
    /// service made of components.
    pub fn worst(statuses: impl IntoIterator<Item = HealthStatus>) -> HealthStatus {
        statuses.into_iter().max().unwrap_or(HealthStatus::Up)
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one probe saw, the input of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The round trip succeeded.
    Ok,
    /// No connection within the probe's timeout.
    CheckoutTimedOut,
    /// The checkout stopped on an error waiting will not fix.
    CheckoutFailed(ErrorClass),
    /// The pool is closed.
    PoolClosed,
    /// The round trip failed.
    CheckFailed(ErrorClass),
    /// The round trip did not finish within the probe's timeout.
    CheckTimedOut,
}

/// The up/degraded/down rule (see the module docs), with the reason shown
/// when the result is not `up`.
///
/// `recent_error` is the class of the pool's last server error if it is
/// younger than [`RECENT_ERROR_WINDOW`] (see [`recent_error_class`]).
pub fn decide(
    outcome: ProbeOutcome,
    pool: &PoolStatus,
    recent_error: Option<ErrorClass>,
) -> (HealthStatus, Option<String>) {
    use HealthStatus::{Degraded, Down, Up};
    match outcome {
        ProbeOutcome::Ok => (Up, None),
        ProbeOutcome::PoolClosed => (Down, Some("the pool is closed".into())),
        ProbeOutcome::CheckoutFailed(class) => (
            Down,
            Some(format!(
                "no connection: {class} error, waiting will not fix it"
            )),
        ),
        ProbeOutcome::CheckFailed(class) => (
            Down,
            Some(format!("the probe's round trip failed ({class})")),
        ),
        ProbeOutcome::CheckTimedOut => (
            Down,
            Some("the server did not answer the probe in time".into()),
        ),
        ProbeOutcome::CheckoutTimedOut => {
            let saturated = pool.max_size.is_some_and(|max| pool.in_use >= max);
            let server_error = recent_error.filter(|class| *class != ErrorClass::Query);
            match (saturated, server_error) {
                (true, None) => (
                    Degraded,
                    Some(format!(
                        "pool exhausted: {} of {} connections in use, {} checkouts waiting; no recent server error",
                        pool.in_use,
                        pool.max_size.unwrap_or(pool.in_use),
                        pool.waiting
                    )),
                ),
                (_, Some(class)) => (
                    Down,
                    Some(format!(
                        "no connection in time; recent server error ({class})"
                    )),
                ),
                (false, None) => (
                    Down,
                    Some(format!(
                        "no connection in time although {} of {} slots are free: the server does not answer",
                        pool.max_size.map_or(0, |max| max.saturating_sub(pool.in_use)),
                        pool.max_size.map_or_else(|| "unlimited".into(), |m| m.to_string())
                    )),
                ),
            }
        }
    }
}

/// The class of `last` if it happened within `window` before `now` (or
/// after `now`, when the clock stepped back).
pub fn recent_error_class(
    last: Option<&LastError>,
    now: SystemTime,
    window: Duration,
) -> Option<ErrorClass> {
    let last = last?;
    match now.duration_since(last.at) {
        Ok(age) if age > window => None,
        _ => Some(last.cause.class),
    }
}

/// The pool's last server error, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct LastErrorReport {
    /// Its class.
    pub class: ErrorClass,
    /// Its message, redacted.
    pub message: String,
    /// When it happened, RFC 3339 UTC.
    pub at: String,
    /// How long ago, in seconds.
    pub seconds_ago: f64,
}

impl LastErrorReport {
    fn new(e: &LastError, now: SystemTime) -> Self {
        LastErrorReport {
            class: e.cause.class,
            message: e.cause.message.clone(),
            at: rfc3339(e.at),
            seconds_ago: now
                .duration_since(e.at)
                .map_or(0.0, |d| round3(d.as_secs_f64())),
        }
    }
}

/// The result of one probe: what a health endpoint shows for a component.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// `up`, `degraded` or `down`.
    pub status: HealthStatus,
    /// Why it is not `up` (absent when up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long the probe took (checkout and round trip), milliseconds.
    pub latency_ms: f64,
    /// The probe's timeout, milliseconds.
    pub timeout_ms: u64,
    /// When the probe ran, RFC 3339 UTC.
    pub checked_at: String,
    /// The server, redacted.
    pub target: String,
    /// What failed in this probe (absent when it succeeded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Cause>,
    /// The last server error the pool saw, whenever it was (`null` if none).
    pub last_error: Option<LastErrorReport>,
    /// The pool's gauges and counters right after the probe.
    pub pool: PoolStatus,
}

impl<M: HealthCheck> Pool<M> {
    /// Probes the server through the pool: a checkout bounded by `timeout`,
    /// then the backend's [`HealthCheck::check`] within what is left of it.
    /// Never takes much longer than `timeout`; never fails (a failure is a
    /// `down` report).
    pub async fn health(&self, timeout: Duration) -> HealthReport {
        let started = Instant::now();
        let checked_at = SystemTime::now();
        let (outcome, error) = self.probe(timeout, started).await;
        let latency = started.elapsed();
        let pool = self.status();
        let last = self.last_error();
        let now = SystemTime::now();
        let recent = recent_error_class(last.as_ref(), now, RECENT_ERROR_WINDOW);
        let (status, reason) = decide(outcome, &pool, recent);
        HealthReport {
            status,
            reason,
            latency_ms: round3(latency.as_secs_f64() * 1000.0),
            timeout_ms: timeout.as_millis() as u64,
            checked_at: rfc3339(checked_at),
            target: self.target().to_string(),
            error,
            last_error: last.as_ref().map(|e| LastErrorReport::new(e, now)),
            pool,
        }
    }

    async fn probe(&self, timeout: Duration, started: Instant) -> (ProbeOutcome, Option<Cause>) {
        let mut conn = match self.get_timeout(timeout).await {
            Ok(conn) => conn,
            Err(e) => {
                let outcome = match &e {
                    PoolError::Timeout { .. } => ProbeOutcome::CheckoutTimedOut,
                    PoolError::Fatal { .. } | PoolError::Unavailable { .. } => {
                        ProbeOutcome::CheckoutFailed(e.class())
                    }
                    PoolError::Closed(_) => ProbeOutcome::PoolClosed,
                };
                let cause = Cause {
                    class: e.class(),
                    message: crate::redact::redact_url(&e.to_string()),
                };
                return (outcome, Some(cause));
            }
        };
        let left = timeout
            .saturating_sub(started.elapsed())
            .max(MIN_CHECK_TIME);
        match tokio::time::timeout(left, self.manager().check(&mut conn)).await {
            Ok(result) => match conn.observe(result) {
                Ok(()) => (ProbeOutcome::Ok, None),
                Err(e) => {
                    let class = self.manager().classify(&e);
                    let cause = Cause {
                        class,
                        message: chain(&e),
                    };
                    (ProbeOutcome::CheckFailed(class), Some(cause))
                }
            },
            Err(_) => {
                // A request may still be in flight: the connection's state
                // is unknown, so it is not reused.
                conn.mark_broken();
                let cause = Cause {
                    class: ErrorClass::Timeout,
                    message: format!(
                        "the probe's round trip did not finish within {:.3}s",
                        left.as_secs_f64()
                    ),
                };
                (ProbeOutcome::CheckTimedOut, Some(cause))
            }
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `2024-05-01T12:34:56.789Z` (UTC, milliseconds), by `humantime`. Never
/// panics: a time before 1970 shows as the epoch, one past year 9999 (which
/// RFC 3339 cannot write) as its last millisecond.
pub fn rfc3339(t: SystemTime) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    match write!(s, "{}", humantime::format_rfc3339_millis(t.max(UNIX_EPOCH))) {
        Ok(()) => s,
        Err(_) => "9999-12-31T23:59:59.999Z".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Overflow;
    use crate::status::PoolCounters;
    use crate::testing::{FakeManager, FakeMode};
    use crate::PoolSettings;

    fn status(in_use: u32, max_size: Option<u32>) -> PoolStatus {
        PoolStatus {
            name: "db".into(),
            pool_size: 2,
            max_overflow: max_size.map_or(-1, |m| i64::from(m) - 2),
            max_size,
            pool_timeout: 30.0,
            open: in_use,
            idle: 0,
            in_use,
            overflow_in_use: in_use.saturating_sub(2),
            waiting: 3,
            connecting: 0,
            counters: PoolCounters::default(),
            housekeeper: None,
            paused: false,
        }
    }

    #[test]
    fn a_successful_probe_is_up() {
        let (s, reason) = decide(ProbeOutcome::Ok, &status(5, Some(5)), None);
        assert_eq!(s, HealthStatus::Up);
        assert!(reason.is_none());
        // Even a saturated pool or an old error do not matter then.
        let (s, _) = decide(
            ProbeOutcome::Ok,
            &status(5, Some(5)),
            Some(ErrorClass::Unavailable),
        );
        assert_eq!(s, HealthStatus::Up);
    }

    #[test]
    fn a_busy_pool_is_degraded_not_down() {
        let (s, reason) = decide(ProbeOutcome::CheckoutTimedOut, &status(5, Some(5)), None);
        assert_eq!(s, HealthStatus::Degraded);
        let reason = reason.unwrap();
        assert!(
            reason.contains("5 of 5") && reason.contains("3 checkouts waiting"),
            "{reason}"
        );
        // A query error is the caller's, not the server's.
        let (s, _) = decide(
            ProbeOutcome::CheckoutTimedOut,
            &status(5, Some(5)),
            Some(ErrorClass::Query),
        );
        assert_eq!(s, HealthStatus::Degraded);
    }

    #[test]
    fn a_busy_pool_with_recent_server_errors_is_down() {
        for class in [
            ErrorClass::Unavailable,
            ErrorClass::Disconnected,
            ErrorClass::Timeout,
            ErrorClass::Fatal,
        ] {
            let (s, reason) = decide(
                ProbeOutcome::CheckoutTimedOut,
                &status(5, Some(5)),
                Some(class),
            );
            assert_eq!(s, HealthStatus::Down, "{class}");
            assert!(reason.unwrap().contains(class.as_str()));
        }
    }

    #[test]
    fn a_timeout_with_free_slots_is_down() {
        let (s, reason) = decide(ProbeOutcome::CheckoutTimedOut, &status(1, Some(5)), None);
        assert_eq!(s, HealthStatus::Down);
        assert!(reason.unwrap().contains("4 of 5 slots are free"));
        // Unlimited overflow never saturates: a timeout means no answer.
        let (s, _) = decide(ProbeOutcome::CheckoutTimedOut, &status(50, None), None);
        assert_eq!(s, HealthStatus::Down);
    }

    #[test]
    fn errors_are_down() {
        for outcome in [
            ProbeOutcome::CheckoutFailed(ErrorClass::Fatal),
            ProbeOutcome::PoolClosed,
            ProbeOutcome::CheckFailed(ErrorClass::Disconnected),
            ProbeOutcome::CheckFailed(ErrorClass::Query),
            ProbeOutcome::CheckTimedOut,
        ] {
            let (s, reason) = decide(outcome, &status(0, Some(5)), None);
            assert_eq!(s, HealthStatus::Down, "{outcome:?}");
            assert!(reason.is_some());
        }
    }

    #[test]
    fn only_recent_errors_count() {
        let now = SystemTime::now();
        let at = |ago: u64| LastError {
            cause: Cause {
                class: ErrorClass::Unavailable,
                message: "refused".into(),
            },
            at: now - Duration::from_secs(ago),
        };
        let w = RECENT_ERROR_WINDOW;
        assert_eq!(recent_error_class(None, now, w), None);
        assert_eq!(
            recent_error_class(Some(&at(1)), now, w),
            Some(ErrorClass::Unavailable)
        );
        assert_eq!(recent_error_class(Some(&at(60)), now, w), None);
        let future = LastError {
            at: now + Duration::from_secs(5),
            ..at(0)
        };
        assert_eq!(
            recent_error_class(Some(&future), now, w),
            Some(ErrorClass::Unavailable)
        );
    }

    #[test]
    fn worst_of_components() {
        use HealthStatus::*;
        assert_eq!(HealthStatus::worst([]), Up);
        assert_eq!(HealthStatus::worst([Up, Up]), Up);
        assert_eq!(HealthStatus::worst([Up, Degraded]), Degraded);
        assert_eq!(HealthStatus::worst([Down, Degraded, Up]), Down);
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123); // leap day 2000
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_735_689_599); // end of 2024
        assert_eq!(rfc3339(t), "2024-12-31T23:59:59.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00.000Z"
        );
        let far = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59.999Z");
    }

    fn settings(pool_size: u32, overflow: u32) -> PoolSettings {
        let mut s = PoolSettings::new("probe");
        s.pool_size = pool_size;
        s.max_overflow = Overflow::Limited(overflow);
        s.retry.initial = Duration::from_millis(5);
        s.retry.max = Duration::from_millis(20);
        s
    }

    #[tokio::test]
    async fn probe_up() {
        let pool = Pool::new(FakeManager::new(FakeMode::Ok), settings(2, 0));
        let r = pool.health(Duration::from_secs(1)).await;
        assert_eq!(r.status, HealthStatus::Up, "{r:?}");
        assert!(r.error.is_none() && r.reason.is_none());
        assert_eq!(r.pool.counters.checkouts, 1);
        assert_eq!(r.pool.idle, 1, "the probe's connection went back");
        let json = serde_json::to_value(&r).unwrap();
        for key in [
            "status",
            "latency_ms",
            "timeout_ms",
            "checked_at",
            "target",
            "last_error",
            "pool",
        ] {
            assert!(json.get(key).is_some(), "{key} missing: {json}");
        }
        assert_eq!(json["status"], "up");
        assert!(json["pool"]["counters"]["checkouts"].is_u64());
        assert!(!json.to_string().contains("hunter2"), "{json}");
    }

    #[tokio::test]
    async fn probe_of_an_exhausted_pool_is_degraded_and_quick() {
        let pool = Pool::new(FakeManager::new(FakeMode::Ok), settings(1, 1));
        let _a = pool.get().await.unwrap();
        let _b = pool.get().await.unwrap();
        let t = Instant::now();
        let r = pool.health(Duration::from_millis(100)).await;
        assert!(
            t.elapsed() < Duration::from_millis(600),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(r.status, HealthStatus::Degraded, "{r:?}");
        assert_eq!(r.error.as_ref().unwrap().class, ErrorClass::Timeout);
        assert!(r.last_error.is_none());
    }

    #[tokio::test]
    async fn probe_of_a_refusing_server_is_down_with_the_cause() {
        let pool = Pool::new(FakeManager::new(FakeMode::Refuse), settings(2, 0));
        let r = pool.health(Duration::from_millis(100)).await;
        assert_eq!(r.status, HealthStatus::Down, "{r:?}");
        let last = r.last_error.as_ref().unwrap();
        assert_eq!(last.class, ErrorClass::Unavailable);
        assert!(last.seconds_ago < 5.0);
        assert!(last.at.ends_with('Z'));
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
    }

    #[tokio::test]
    async fn probe_of_a_hanging_server_is_down_within_its_timeout() {
        let pool = Pool::new(FakeManager::new(FakeMode::Hang), settings(2, 0));
        let t = Instant::now();
        let r = pool.health(Duration::from_millis(100)).await;
        assert!(
            t.elapsed() < Duration::from_millis(600),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(r.status, HealthStatus::Down, "{r:?}");
        assert!(r.reason.unwrap().contains("does not answer"));
    }

    #[tokio::test]
    async fn failed_or_hung_round_trips_are_down_and_discard_the_connection() {
        for mode in [FakeMode::CheckFails, FakeMode::CheckHangs] {
            let pool = Pool::new(FakeManager::new(mode), settings(2, 0));
            let r = pool.health(Duration::from_millis(100)).await;
            assert_eq!(r.status, HealthStatus::Down, "{mode:?}: {r:?}");
            assert_eq!(r.pool.open, 0, "{mode:?}: the connection was discarded");
            assert_eq!(r.pool.counters.closed.broken, 1, "{mode:?}");
        }
    }

    #[tokio::test]
    async fn fatal_and_closed_are_down() {
        let pool = Pool::new(FakeManager::new(FakeMode::Fatal), settings(2, 0));
        let r = pool.health(Duration::from_secs(1)).await;
        assert_eq!(r.status, HealthStatus::Down);
        assert_eq!(r.error.as_ref().unwrap().class, ErrorClass::Fatal);
        assert!(!serde_json::to_string(&r).unwrap().contains("hunter2"));

        let pool = Pool::new(FakeManager::new(FakeMode::Ok), settings(2, 0));
        pool.close();
        let r = pool.health(Duration::from_secs(1)).await;
        assert_eq!(r.status, HealthStatus::Down);
        assert_eq!(r.reason.as_deref(), Some("the pool is closed"));
    }

    #[tokio::test]
    async fn recovery_turns_the_probe_up_again() {
        let pool = Pool::new(FakeManager::new(FakeMode::Refuse), settings(2, 0));
        assert_eq!(
            pool.health(Duration::from_millis(50)).await.status,
            HealthStatus::Down
        );
        pool.manager().set_mode(FakeMode::Ok);
        let r = pool.health(Duration::from_millis(500)).await;
        assert_eq!(r.status, HealthStatus::Up, "{r:?}");
        assert!(r.last_error.is_some(), "the old error is still reported");
    }
}
