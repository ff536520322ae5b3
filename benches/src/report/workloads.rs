//! The workloads' rows: which pools (and the no-pool ceiling) each workload
//! compares, under names the docs and the goal checks refer to.

use super::measure::{Row, TimeoutRow};
use crate::subjects::{
    Bb8CounterPool, Bb8Redis, DeadpoolCounter, DeadpoolPg, Hold, NoPoolPg, NoPoolRedis,
    OursCounter, OursPg, OursRedis,
};
use deadpool_postgres::RecyclingMethod;
use pool_core::tls::Sourced;
use std::path::Path;
use std::time::Duration;

/// Row names, stable: the docs and the goal checks refer to them.
pub mod names {
    /// Our PostgreSQL pool, default settings (pre-ping on, 0.5 s window).
    pub const OURS_PG: &str = "ours (pool-postgres)";
    /// Our PostgreSQL pool with `DB_POOL_RESET_ON_RETURN=none` (the
    /// default row resets with `rollback`).
    pub const OURS_PG_NO_RESET: &str = "ours, reset on return none";
    /// Raw deadpool-postgres, `RecyclingMethod::Fast`.
    pub const DEADPOOL_FAST: &str = "deadpool-postgres Fast";
    /// Raw deadpool-postgres, `RecyclingMethod::Verified`.
    pub const DEADPOOL_VERIFIED: &str = "deadpool-postgres Verified";
    /// 8 dedicated tokio-postgres clients.
    pub const NO_POOL_PG: &str = "no pool (8 dedicated clients)";
    /// Our Redis pool, default settings.
    pub const OURS_REDIS: &str = "ours (pool-redis)";
    /// Our Redis pool with `REDIS_POOL_RESET_ON_RETURN=none`.
    pub const OURS_REDIS_NO_RESET: &str = "ours, reset on return none (redis)";
    /// Raw bb8-redis, defaults (`test_on_check_out` = true).
    pub const BB8_REDIS: &str = "bb8-redis (defaults: PING on checkout)";
    /// 8 dedicated multiplexed connections.
    pub const NO_POOL_REDIS: &str = "no pool (8 dedicated connections)";
    /// Our engine around a counter.
    pub const OURS_COUNTER: &str = "ours (pool-core)";
    /// The same with every upkeep feature on (min idle, idle timeout,
    /// keepalive, leak detection, recycle).
    pub const OURS_COUNTER_UPKEEP: &str = "ours, every upkeep feature on";
    /// Raw deadpool around a counter.
    pub const DEADPOOL_COUNTER: &str = "deadpool";
    /// Raw deadpool around a counter with a 30 s `wait_timeout` (as our
    /// pool always has a `pool_timeout`).
    pub const DEADPOOL_COUNTER_TIMEOUT: &str = "deadpool (wait_timeout 30 s)";
    /// Raw bb8 around a counter, no checkout test.
    pub const BB8_COUNTER: &str = "bb8 (test_on_check_out = false)";
    /// Raw bb8 around a counter, with its default checkout test.
    pub const BB8_COUNTER_TESTED: &str = "bb8 (test_on_check_out = true)";
}

/// The PostgreSQL exhaustion rows: ours (reset on return `rollback`, the
/// default, and `none`), deadpool Fast and Verified, no pool.
pub async fn pg_rows(url: &str) -> Vec<Row> {
    let ours = OursPg::new(url, |_| {});
    let pool = ours.0.clone();
    vec![
        Row::new("ours", names::OURS_PG, ours).with_counters(move || pool.status().counters),
        Row::new(
            "ours-no-reset",
            names::OURS_PG_NO_RESET,
            OursPg::new(url, |s| s.reset_on_return = pool_core::ResetOnReturn::None),
        ),
        Row::new(
            "deadpool-fast",
            names::DEADPOOL_FAST,
            DeadpoolPg::new(url, RecyclingMethod::Fast),
        ),
        Row::new(
            "deadpool-verified",
            names::DEADPOOL_VERIFIED,
            DeadpoolPg::new(url, RecyclingMethod::Verified),
        ),
        Row::new(
            "no-pool",
            names::NO_POOL_PG,
            NoPoolPg::connect(url).await.expect("connect to PostgreSQL"),
        ),
    ]
}

