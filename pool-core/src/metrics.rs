//! Pool metrics through the [`metrics`] facade.
//!
//! The application picks the exporter (Prometheus, StatsD, OpenTelemetry,
//! ...) and installs it as the global recorder **before it builds its
//! pools**: each pool registers its metric handles once, in
//! [`Pool::new`](crate::Pool::new), so a checkout never formats a label,
//! allocates or looks a metric up. A pool built before the recorder is
//! installed records nothing. Without any recorder every call is a no-op.
//!
//! Every series carries the label `pool` (the pool's name,
//! `DB_POOL_NAME`). Counters and histograms are recorded by the engine as
//! things happen. The gauges are point-in-time values: call
//! [`Pool::update_gauges`](crate::Pool::update_gauges) right before each
//! scrape (or from a periodic task with a push exporter); that reads
//! [`Pool::status`](crate::Pool::status) once and keeps the gauges off the
//! checkout path.
//!
//! | metric | type | labels | meaning | HikariCP |
//! |---|---|---|---|---|
//! | `db_pool_connections` | gauge | `pool`, `state` = `idle` / `in_use` / `open` / `overflow` | connections by state (`open` = `idle` + `in_use`; `overflow` = open beyond `pool_size`) | `hikaricp_connections` (total), `_idle`, `_active` |
//! | `db_pool_waiting_checkouts` | gauge | `pool` | checkouts queued for a free slot | `hikaricp_connections_pending` |
//! | `db_pool_connections_min` | gauge | `pool` | `pool_size` | `hikaricp_connections_min` |
//! | `db_pool_connections_max` | gauge | `pool` | `pool_size + max_overflow` (`+Inf` when unlimited) | `hikaricp_connections_max` |
//! | `db_pool_checkouts_total` | counter | `pool` | successful checkouts | count of `hikaricp_connections_acquire` |
//! | `db_pool_checkout_timeouts_total` | counter | `pool` | checkouts that ran out of time | `hikaricp_connections_timeout_total` |
//! | `db_pool_checkout_errors_total` | counter | `pool` | checkouts stopped by a fatal error (wrong password, unknown database) | — |
//! | `db_pool_checkouts_failed_fast_total` | counter | `pool` | checkouts failed at once because the server is down (`DB_POOL_FAIL_FAST`) | — (PgBouncer `server_login_retry`) |
//! | `db_pool_checkout_wait_seconds` | histogram | `pool` | time each checkout took (queueing, validating, connecting), failed ones included | `hikaricp_connections_acquire_seconds` |
//! | `db_pool_connection_usage_seconds` | histogram | `pool` | how long callers held a connection, checkout to return | `hikaricp_connections_usage_seconds` |
//! | `db_pool_connection_create_seconds` | histogram | `pool` | time to open a connection (successful attempts) | `hikaricp_connections_creation_seconds` |
//! | `db_pool_connections_created_total` | counter | `pool` | connections opened | — |
//! | `db_pool_connections_closed_total` | counter | `pool`, `reason` (see [`CloseReason`]) | connections closed, by reason | — |
//! | `db_pool_connect_failures_total` | counter | `pool`, `class` (see [`ErrorClass`]) | failed connection attempts, by error class | — |
//! | `db_pool_validations_total` | counter | `pool` | validation pings sent at checkout | — |
//! | `db_pool_keepalives_total` | counter | `pool` | background keepalive pings of idle connections (`DB_POOL_KEEPALIVE`) | — (pgxpool health checks) |
//! | `db_pool_leaks_total` | counter | `pool` | connections held longer than `DB_POOL_LEAK_THRESHOLD` (each checkout counted once) | — (HikariCP logs leaks only) |
//! | `db_pool_resets_total` | counter | `pool`, `kind` = `reset` / `cancel` | returned connections reset with a round trip (`DB_POOL_RESET_ON_RETURN`), and those whose request in flight was cancelled server-side | — |
//!
//! The close reasons `idle_timeout`, `lifetime` and `keepalive_failed` are
//! the housekeeper's (see [`crate::Pool`]'s upkeep).
//!
//! Histograms are in seconds; with Prometheus, give them buckets (for
//! example [`SECONDS_BUCKETS`] for every name ending in `_seconds`),
//! otherwise the exporter renders them as summaries.

use crate::classify::ErrorClass;
use crate::status::{CloseReason, PoolStatus};
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Gauge, Histogram, Unit,
};

