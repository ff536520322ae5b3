//! Readiness and classification against private PostgreSQL and Redis
//! servers from `pool-testkit` (never the machine's own 5432/6379).

mod common;

use common::{listening, run, wait_for_db, Running};
use pool_testkit::{PgOptions, PgServer, RedisOptions, RedisServer};
use std::time::{Duration, Instant};

#[test]
fn postgres_that_comes_up_after_the_wait_starts() {
    let mut pg = PgServer::start().unwrap();
    pg.stop_fast().unwrap();
    let mut cmd = wait_for_db();
    cmd.args(["--timeout", "30", &pg.url()]);
    let mut running = Running::spawn(cmd);
    running.wait_for_line("Connection refused", Duration::from_secs(10));
    pg.start_again().unwrap();
    let up = Instant::now();
    let out = running.finish();
    out.expect_code(0).stderr_has("ready");
    // The backoff is capped at 1 s: readiness is noticed within about that.
    assert!(up.elapsed() < Duration::from_secs(3), "{:?}", up.elapsed());
}

#[test]
fn postgres_answering_57p03_keeps_waiting() {
    let pg = PgServer::start_with(PgOptions {
        standby_57p03: true,
        ..Default::default()
    })
    .unwrap();
    let out = run(&["--timeout", "2", &pg.url()]);
    out.expect_code(124)
        .stderr_has("57P03")
        .stderr_has("not accepting connections");
    assert!(out.elapsed < Duration::from_secs(5), "{:?}", out.elapsed);
}

#[test]
fn a_frozen_postgres_times_out_each_attempt_and_the_deadline_holds() {
    let pg = PgServer::start().unwrap();
    pg.freeze().unwrap();
    let out = run(&["--timeout", "2", "--attempt-timeout", "0.5", &pg.url()]);
    pg.thaw().unwrap();
    out.expect_code(124).stderr_has("no answer within 0.5s");
    assert!(out.elapsed < Duration::from_secs(4), "{:?}", out.elapsed);
}

#[test]
fn redis_replica_answering_masterdown_keeps_waiting() {
    let redis = RedisServer::start_with(RedisOptions {
        replica_of_unreachable_master: true,
        ..Default::default()
    })
    .unwrap();
    run(&["--timeout", "2", &redis.url()])
        .expect_code(124)
        .stderr_has("MASTERDOWN")
        .stderr_has("hint: this is a replica");
}

#[test]
fn postgres_auth_errors_are_fatal_at_once() {
    let pg = PgServer::start_with(PgOptions {
        password: Some("right-pw".into()),
        ..Default::default()
    })
    .unwrap();
    let secret = "wrong-pg-pw-31337";
    let out = run(&["--timeout", "20", &pg.url_with_password(secret)]);
    out.expect_code(3)
        .stderr_has("28P01")
        .stderr_has("fatal")
        .never_shows(secret);
    assert!(out.elapsed < Duration::from_secs(3), "{:?}", out.elapsed);

    // An unknown database is fatal too.
    let port = pg.port();
    let url = format!("postgres://postgres:right-pw@127.0.0.1:{port}/no_such_db");
    run(&["--timeout", "20", &url])
        .expect_code(3)
        .stderr_has("3D000")
        .never_shows("right-pw");
    // And fatal still wins over "not ready" with --once.
    run(&["--once", &pg.url_with_password(secret)])
        .expect_code(3)
        .never_shows(secret);
    run(&["--once", &pg.url()]).expect_code(0);
}

#[test]
fn redis_auth_errors_are_fatal_at_once() {
    let redis = RedisServer::start_with(RedisOptions {
        password: Some("right-redis-pw".into()),
        ..Default::default()
    })
    .unwrap();
    let secret = "wrong-redis-pw-31337";
    let out = run(&["--timeout", "20", &redis.url_with_password(secret)]);
    out.expect_code(3)
        .stderr_has("WRONGPASS")
        .never_shows(secret);
    assert!(out.elapsed < Duration::from_secs(3), "{:?}", out.elapsed);
    // No password at all: NOAUTH.
    let bare = format!("redis://127.0.0.1:{}/0", redis.port());
    run(&["--timeout", "20", &bare])
        .expect_code(3)
        .stderr_has("NOAUTH");
    run(&["--timeout", "20", &redis.url()])
        .expect_code(0)
        .never_shows("right-redis-pw");
}

#[test]
fn several_targets_at_once() {
    let pg = PgServer::start().unwrap();
    let redis = RedisServer::start().unwrap();
    let (_l, tcp) = listening();
    let out = run(&[
        "--json",
        "--timeout",
        "10",
        &pg.url(),
        &redis.url(),
        &tcp,
        "--",
        "sh",
        "-c",
        "echo started",
    ]);
    out.expect_code(0);
    let mut lines = out.stdout.lines();
    let report: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(lines.next(), Some("started"), "{}", out.stdout);
    assert_eq!(report["outcome"], "ready");
    let kinds: Vec<&str> = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["outcome"], "ready", "{t}");
            t["kind"].as_str().unwrap()
        })
        .collect();
    assert_eq!(kinds, ["postgres", "redis", "tcp"]);
}