/// The Redis exhaustion rows: ours (reset on return `rollback`, the
/// default, and `none`), bb8-redis (defaults), no pool.
pub async fn redis_rows(url: &str) -> Vec<Row> {
    let ours = OursRedis::new(url, |_| {});
    let pool = ours.0.clone();
    vec![
        Row::new("ours", names::OURS_REDIS, ours).with_counters(move || pool.status().counters),
        Row::new(
            "ours-no-reset",
            names::OURS_REDIS_NO_RESET,
            OursRedis::new(url, |s| s.reset_on_return = pool_core::ResetOnReturn::None),
        ),
        Row::new("bb8", names::BB8_REDIS, Bb8Redis::new(url, true).await),
        Row::new(
            "no-pool",
            names::NO_POOL_REDIS,
            NoPoolRedis::connect(url).await.expect("connect to Redis"),
        ),
    ]
}

/// The TLS rows for PostgreSQL, plaintext first, then the same subjects
/// over TLS, against one server that accepts both (`url`: by the name on
/// its certificate, no parameters): ours (`sslmode=disable`, then
/// `verify-full` against `ca`) and raw deadpool-postgres Fast (plaintext,
/// then with our pool's own rustls connector). See [`crate::report::tls_table`].
pub fn pg_tls_rows(url: &str, ca: &Path) -> Vec<Row> {
    let plain = format!("{url}?sslmode=disable");
    let tls = format!("{url}?sslmode=verify-full&sslrootcert={}", ca.display());
    let connector = pool_postgres::manager::pg_tls(&crate::subjects::our_settings(&tls))
        .expect("valid TLS settings")
        .rustls_connector()
        .cloned()
        .expect("a TLS connector for verify-full");
    let ours_plain = OursPg::new(&plain, |_| {});
    let ours_tls = OursPg::new(&tls, |_| {});
    vec![
        Row::new("ours-plain", names::OURS_PG, ours_plain),
        Row::new(
            "deadpool-fast-plain",
            names::DEADPOOL_FAST,
            DeadpoolPg::new(&plain, RecyclingMethod::Fast),
        ),
        Row::new("ours-tls", names::OURS_PG, ours_tls),
        Row::new(
            "deadpool-fast-tls",
            names::DEADPOOL_FAST,
            DeadpoolPg::tls(url, connector, RecyclingMethod::Fast),
        ),
    ]
}

/// The TLS rows for Redis, plaintext first (`plain_url`), then the same
/// subjects over TLS (`tls_url`, `rediss://` by the name on the
/// certificate, verified against `ca`): ours, bb8-redis (defaults) and no
/// pool; the raw ones use the connection info our pool builds (the same
/// TLS parameters and TCP options).
pub async fn redis_tls_rows(plain_url: &str, tls_url: &str, ca: &Path) -> Vec<Row> {
    let settings = |url: &str, ca: Option<&Path>| {
        let mut s = crate::subjects::our_settings(url);
        s.url_var = "REDIS_URL".into();
        s.tls.root_cert = ca.map(|c| Sourced::new(c.display().to_string(), "REDIS_TLS_CA_FILE"));
        s
    };
    let mut rows = Vec::new();
    for (suffix, url, ca) in [("plain", plain_url, None), ("tls", tls_url, Some(ca))] {
        let s = settings(url, ca);
        let info = pool_redis::manager::connection_info(&s).expect("valid Redis settings");
        rows.push(Row::new(
            &format!("ours-{suffix}"),
            names::OURS_REDIS,
            OursRedis::new(url, |o| o.tls = s.tls.clone()),
        ));
        rows.push(Row::new(
            &format!("bb8-{suffix}"),
            names::BB8_REDIS,
            Bb8Redis::new(info.clone(), true).await,
        ));
        rows.push(Row::new(
            &format!("no-pool-{suffix}"),
            names::NO_POOL_REDIS,
            NoPoolRedis::connect(info).await.expect("connect to Redis"),
        ));
    }
    rows
}

/// The three validation settings of our pools.
const VALIDATION: [(&str, &str, Option<Duration>); 3] = [
    ("pre-ping-off", "ours, pre-ping off", None),
    (
        "window-default",
        "ours, pre-ping on, 0.5 s window (default)",
        Some(Duration::from_millis(500)),
    ),
    (
        "window-0",
        "ours, pre-ping on, window 0 (ping every checkout)",
        Some(Duration::ZERO),
    ),
];

/// Validation rows for PostgreSQL: our pool with pre-ping off, on with the
/// default window, on with window 0; raw deadpool Fast / Verified for
/// reference.
pub fn pg_validation_rows(url: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for (id, name, window) in VALIDATION {
        let ours = OursPg::new(url, |s| match window {
            None => s.pre_ping = false,
            Some(w) => s.pre_ping_window = w,
        });
        let pool = ours.0.clone();
        rows.push(Row::new(id, name, ours).with_counters(move || pool.status().counters));
    }
    rows.push(Row::new(
        "deadpool-fast",
        names::DEADPOOL_FAST,
        DeadpoolPg::new(url, RecyclingMethod::Fast),
    ));
    rows.push(Row::new(
        "deadpool-verified",
        names::DEADPOOL_VERIFIED,
        DeadpoolPg::new(url, RecyclingMethod::Verified),
    ));
    rows
}

