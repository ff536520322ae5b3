//! Graceful shutdown: in-flight requests finish, the pools close, the
//! process exits 0 promptly.

mod common;

use common::{Backend, Servers};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

#[test]
fn sigterm_lets_a_slow_request_finish() {
    let servers = Servers::start();
    let mut app = Backend::start(&servers, &[]);
    let addr = app.addr;
    let slow = std::thread::spawn(move || common::request(addr, "GET", "/slow?ms=2000"));
    // Wait until the request is really in flight (its sleep is running).
    common::wait_until("pg_sleep running", Duration::from_secs(5), || {
        let n = servers
            .pg
            .psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'")
            .unwrap();
        (n != "0").then_some(())
    });
    let signalled = Instant::now();
    app.signal(Signal::SIGTERM);

    let response = slow
        .join()
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json(), serde_json::json!({"slept_ms": 2000}));
    let status = app.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", app.logs());
    // It waited for the request, and no longer than needed.
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "{:?}",
        signalled.elapsed()
    );
    let logs = app.logs();
    assert!(logs.contains("SIGTERM"), "{logs}");
    assert!(logs.contains("pools closed"), "{logs}");
    // New connections are refused once it is gone.
    assert!(common::request(addr, "GET", "/health/simple").is_err());
    app.assert_no_secret();
}

#[test]
fn sigint_when_idle_exits_at_once() {
    let servers = Servers::start();
    let mut app = Backend::start(&servers, &[]);
    app.get("/health").expect_json(200);
    let signalled = Instant::now();
    app.signal(Signal::SIGINT);
    let status = app.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", app.logs());
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "{:?}",
        signalled.elapsed()
    );
    assert!(app.logs().contains("SIGINT"));
}

#[test]
fn sigterm_during_the_startup_wait_exits_0() {
    // Both URLs point at ports that refuse: the service keeps waiting.
    let closed = pool_testkit::ClosedPort::bind().unwrap();
    let mut env = common::base_env();
    env.push((
        "DATABASE_URL".into(),
        format!(
            "postgres://app:{}@127.0.0.1:{}/app",
            common::PG_PASSWORD,
            closed.port()
        ),
    ));
    env.push((
        "REDIS_URL".into(),
        format!(
            "redis://:{}@127.0.0.1:{}/0",
            common::REDIS_PASSWORD,
            closed.port()
        ),
    ));
    let mut child = common::command(&env).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "still waiting");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Connection refused") || stderr.contains("refused"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(common::PG_PASSWORD) && !stderr.contains(common::REDIS_PASSWORD),
        "{stderr}"
    );
    // Nothing was served yet: no talk of in-flight requests.
    assert!(stderr.contains("during the startup wait"), "{stderr}");
    assert!(!stderr.contains("in-flight"), "{stderr}");
}

/// Starts the service with `SHUTDOWN_TIMEOUT`, puts a long request in
/// flight and sends SIGTERM.
fn shutting_down_with_a_slow_request(
    servers: &Servers,
    shutdown_timeout: &str,
) -> (
    Backend,
    std::thread::JoinHandle<std::io::Result<common::Resp>>,
) {
    let app = Backend::start(servers, &[("SHUTDOWN_TIMEOUT", shutdown_timeout)]);
    let addr = app.addr;
    let slow = std::thread::spawn(move || common::request(addr, "GET", "/slow?ms=20000"));
    common::wait_until("pg_sleep running", Duration::from_secs(5), || {
        let n = servers
            .pg
            .psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'")
            .unwrap();
        (n != "0").then_some(())
    });
    app.signal(Signal::SIGTERM);
    common::wait_until("the drain started", Duration::from_secs(5), || {
        app.logs()
            .contains("finishing in-flight requests")
            .then_some(())
    });
    (app, slow)
}

#[test]
fn a_second_sigterm_exits_at_once_with_143() {
    let servers = Servers::start();
    let (mut app, slow) = shutting_down_with_a_slow_request(&servers, "30");
    let signalled = Instant::now();
    app.signal(Signal::SIGTERM);
    let status = app.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(143), "{}", app.logs());
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "{:?}",
        signalled.elapsed()
    );
    assert!(
        app.logs().contains("second shutdown signal"),
        "{}",
        app.logs()
    );
    // The request in flight was cut off, not answered.
    assert!(slow.join().unwrap().map_or(true, |r| r.status != 200));
    app.assert_no_secret();
}

#[test]
fn shutdown_timeout_running_out_exits_3() {
    let servers = Servers::start();
    let (mut app, slow) = shutting_down_with_a_slow_request(&servers, "1");
    let status = app.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(3), "{}", app.logs());
    assert!(
        app.logs().contains("SHUTDOWN_TIMEOUT ran out"),
        "{}",
        app.logs()
    );
    assert!(slow.join().unwrap().map_or(true, |r| r.status != 200));
    app.assert_no_secret();
}