/// Gauge: connections by `state` (`idle`, `in_use`, `open`, `overflow`).
pub const CONNECTIONS: &str = "db_pool_connections";
/// Gauge: checkouts queued for a free slot.
pub const WAITING_CHECKOUTS: &str = "db_pool_waiting_checkouts";
/// Gauge: `pool_size`.
pub const CONNECTIONS_MIN: &str = "db_pool_connections_min";
/// Gauge: `pool_size + max_overflow` (`+Inf` when unlimited).
pub const CONNECTIONS_MAX: &str = "db_pool_connections_max";
/// Counter: successful checkouts.
pub const CHECKOUTS: &str = "db_pool_checkouts_total";
/// Counter: checkouts that ran out of time.
pub const CHECKOUT_TIMEOUTS: &str = "db_pool_checkout_timeouts_total";
/// Counter: checkouts stopped by a fatal error.
pub const CHECKOUT_ERRORS: &str = "db_pool_checkout_errors_total";
/// Counter: checkouts failed at once while the server is down (`fail_fast`).
pub const CHECKOUTS_FAILED_FAST: &str = "db_pool_checkouts_failed_fast_total";
/// Histogram: seconds each checkout took.
pub const CHECKOUT_WAIT: &str = "db_pool_checkout_wait_seconds";
/// Histogram: seconds a connection was held by its caller.
pub const CONNECTION_USAGE: &str = "db_pool_connection_usage_seconds";
/// Histogram: seconds it took to open a connection.
pub const CONNECTION_CREATE: &str = "db_pool_connection_create_seconds";
/// Counter: connections opened.
pub const CONNECTIONS_CREATED: &str = "db_pool_connections_created_total";
/// Counter: connections closed, by `reason`.
pub const CONNECTIONS_CLOSED: &str = "db_pool_connections_closed_total";
/// Counter: failed connection attempts, by error `class`.
pub const CONNECT_FAILURES: &str = "db_pool_connect_failures_total";
/// Counter: validation pings sent.
pub const VALIDATIONS: &str = "db_pool_validations_total";
/// Counter: background keepalive pings.
pub const KEEPALIVES: &str = "db_pool_keepalives_total";
/// Counter: checkouts held longer than the leak threshold.
pub const LEAKS: &str = "db_pool_leaks_total";
/// Counter: returned connections reset with a round trip, by `kind`.
pub const RESETS: &str = "db_pool_resets_total";

/// Every metric name, for documentation and tests.
pub const ALL_NAMES: [&str; 18] = [
    CONNECTIONS,
    WAITING_CHECKOUTS,
    CONNECTIONS_MIN,
    CONNECTIONS_MAX,
    CHECKOUTS,
    CHECKOUT_TIMEOUTS,
    CHECKOUT_ERRORS,
    CHECKOUTS_FAILED_FAST,
    CHECKOUT_WAIT,
    CONNECTION_USAGE,
    CONNECTION_CREATE,
    CONNECTIONS_CREATED,
    CONNECTIONS_CLOSED,
    CONNECT_FAILURES,
    VALIDATIONS,
    KEEPALIVES,
    LEAKS,
    RESETS,
];

/// Histogram buckets (seconds) suited to checkout waits, usage and
/// connect times: 100 µs to 30 s.
pub const SECONDS_BUCKETS: [f64; 16] = [
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0,
];