/// Validation rows for Redis: our pool in the three settings; raw bb8-redis
/// without and with its checkout `PING` for reference.
pub async fn redis_validation_rows(url: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for (id, name, window) in VALIDATION {
        let ours = OursRedis::new(url, |s| match window {
            None => s.pre_ping = false,
            Some(w) => s.pre_ping_window = w,
        });
        let pool = ours.0.clone();
        rows.push(Row::new(id, name, ours).with_counters(move || pool.status().counters));
    }
    rows.push(Row::new(
        "bb8-untested",
        "bb8-redis (test_on_check_out = false)",
        Bb8Redis::new(url, false).await,
    ));
    rows.push(Row::new(
        "bb8",
        names::BB8_REDIS,
        Bb8Redis::new(url, true).await,
    ));
    rows
}

/// Every upkeep feature on, with periods a real service would use:
/// `min_idle` = the pool, 10 min idle timeout, 60 s keepalive and leak
/// threshold, 1 h recycle (the housekeeper runs every 15 s).
pub fn upkeep_on(s: &mut pool_core::PoolSettings) {
    s.min_idle = s.pool_size;
    s.idle_timeout = Some(Duration::from_secs(600));
    s.keepalive = Some(Duration::from_secs(60));
    s.leak_threshold = Some(Duration::from_secs(60));
    s.pool_recycle = Some(Duration::from_secs(3600));
}

/// Bookkeeping rows (a free counter connection): ours (upkeep off, then
/// every upkeep feature on), deadpool (without and with a wait timeout), bb8
/// without and with its checkout test.
pub async fn bookkeeping_rows(hold: Hold) -> Vec<Row> {
    vec![
        {
            let ours = OursCounter::new(hold, |_| {});
            let pool = ours.0.clone();
            Row::new("ours", names::OURS_COUNTER, ours)
                .with_counters(move || pool.status().counters)
        },
        {
            let ours = OursCounter::new(hold, upkeep_on);
            let pool = ours.0.clone();
            Row::new("ours-upkeep", names::OURS_COUNTER_UPKEEP, ours)
                .with_counters(move || pool.status().counters)
        },
        Row::new(
            "deadpool",
            names::DEADPOOL_COUNTER,
            DeadpoolCounter::new(hold, None),
        ),
        Row::new(
            "deadpool-timeout",
            names::DEADPOOL_COUNTER_TIMEOUT,
            DeadpoolCounter::new(hold, Some(Duration::from_secs(30))),
        ),
        Row::new(
            "bb8",
            names::BB8_COUNTER,
            Bb8CounterPool::new(hold, false, None).await,
        ),
        Row::new(
            "bb8-tested",
            names::BB8_COUNTER_TESTED,
            Bb8CounterPool::new(hold, true, None).await,
        ),
    ]
}

/// Timeout rows (pool of 8, all held, timeout `t`): ours around a counter,
/// ours on PostgreSQL (when a URL is given), deadpool (`wait_timeout`), bb8
/// (`connection_timeout`).
pub async fn timeout_rows(t: Duration, pg_url: Option<&str>) -> Vec<TimeoutRow> {
    let mut rows = vec![TimeoutRow::new(
        "ours",
        names::OURS_COUNTER,
        OursCounter::new(Hold::Nothing, |s| s.pool_timeout = t),
    )
    .await
    .expect("hold the counter pool")];
    if let Some(url) = pg_url {
        rows.push(
            TimeoutRow::new(
                "ours-pg",
                names::OURS_PG,
                OursPg::new(url, |s| s.pool_timeout = t),
            )
            .await
            .expect("hold the PostgreSQL pool"),
        );
    }
    rows.push(
        TimeoutRow::new(
            "deadpool",
            "deadpool (wait_timeout)",
            DeadpoolCounter::new(Hold::Nothing, Some(t)),
        )
        .await
        .expect("hold the deadpool pool"),
    );
    rows.push(
        TimeoutRow::new(
            "bb8",
            "bb8 (connection_timeout)",
            Bb8CounterPool::new(Hold::Nothing, false, Some(t)).await,
        )
        .await
        .expect("hold the bb8 pool"),
    );
    rows
}
