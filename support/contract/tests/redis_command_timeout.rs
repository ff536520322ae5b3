//! `REDIS_CONNECT_TIMEOUT` and `REDIS_COMMAND_TIMEOUT` on a real server:
//! redis-rs's own defaults (a 1 s connect cap, 500 ms per command) no
//! longer apply; a blocking command waits its own timeout; a server that
//! stops answering fails a command within the setting, with an error that
//! names it.

use pool_contract::scenarios::settings;
use pool_core::{ErrorClass, Manager, PoolSettings};
use pool_redis::redis::{self, AsyncCommands};
use pool_redis::RedisManager;
use pool_testkit::RedisServer;
use std::time::{Duration, Instant};

fn redis_settings(server: &RedisServer, command_timeout: Option<Duration>) -> PoolSettings {
    let mut s = settings(&server.url(), 1, 0);
    s.url_var = "REDIS_URL".into();
    s.command_timeout = command_timeout;
    s
}

/// Thaws the server however the test ends, so no stopped process is left.
struct Frozen<'a>(&'a RedisServer);

impl<'a> Frozen<'a> {
    fn new(server: &'a RedisServer) -> Self {
        server.freeze().expect("SIGSTOP the server");
        Frozen(server)
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        let _ = self.0.thaw();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blpop_with_its_own_timeout_returns_nil_after_it() {
    let server = RedisServer::start().expect("private Redis");
    // Without a command timeout (the default) and with one shorter than
    // the BLPOP's own: both wait out the 2 s and get nil.
    for command_timeout in [None, Some(Duration::from_millis(300))] {
        let pool = pool_redis::build_pool(redis_settings(&server, command_timeout)).unwrap();
        let mut conn = pool.get().await.unwrap();
        let started = Instant::now();
        let r: redis::RedisResult<Option<(String, String)>> =
            conn.blpop("pool-test:empty", 2.0).await;
        let took = started.elapsed();
        let popped = conn
            .observe(r)
            .unwrap_or_else(|e| panic!("{command_timeout:?}: BLPOP failed after {took:?}: {e}"));
        assert_eq!(popped, None, "{command_timeout:?}");
        assert!(
            took >= Duration::from_millis(1900),
            "{command_timeout:?}: BLPOP returned after {took:?}, before its own 2 s"
        );
        assert!(!conn.is_broken() && !conn.is_closed());
        // The connection is still good for the next command.
        let pong: String = redis::cmd("PING").query_async(&mut *conn).await.unwrap();
        assert_eq!(pong, "PONG");
        drop(conn);
        assert_eq!(pool.status().counters.closed.broken, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_fails_a_command_within_the_command_timeout() {
    let server = RedisServer::start().expect("private Redis");
    let limit = Duration::from_millis(400);
    let pool = pool_redis::build_pool(redis_settings(&server, Some(limit))).unwrap();
    let mut conn = pool.get().await.unwrap();
    let _: () = conn.set("pool-test:k", 1).await.unwrap();
    let frozen = Frozen::new(&server);
    let started = Instant::now();
    // Not passed through `observe`: the connection knows it timed out.
    let r: redis::RedisResult<Option<i64>> = conn.get("pool-test:k").await;
    let took = started.elapsed();
    let e = r.expect_err("a frozen server cannot answer");
    assert!(
        took >= limit,
        "failed after {took:?}, before the limit: {e}"
    );
    assert!(
        took < limit + Duration::from_millis(600),
        "failed only after {took:?}"
    );
    let message = pool_redis::classify::error_message(&e);
    assert!(
        message.contains("REDIS_COMMAND_TIMEOUT") && message.contains("0.4 s"),
        "{message}"
    );
    assert_eq!(pool_redis::classify(&e), ErrorClass::Timeout, "{message}");
    assert!(conn.is_closed(), "a timed-out connection is not reused");
    assert_eq!(conn.in_flight(), 1, "the GET is still unanswered");
    drop(conn);
    let closed = pool.status().counters.closed;
    assert_eq!(closed.in_flight, 1, "{closed:?}");
    // A blocking command on the frozen server gets its own timeout plus
    // the setting, not more.
    drop(frozen);
    let mut conn = pool.get().await.unwrap();
    let frozen = Frozen::new(&server);
    let started = Instant::now();
    let r: redis::RedisResult<Option<(String, String)>> = conn.blpop("pool-test:empty", 0.5).await;
    let took = started.elapsed();
    let e = r.expect_err("a frozen server cannot answer");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(1500),
        "BLPOP 0.5 with a 0.4 s command timeout failed after {took:?}: {e}"
    );
    drop(frozen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connect_timeout_is_not_cut_to_redis_rs_default_of_one_second() {
    let server = RedisServer::start().expect("private Redis");
    let mut s = redis_settings(&server, None);
    s.connect_timeout = Duration::from_millis(2500);
    let manager = RedisManager::new(&s).unwrap();
    // The kernel accepts the TCP connection; the stopped server never
    // answers the handshake or the PING.
    let frozen = Frozen::new(&server);
    let started = Instant::now();
    let r = manager.connect().await;
    let took = started.elapsed();
    drop(frozen);
    let e = r.expect_err("a frozen server cannot answer");
    assert!(
        took >= Duration::from_millis(2400),
        "the attempt gave up after {took:?}, before REDIS_CONNECT_TIMEOUT (2.5 s): {e}"
    );
    assert_eq!(manager.classify(&e), ErrorClass::Timeout, "{e}");
}
