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
    // Requests that need PostgreSQL fail cleanly, with a JSON error.
    let err = app.post("/counter/outage").expect_json(503);
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