/// Registers help texts and units with the installed recorder (shown as
/// `# HELP` lines by Prometheus). Call once, after installing the recorder.
pub fn register_descriptions() {
    describe_gauge!(
        CONNECTIONS,
        Unit::Count,
        "Pool connections by state: idle, in_use, open (idle + in_use), overflow (open beyond pool_size)"
    );
    describe_gauge!(
        WAITING_CHECKOUTS,
        Unit::Count,
        "Checkouts queued for a free pool slot"
    );
    describe_gauge!(
        CONNECTIONS_MIN,
        Unit::Count,
        "Connections kept open (pool_size)"
    );
    describe_gauge!(
        CONNECTIONS_MAX,
        Unit::Count,
        "Most connections open at once (pool_size + max_overflow; +Inf when unlimited)"
    );
    describe_counter!(CHECKOUTS, Unit::Count, "Successful checkouts");
    describe_counter!(
        CHECKOUT_TIMEOUTS,
        Unit::Count,
        "Checkouts that ran out of time (pool_timeout or the caller's timeout)"
    );
    describe_counter!(
        CHECKOUT_ERRORS,
        Unit::Count,
        "Checkouts stopped by a fatal error (wrong password, unknown database)"
    );
    describe_counter!(
        CHECKOUTS_FAILED_FAST,
        Unit::Count,
        "Checkouts failed at once because the server is down (fail_fast)"
    );
    describe_histogram!(
        CHECKOUT_WAIT,
        Unit::Seconds,
        "Time each checkout took (queueing, validating, connecting), failed ones included"
    );
    describe_histogram!(
        CONNECTION_USAGE,
        Unit::Seconds,
        "How long callers held a connection, from checkout to return"
    );
    describe_histogram!(
        CONNECTION_CREATE,
        Unit::Seconds,
        "Time to open a connection (successful attempts)"
    );
    describe_counter!(CONNECTIONS_CREATED, Unit::Count, "Connections opened");
    describe_counter!(
        CONNECTIONS_CLOSED,
        Unit::Count,
        "Connections closed, by reason"
    );
    describe_counter!(
        CONNECT_FAILURES,
        Unit::Count,
        "Failed connection attempts, by error class"
    );
    describe_counter!(
        VALIDATIONS,
        Unit::Count,
        "Validation pings sent at checkout"
    );
    describe_counter!(
        KEEPALIVES,
        Unit::Count,
        "Background keepalive pings of idle connections"
    );
    describe_counter!(
        LEAKS,
        Unit::Count,
        "Checkouts held longer than the leak threshold"
    );
    describe_counter!(
        RESETS,
        Unit::Count,
        "Returned connections reset with a round trip (kind=reset), or whose request in flight was cancelled (kind=cancel)"
    );
}

/// One pool's metric handles, registered once when the pool is built.
pub(crate) struct PoolMetrics {
    idle: Gauge,
    in_use: Gauge,
    open: Gauge,
    overflow: Gauge,
    waiting: Gauge,
    min: Gauge,
    max: Gauge,
    pub checkouts: Counter,
    pub timeouts: Counter,
    pub checkout_errors: Counter,
    pub failed_fast: Counter,
    pub checkout_wait: Histogram,
    pub usage: Histogram,
    pub create_time: Histogram,
    pub created: Counter,
    closed: [Counter; CloseReason::ALL.len()],
    connect_failures: [Counter; ErrorClass::ALL.len()],
    pub validations: Counter,
    pub keepalives: Counter,
    pub leaks: Counter,
    pub resets: Counter,
    pub cancels: Counter,
}

impl std::fmt::Debug for PoolMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolMetrics").finish_non_exhaustive()
    }
}

impl PoolMetrics {
    /// Registers the handles of the pool `name` with the global recorder.
    pub(crate) fn new(name: &str) -> Self {
        let pool = name.to_owned();
        let state =
            |state: &'static str| gauge!(CONNECTIONS, "pool" => pool.clone(), "state" => state);
        PoolMetrics {
            idle: state("idle"),
            in_use: state("in_use"),
            open: state("open"),
            overflow: state("overflow"),
            waiting: gauge!(WAITING_CHECKOUTS, "pool" => pool.clone()),
            min: gauge!(CONNECTIONS_MIN, "pool" => pool.clone()),
            max: gauge!(CONNECTIONS_MAX, "pool" => pool.clone()),
            checkouts: counter!(CHECKOUTS, "pool" => pool.clone()),
            timeouts: counter!(CHECKOUT_TIMEOUTS, "pool" => pool.clone()),
            checkout_errors: counter!(CHECKOUT_ERRORS, "pool" => pool.clone()),
            failed_fast: counter!(CHECKOUTS_FAILED_FAST, "pool" => pool.clone()),
            checkout_wait: histogram!(CHECKOUT_WAIT, "pool" => pool.clone()),
            usage: histogram!(CONNECTION_USAGE, "pool" => pool.clone()),
            create_time: histogram!(CONNECTION_CREATE, "pool" => pool.clone()),
            created: counter!(CONNECTIONS_CREATED, "pool" => pool.clone()),
            closed: CloseReason::ALL.map(|reason| {
                counter!(CONNECTIONS_CLOSED, "pool" => pool.clone(), "reason" => reason.as_str())
            }),
            connect_failures: ErrorClass::ALL.map(|class| {
                counter!(CONNECT_FAILURES, "pool" => pool.clone(), "class" => class.as_str())
            }),
            validations: counter!(VALIDATIONS, "pool" => pool.clone()),
            keepalives: counter!(KEEPALIVES, "pool" => pool.clone()),
            leaks: counter!(LEAKS, "pool" => pool.clone()),
            resets: counter!(RESETS, "pool" => pool.clone(), "kind" => "reset"),
            cancels: counter!(RESETS, "pool" => pool.clone(), "kind" => "cancel"),
        }
    }