#[test]
fn environment_fallback_uses_database_url_and_redis_url() {
    let pg = PgServer::start().unwrap();
    let redis = RedisServer::start().unwrap();
    let mut cmd = wait_for_db();
    cmd.args(["--json", "--timeout", "10"])
        .env("DATABASE_URL", pg.url())
        .env("REDIS_URL", redis.url());
    let out = Running::spawn(cmd).finish();
    out.expect_code(0);
    let v = out.json();
    let targets: Vec<&str> = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets.len(), 2, "{v}");
    assert!(targets[0].starts_with("postgres://"), "{v}");
    assert!(targets[1].starts_with("redis://"), "{v}");

    // Only one of them set: only that one is waited for.
    let mut cmd = wait_for_db();
    cmd.args(["--json", "--timeout", "10"])
        .env("REDIS_URL", redis.url());
    let v = Running::spawn(cmd).finish().json();
    assert_eq!(v["targets"].as_array().unwrap().len(), 1, "{v}");

    // A bad URL in the environment is a usage error naming the variable.
    let mut cmd = wait_for_db();
    cmd.env("DATABASE_URL", "postgres://u:env-secret@db:notaport/app");
    Running::spawn(cmd)
        .finish()
        .expect_code(2)
        .stderr_has("$DATABASE_URL")
        .never_shows("env-secret");
}

#[test]
fn doctor_on_healthy_servers() {
    let pg = PgServer::start().unwrap();
    let redis = RedisServer::start().unwrap();
    let out = run(&["doctor", &pg.url(), &redis.url()]);
    out.expect_code(0);
    let text = &out.stdout;
    for layer in [
        "dns",
        "tcp",
        "tls",
        "login",
        "query",
        "server",
        "capacity",
        "read_write",
    ] {
        assert!(
            text.contains(&format!("[ ok ] {layer}")),
            "{layer}:\n{text}"
        );
    }
    assert!(text.contains("max_connections=100"), "{text}");
    assert!(
        text.contains("DB_POOL_SIZE=5 + DB_MAX_OVERFLOW=10"),
        "{text}"
    );
    // Plain servers: TLS not negotiated (PostgreSQL's default prefer
    // accepts that).
    assert!(
        text.contains("[ ok ] tls        not negotiated: the server refused TLS"),
        "{text}"
    );
    // Header + 7 PostgreSQL layers + header + 6 Redis layers + summary.
    assert_eq!(text.lines().count(), 16, "{text}");

    // Too small for the configured pool: the capacity layer fails.
    let mut cmd = wait_for_db();
    cmd.args(["doctor", "--json", &pg.url()])
        .env("DB_POOL_SIZE", "90")
        .env("DB_MAX_OVERFLOW", "20");
    let out = Running::spawn(cmd).finish();
    out.expect_code(1);
    let v = out.json();
    assert_eq!(v["passed"], false);
    let layers = v["targets"][0]["layers"].as_array().unwrap();
    let capacity = layers.iter().find(|l| l["layer"] == "capacity").unwrap();
    assert_eq!(capacity["status"], "fail", "{v}");
    assert!(capacity["hint"]
        .as_str()
        .unwrap()
        .contains("max_connections"));

    // A wrong password fails the login layer, with the hint.
    let pw = PgServer::start_with(PgOptions {
        password: Some("right".into()),
        ..Default::default()
    })
    .unwrap();
    let out = run(&["doctor", &pw.url_with_password("doctor-wrong-pw")]);
    out.expect_code(1).never_shows("doctor-wrong-pw");
    assert!(out.stdout.contains("[FAIL] login"), "{}", out.stdout);
    assert!(out.stdout.contains("28P01"), "{}", out.stdout);
}

/// `DATABASE_URL_FILE` / `REDIS_URL_FILE` name files holding the URLs (Docker
/// secrets), so the password is not in the container's environment.
#[test]
fn url_files_stand_for_the_variables() {
    let redis = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redis_url");
    std::fs::write(&file, format!("{}\n", redis.url())).unwrap();
    let mut cmd = wait_for_db();
    cmd.args(["--json", "--timeout", "10"])
        .env("REDIS_URL_FILE", &file);
    let v = Running::spawn(cmd).finish().json();
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{v}");
    assert_eq!(targets[0]["outcome"], "ready", "{v}");

    // A file that cannot be read: a usage error naming the variable.
    let mut cmd = wait_for_db();
    cmd.env("DATABASE_URL_FILE", dir.path().join("missing"));
    Running::spawn(cmd)
        .finish()
        .expect_code(2)
        .stderr_has("DATABASE_URL_FILE")
        .stderr_has("missing");
}
