//! Every endpoint's status and body, against private password-protected
//! servers (never the machine's own 5432/6379).

mod common;

use common::{parse_prometheus, value, Backend, Servers, PG_PASSWORD};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The keys every component report has.
fn assert_report_shape(r: &Value, pool: &str) {
    for key in [
        "status",
        "latency_ms",
        "timeout_ms",
        "checked_at",
        "target",
        "last_error",
        "pool",
    ] {
        assert!(r.get(key).is_some(), "{key} missing: {r}");
    }
    assert!(r["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(r["timeout_ms"], 1000);
    assert!(r["checked_at"].as_str().unwrap().ends_with('Z'), "{r}");
    let p = &r["pool"];
    assert_eq!(p["name"], pool, "{r}");
    for key in [
        "pool_size",
        "max_overflow",
        "max_size",
        "pool_timeout",
        "open",
        "idle",
        "in_use",
        "overflow_in_use",
        "waiting",
        "connecting",
    ] {
        assert!(p.get(key).is_some(), "pool.{key} missing: {r}");
    }
    let c = &p["counters"];
    for key in [
        "checkouts",
        "timeouts",
        "connect_failures",
        "created",
        "closed",
    ] {
        assert!(c.get(key).is_some(), "pool.counters.{key} missing: {r}");
    }
    assert!(c["checkouts"].as_u64().unwrap() >= 1, "{r}");
}

#[test]
fn health_endpoints_report_every_component() {
    let servers = Servers::start();
    let app = Backend::start(&servers, &[]);

    let r = app.get("/health/simple");
    assert_eq!(r.expect_json(200), serde_json::json!({"status": "up"}));
    assert_eq!(r.header("cache-control"), Some("no-store"));

    let r = app.get("/health");
    let body = r.expect_json(200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(body["status"], "up", "{body}");
    let components = body["components"].as_object().unwrap();
    assert_eq!(
        components.keys().collect::<Vec<_>>(),
        ["database", "redis"],
        "{body}"
    );
    let db = &body["components"]["database"];
    assert_eq!(db["status"], "up", "{body}");
    assert_report_shape(db, "db");
    assert!(db.get("error").is_none() && db.get("reason").is_none());
    assert!(
        db["target"]
            .as_str()
            .unwrap()
            .starts_with("postgres://postgres@127.0.0.1:"),
        "{db}"
    );
    let redis = &body["components"]["redis"];
    assert_eq!(redis["status"], "up", "{body}");
    assert_report_shape(redis, "redis");
    assert!(redis["target"]
        .as_str()
        .unwrap()
        .starts_with("redis://127.0.0.1:"));

    let db = app.get("/health/database").expect_json(200);
    assert_eq!(db["status"], "up");
    assert_report_shape(&db, "db");
    let redis = app.get("/health/redis").expect_json(200);
    assert_eq!(redis["status"], "up");
    assert_report_shape(&redis, "redis");

    // The Redis probe writes and deletes its own key: nothing is left.
    let keys = servers.redis.cmd(&["KEYS", "pool-redis:health:*"]).unwrap();
    assert!(keys.trim().is_empty(), "health keys left behind: {keys:?}");
    app.assert_no_secret();
}

#[test]
fn the_pools_are_warm_before_health_reports_ready() {
    let servers = Servers::start();
    let app = Backend::start(
        &servers,
        &[("DB_POOL_SIZE", "3"), ("REDIS_POOL_MIN_IDLE", "2")],
    );
    // The very first request: every connection was opened before the
    // service listened; the probes reused them.
    let body = app.get("/health").expect_json(200);
    for (component, warm) in [("database", 3), ("redis", 2)] {
        let pool = &body["components"][component]["pool"];
        assert_eq!(pool["counters"]["created"], warm, "{component}: {body}");
        assert_eq!(pool["open"], warm, "{component}: {body}");
    }
}

#[test]
fn counters_use_both_pools() {
    let servers = Servers::start();
    let app = Backend::start(&servers, &[]);

    for expected in 1..=3 {
        let body = app.post("/counter/visits").expect_json(200);
        assert_eq!(
            body,
            serde_json::json!({"name": "visits", "value": expected, "source": "database", "cached": true})
        );
    }
    let body = app.get("/counter/visits").expect_json(200);
    assert_eq!(body["value"], 3);
    assert_eq!(body["source"], "cache");

    // A cache miss reads PostgreSQL and fills the cache again.
    servers
        .redis
        .cmd(&["DEL", "backend:counter:visits"])
        .unwrap();
    let body = app.get("/counter/visits").expect_json(200);
    assert_eq!(
        (body["value"].as_i64(), body["source"].as_str()),
        (Some(3), Some("database"))
    );
    let body = app.get("/counter/visits").expect_json(200);
    assert_eq!(body["source"], "cache");
    // The row really is in PostgreSQL.
    assert_eq!(
        servers
            .pg
            .psql("SELECT value FROM counters WHERE name = 'visits'")
            .unwrap(),
        "3"
    );

    let body = app.get("/counter/never-set").expect_json(404);
    assert!(
        body["error"].as_str().unwrap().contains("never-set"),
        "{body}"
    );
    let body = app.post("/counter/a%20b").expect_json(400);
    assert!(
        body["error"].as_str().unwrap().contains("1 to 64"),
        "{body}"
    );
    let body = app.get("/no/such/route").expect_json(404);
    assert!(body["error"].is_string());
    let body = app.get("/slow?ms=50").expect_json(200);
    assert_eq!(body, serde_json::json!({"slept_ms": 50}));
    app.get("/slow?ms=999999").expect_json(400);
    // A query string that does not parse is a JSON 400 naming the
    // parameter, like every other error (not axum's text/plain).
    let body = app.get("/slow?ms=abc").expect_json(400);
    assert!(body["error"].as_str().unwrap().contains("ms"), "{body}");
    // A known route with another method: a JSON 405 and the Allow header.
    let r = common::request(app.addr, "DELETE", "/health").unwrap();
    let body = r.expect_json(405);
    assert!(body["error"].as_str().unwrap().contains("method"), "{body}");
    assert!(r.header("allow").unwrap_or("").contains("GET"), "{r:?}");
    let r = common::request(app.addr, "PUT", "/counter/a").unwrap();
    r.expect_json(405);
    app.assert_no_secret();
}

#[test]
fn metrics_are_prometheus_text_and_move() {
    let servers = Servers::start();
    let app = Backend::start(&servers, &[]);
    app.post("/counter/m").expect_json(200);

    let r = app.get("/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let (samples, types) = parse_prometheus(&r.body);
    let type_of = |name: &str| {
        types
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("no TYPE for {name}:\n{}", r.body))
    };
    for (name, kind) in [
        ("db_pool_connections", "gauge"),
        ("db_pool_waiting_checkouts", "gauge"),
        ("db_pool_connections_min", "gauge"),
        ("db_pool_connections_max", "gauge"),
        ("db_pool_checkouts_total", "counter"),
        ("db_pool_checkout_timeouts_total", "counter"),
        ("db_pool_checkout_errors_total", "counter"),
        ("db_pool_checkouts_failed_fast_total", "counter"),
        ("db_pool_connections_created_total", "counter"),
        ("db_pool_connections_closed_total", "counter"),
        ("db_pool_connect_failures_total", "counter"),
        ("db_pool_validations_total", "counter"),
        ("db_pool_keepalives_total", "counter"),
        ("db_pool_leaks_total", "counter"),
        ("db_pool_checkout_wait_seconds", "histogram"),
        ("db_pool_connection_usage_seconds", "histogram"),
        ("db_pool_connection_create_seconds", "histogram"),
    ] {
        assert_eq!(type_of(name), kind, "{name}");
        for pool in ["db", "redis"] {
            assert!(
                samples
                    .iter()
                    .any(|s| s.name.starts_with(name) && s.label("pool") == Some(pool)),
                "no {name} sample for pool {pool}:\n{}",
                r.body
            );
        }
    }
    for state in ["idle", "in_use", "open", "overflow"] {
        assert!(
            value(
                &samples,
                "db_pool_connections",
                &[("pool", "db"), ("state", state)]
            )
            .is_some(),
            "state {state}"
        );
    }
    for reason in [
        "broken",
        "recycled",
        "overflow",
        "validation_failed",
        "pool_closed",
    ] {
        assert!(
            value(
                &samples,
                "db_pool_connections_closed_total",
                &[("pool", "redis"), ("reason", reason)]
            )
            .is_some(),
            "reason {reason}"
        );
    }
    assert_eq!(
        value(&samples, "db_pool_connections_min", &[("pool", "db")]),
        Some(5.0)
    );
    assert_eq!(
        value(&samples, "db_pool_connections_max", &[("pool", "db")]),
        Some(15.0)
    );
    assert!(
        value(
            &samples,
            "db_pool_connections",
            &[("pool", "db"), ("state", "open")]
        )
        .unwrap()
            >= 1.0
    );
    // Histograms have buckets up to +Inf.
    assert!(
        samples
            .iter()
            .any(|s| s.name == "db_pool_checkout_wait_seconds_bucket"
                && s.label("pool") == Some("db")
                && s.label("le") == Some("+Inf")),
        "{}",
        r.body
    );

    let checkouts = |s: &[common::Sample], pool| {
        value(s, "db_pool_checkouts_total", &[("pool", pool)]).unwrap()
    };
    let created = value(
        &samples,
        "db_pool_connections_created_total",
        &[("pool", "db")],
    )
    .unwrap();
    assert!(created >= 1.0);
    let (db0, redis0) = (checkouts(&samples, "db"), checkouts(&samples, "redis"));
    let usage0 = value(
        &samples,
        "db_pool_connection_usage_seconds_count",
        &[("pool", "db")],
    )
    .unwrap();
    for _ in 0..5 {
        app.post("/counter/m").expect_json(200);
    }
    let (samples, _) = parse_prometheus(&app.get("/metrics").body);
    assert!(checkouts(&samples, "db") >= db0 + 5.0);
    assert!(checkouts(&samples, "redis") >= redis0 + 5.0);
    assert!(
        value(
            &samples,
            "db_pool_connection_usage_seconds_count",
            &[("pool", "db")]
        )
        .unwrap()
            >= usage0 + 5.0
    );
    assert!(
        value(
            &samples,
            "db_pool_checkout_wait_seconds_count",
            &[("pool", "db")]
        )
        .unwrap()
            >= db0 + 5.0
    );
    app.assert_no_secret();
}

#[test]
fn an_exhausted_pool_is_degraded_not_down() {
    let servers = Servers::start();
    let app = Backend::start(&servers, &[("DB_POOL_SIZE", "1"), ("DB_MAX_OVERFLOW", "0")]);
    let addr = app.addr;
    // Hold the only PostgreSQL connection for a while.
    let slow = std::thread::spawn(move || common::request(addr, "GET", "/slow?ms=4000").unwrap());
    common::wait_until(
        "the slow request holds the connection",
        Duration::from_secs(5),
        || {
            let (s, _) = parse_prometheus(&app.get("/metrics").body);
            (value(
                &s,
                "db_pool_connections",
                &[("pool", "db"), ("state", "in_use")],
            ) == Some(1.0))
            .then_some(())
        },
    );
    let started = Instant::now();
    let r = app.get("/health/database");
    let body = r.expect_json(503);
    // The probe waits for its own timeout (1 s), not pool_timeout.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(body["status"], "degraded", "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("1 of 1"),
        "{body}"
    );
    assert_eq!(body["error"]["class"], "timeout", "{body}");
    let all = app.get("/health").expect_json(503);
    assert_eq!(all["status"], "degraded");
    assert_eq!(all["components"]["redis"]["status"], "up");
    // The liveness endpoint does not care.
    app.get("/health/simple").expect_json(200);

    assert_eq!(slow.join().unwrap().status, 200);
    common::wait_until("healthy again", Duration::from_secs(5), || {
        (app.get("/health/database").status == 200).then_some(())
    });
    app.assert_no_secret();
}

#[test]
fn bad_settings_exit_2_without_leaking() {
    let servers = Servers::start();
    let mut env = common::base_env();
    env.extend(servers.env());
    for (var, value) in [
        ("DB_POOL_SIZE", "abc"),
        ("REDIS_POOL_TIMEOUT", "-1"),
        ("PORT", "http"),
        ("HEALTH_TIMEOUT", "0"),
    ] {
        let mut e = env.clone();
        e.push((var.into(), value.into()));
        let out = common::command(&e).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(stderr.contains(var) && stderr.contains(value), "{stderr}");
        assert!(!stderr.contains(PG_PASSWORD), "{stderr}");
    }
    let mut e = env.clone();
    e.retain(|(k, _)| k != "DATABASE_URL");
    let out = common::command(&e).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL is not set"));
}

#[test]
fn a_wrong_password_fails_startup_at_once_without_leaking() {
    let servers = Servers::start();
    let wrong = "wrong-Secret-9999-pw";
    let mut env = common::base_env();
    env.extend(servers.env());
    env.retain(|(k, _)| k != "DATABASE_URL");
    env.push(("DATABASE_URL".into(), servers.pg.url_with_password(wrong)));
    let started = Instant::now();
    let out = common::command(&env).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
    for secret in [wrong, PG_PASSWORD, common::REDIS_PASSWORD] {
        assert!(!stderr.contains(secret), "{stderr}");
    }
}