    /// Counts one closed connection.
    pub(crate) fn closed(&self, reason: CloseReason) {
        self.closed[reason.index()].increment(1);
    }

    /// Counts one failed connection attempt.
    pub(crate) fn connect_failure(&self, class: ErrorClass) {
        self.connect_failures[class.index()].increment(1);
    }

    /// Sets the gauges from a snapshot.
    pub(crate) fn set_gauges(&self, s: &PoolStatus) {
        self.idle.set(s.idle);
        self.in_use.set(s.in_use);
        self.open.set(s.open);
        self.overflow.set(s.overflow_in_use);
        self.waiting.set(s.waiting);
        self.min.set(s.pool_size);
        self.max.set(s.max_size.map_or(f64::INFINITY, f64::from));
    }
}

#[cfg(test)]
pub(crate) mod recorder {
    //! A minimal in-memory recorder for tests: every series by its rendered
    //! key (`name{label=value,...}`, labels in registration order).

    use metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata,
        Recorder, SharedString, Unit,
    };
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    #[derive(Debug, Default)]
    pub struct Cell {
        pub counter: AtomicU64,
        pub gauge: Mutex<f64>,
        pub samples: Mutex<Vec<f64>>,
    }

    impl CounterFn for Cell {
        fn increment(&self, value: u64) {
            self.counter.fetch_add(value, Ordering::Relaxed);
        }
        fn absolute(&self, value: u64) {
            self.counter.fetch_max(value, Ordering::Relaxed);
        }
    }

    impl GaugeFn for Cell {
        fn increment(&self, value: f64) {
            *self.gauge.lock().unwrap() += value;
        }
        fn decrement(&self, value: f64) {
            *self.gauge.lock().unwrap() -= value;
        }
        fn set(&self, value: f64) {
            *self.gauge.lock().unwrap() = value;
        }
    }

    impl HistogramFn for Cell {
        fn record(&self, value: f64) {
            self.samples.lock().unwrap().push(value);
        }
    }

    /// Records into a shared map.
    #[derive(Debug, Default, Clone)]
    pub struct TestRecorder {
        pub cells: Arc<Mutex<BTreeMap<String, Arc<Cell>>>>,
    }

    impl TestRecorder {
        fn cell(&self, key: &Key) -> Arc<Cell> {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            self.cells.lock().unwrap().entry(name).or_default().clone()
        }

        /// The cell of a series, if it was registered.
        pub fn get(&self, series: &str) -> Arc<Cell> {
            self.cells
                .lock()
                .unwrap()
                .get(series)
                .unwrap_or_else(|| panic!("no series {series}"))
                .clone()
        }

        /// A counter's value.
        pub fn counter(&self, series: &str) -> u64 {
            self.get(series).counter.load(Ordering::Relaxed)
        }

        /// A gauge's value.
        pub fn gauge(&self, series: &str) -> f64 {
            *self.get(series).gauge.lock().unwrap()
        }

        /// A histogram's samples.
        pub fn samples(&self, series: &str) -> Vec<f64> {
            self.get(series).samples.lock().unwrap().clone()
        }
    }

    impl Recorder for TestRecorder {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.cell(key))
        }

        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.cell(key))
        }

        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(self.cell(key))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::recorder::TestRecorder;
    use super::*;
    use crate::testing::{FakeManager, FakeMode};
    use crate::{Pool, PoolSettings};
    use std::time::Duration;

    fn pool_with(
        recorder: &TestRecorder,
        manager: FakeManager,
        settings: PoolSettings,
    ) -> Pool<FakeManager> {
        metrics::with_local_recorder(recorder, || Pool::new(manager, settings))
    }

    #[tokio::test]
    async fn the_engine_records_checkouts_usage_creation_and_closes() {
        let rec = TestRecorder::default();
        let mut settings = PoolSettings::new("m1");
        settings.pool_size = 1;
        settings.max_overflow = crate::settings::Overflow::Limited(1);
        let pool = pool_with(&rec, FakeManager::new(FakeMode::Ok), settings);

        let a = pool.get().await.unwrap();
        let b = pool.get().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(a);
        drop(b); // pool_size 1 is idle already: closed as overflow
        let c = pool.get().await.unwrap();
        c.detach();

        assert_eq!(rec.counter("db_pool_checkouts_total{pool=m1}"), 3);
        assert_eq!(rec.counter("db_pool_connections_created_total{pool=m1}"), 2);
        assert_eq!(
            rec.counter("db_pool_connections_closed_total{pool=m1,reason=overflow}"),
            1
        );
        assert_eq!(
            rec.counter("db_pool_connections_closed_total{pool=m1,reason=detached}"),
            1
        );
        assert_eq!(
            rec.samples("db_pool_checkout_wait_seconds{pool=m1}").len(),
            3
        );
        assert_eq!(
            rec.samples("db_pool_connection_create_seconds{pool=m1}")
                .len(),
            2
        );
        let usage = rec.samples("db_pool_connection_usage_seconds{pool=m1}");
        assert_eq!(usage.len(), 3, "{usage:?}");
        assert!(usage[0] >= 0.015, "held ~20 ms: {usage:?}");

        // Every reason and class is pre-registered, at zero.
        for reason in CloseReason::ALL {
            rec.get(&format!(
                "db_pool_connections_closed_total{{pool=m1,reason={}}}",
                reason.as_str()
            ));
        }
        for class in ErrorClass::ALL {
            rec.get(&format!(
                "db_pool_connect_failures_total{{pool=m1,class={}}}",
                class.as_str()
            ));
        }

        let held = pool.get().await.unwrap();
        pool.update_gauges();
        assert_eq!(rec.gauge("db_pool_connections{pool=m1,state=in_use}"), 1.0);
        assert_eq!(rec.gauge("db_pool_connections{pool=m1,state=open}"), 1.0);
        assert_eq!(rec.gauge("db_pool_connections{pool=m1,state=idle}"), 0.0);
        assert_eq!(rec.gauge("db_pool_connections_min{pool=m1}"), 1.0);
        assert_eq!(rec.gauge("db_pool_connections_max{pool=m1}"), 2.0);
        drop(held);
        pool.update_gauges();
        assert_eq!(rec.gauge("db_pool_connections{pool=m1,state=idle}"), 1.0);
        assert_eq!(rec.gauge("db_pool_waiting_checkouts{pool=m1}"), 0.0);
    }

    #[tokio::test]
    async fn failures_and_timeouts_are_counted() {
        let rec = TestRecorder::default();
        let mut settings = PoolSettings::new("m2");
        settings.retry.initial = Duration::from_millis(5);
        settings.retry.max = Duration::from_millis(10);
        let pool = pool_with(&rec, FakeManager::new(FakeMode::Refuse), settings);
        let err = pool
            .get_timeout(Duration::from_millis(60))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert_eq!(rec.counter("db_pool_checkout_timeouts_total{pool=m2}"), 1);
        assert!(rec.counter("db_pool_connect_failures_total{pool=m2,class=unavailable}") >= 2);
        assert_eq!(rec.counter("db_pool_checkouts_total{pool=m2}"), 0);
        assert_eq!(
            rec.samples("db_pool_checkout_wait_seconds{pool=m2}").len(),
            1
        );

        let rec = TestRecorder::default();
        let pool = pool_with(
            &rec,
            FakeManager::new(FakeMode::Fatal),
            PoolSettings::new("m3"),
        );
        pool.get().await.unwrap_err();
        assert_eq!(rec.counter("db_pool_checkout_errors_total{pool=m3}"), 1);
        assert_eq!(
            rec.counter("db_pool_connect_failures_total{pool=m3,class=fatal}"),
            1
        );
    }

    #[test]
    fn unlimited_overflow_has_an_infinite_max() {
        let rec = TestRecorder::default();
        let mut settings = PoolSettings::new("m4");
        settings.max_overflow = crate::settings::Overflow::Unlimited;
        let pool = pool_with(&rec, FakeManager::new(FakeMode::Ok), settings);
        pool.update_gauges();
        assert_eq!(rec.gauge("db_pool_connections_max{pool=m4}"), f64::INFINITY);
    }
}
