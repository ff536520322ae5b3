//! Health follows the servers: 503 while one is stopped, 200 again after
//! it is back, with bounded waits.

mod common;

use common::{wait_until, Backend, Servers};
use std::time::Duration;

/// Longest time for the service to notice a server came back: the
/// connect backoff is capped at 1 s, the health timeout is 1 s.
const RECOVERY: Duration = Duration::from_secs(20);

#[test]
fn postgres_outage_is_503_then_200_again() {
    let mut servers = Servers::start();
    let app = Backend::start(&servers, &[]);
    assert_eq!(app.get("/health").status, 200);
    app.post("/counter/outage").expect_json(200);

    servers.pg.stop_fast().unwrap();
    let db = wait_until("database down", Duration::from_secs(10), || {
        let r = app.get("/health/database");
        (r.status == 503).then(|| r.expect_json(503))
    });
    assert_eq!(db["status"], "down", "{db}");
    assert!(db["reason"].is_string(), "{db}");
    assert!(db["error"]["message"].is_string(), "{db}");
    assert!(db["error"]["class"].is_string(), "{db}");
    let last = &db["last_error"];
    assert!(
        ["unavailable", "disconnected", "timeout"].contains(&last["class"].as_str().unwrap()),
        "{db}"
    );
    assert!(last["at"].as_str().unwrap().ends_with('Z'), "{db}");
    assert!(last["seconds_ago"].as_f64().unwrap() < 10.0, "{db}");
    // A probe never takes much longer than its timeout (1 s).
    assert!(db["latency_ms"].as_f64().unwrap() < 1500.0, "{db}");

    let all = app.get("/health").expect_json(503);
    assert_eq!(all["status"], "down");
    assert_eq!(all["components"]["database"]["status"], "down");
    assert_eq!(all["components"]["redis"]["status"], "up");
    app.get("/health/redis").expect_json(200);
    app.get("/health/simple").expect_json(200);
    // 503s tell clients when to ask again.
    assert_eq!(app.get("/health").header("retry-after"), Some("1"));
    // Requests that need PostgreSQL fail cleanly, with a JSON error.
    let r = app.post("/counter/outage");
    assert_eq!(r.header("retry-after"), Some("1"), "{r:?}");
    let err = r.expect_json(503);
    assert!(
        err["error"].as_str().unwrap().contains("pool 'db'"),
        "{err}"
    );
    assert!(err["class"].is_string(), "{err}");
    // Reads are still served from the cache.
    let cached = app.get("/counter/outage").expect_json(200);
    assert_eq!(cached["source"], "cache");

    servers.pg.start_again().unwrap();
    wait_until("healthy again", RECOVERY, || {
        (app.get("/health").status == 200).then_some(())
    });
    let db = app.get("/health/database").expect_json(200);
    assert_eq!(db["status"], "up");
    // The outage stays visible in the report.
    assert!(db["last_error"].is_object(), "{db}");
    assert_eq!(app.post("/counter/outage").expect_json(200)["value"], 2);
    app.assert_no_secret();
}

#[test]
fn redis_outage_is_503_then_200_again() {
    let mut servers = Servers::start();
    let app = Backend::start(&servers, &[]);
    assert_eq!(app.get("/health").status, 200);
    app.post("/counter/r").expect_json(200);

    servers.redis.stop().unwrap();
    let redis = wait_until("redis down", Duration::from_secs(10), || {
        let r = app.get("/health/redis");
        (r.status == 503).then(|| r.expect_json(503))
    });
    assert_eq!(redis["status"], "down", "{redis}");
    assert!(redis["error"]["class"].is_string(), "{redis}");
    let all = app.get("/health").expect_json(503);
    assert_eq!(all["components"]["redis"]["status"], "down");
    assert_eq!(all["components"]["database"]["status"], "up");
    app.get("/health/database").expect_json(200);

    // The cache is optional: counters still work from PostgreSQL.
    let body = app.post("/counter/r").expect_json(200);
    assert_eq!(
        (body["value"].as_i64(), body["cached"].as_bool()),
        (Some(2), Some(false))
    );
    let body = app.get("/counter/r").expect_json(200);
    assert_eq!(body["source"], "database");

    servers.redis.start_again().unwrap();
    wait_until("healthy again", RECOVERY, || {
        (app.get("/health").status == 200).then_some(())
    });
    assert_eq!(app.post("/counter/r").expect_json(200)["cached"], true);
    app.assert_no_secret();
}

/// With Redis gone, a cache read waits for it once (`CACHE_TIMEOUT`), not
/// once for the read and again for the write-back; a frozen Redis (socket
/// open, no reply) is bounded the same way.
#[test]
fn an_unavailable_cache_costs_one_cache_timeout_per_request() {
    let mut servers = Servers::start();
    // A long CACHE_TIMEOUT so that one wait and two waits are far apart.
    let app = Backend::start(&servers, &[("CACHE_TIMEOUT", "1.5")]);
    // 1.5 s once, with slack; twice would be 3 s.
    const ONE_WAIT: Duration = Duration::from_millis(2400);
    app.post("/counter/once").expect_json(200);
    // Drop the cached value so that the read goes to PostgreSQL.
    servers.redis.cmd(&["DEL", "backend:counter:once"]).unwrap();

    // Frozen: the checkout's ping or the command gets no reply.
    servers.redis.freeze().unwrap();
    let started = std::time::Instant::now();
    let body = app.get("/counter/once").expect_json(200);
    let took = started.elapsed();
    servers.redis.thaw().unwrap();
    assert_eq!(
        (body["source"].as_str(), body["cached"].as_bool()),
        (Some("database"), Some(false)),
        "{body}"
    );
    assert!(took < ONE_WAIT, "at most one CACHE_TIMEOUT: {took:?}");

    // Stopped: connects are refused until the checkout gives up.
    servers.redis.stop().unwrap();
    let started = std::time::Instant::now();
    let body = app.get("/counter/once").expect_json(200);
    let took = started.elapsed();
    assert_eq!(body["source"], "database", "{body}");
    assert!(
        took >= Duration::from_millis(1400),
        "waited for the cache: {took:?}"
    );
    assert!(took < ONE_WAIT, "one CACHE_TIMEOUT, not two: {took:?}");
    // The write-back was not tried after the read found Redis unavailable.
    let logs = app.logs();
    assert!(!logs.contains("write skipped"), "{logs}");
    app.assert_no_secret();
}
