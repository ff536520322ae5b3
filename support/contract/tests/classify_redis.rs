//! Redis's error classes against redis-rs's errors from a real server:
//! `-READONLY` after a demotion, `-OOM`, `-BUSY`, `-NOREPLICAS`; what each
//! does to the connection and to the pool. (`-MISCONF`, `-TRYAGAIN` and
//! `-CLUSTERDOWN` are pinned by parsing the server's exact replies, in
//! pool-redis's classify unit tests.)

use pool_contract::scenarios::settings;
use pool_core::{ErrorClass, Pool, Pooled};
use pool_redis::redis::{self, AsyncCommands};
use pool_redis::{RedisManager, RedisPool};
use pool_testkit::RedisServer;
use std::time::Duration;

fn pool(server: &RedisServer) -> RedisPool {
    pool_redis::build_pool(settings(&server.url(), 2, 0)).unwrap()
}

async fn one_in_hand_one_idle(pool: &Pool<RedisManager>) -> Pooled<RedisManager> {
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    drop(b);
    assert_eq!(pool.status().idle, 1);
    a
}

/// Sets `key`; returns the error, its class and its message.
async fn set_fails(conn: &mut Pooled<RedisManager>) -> (ErrorClass, String) {
    let r: redis::RedisResult<()> = conn.set("pool-test:k", 1).await;
    let e = r.as_ref().expect_err("the server refuses the write");
    let out = (
        pool_redis::classify(e),
        pool_redis::classify::error_message(e),
    );
    assert!(conn.observe(r).is_err());
    out
}

/// The connection is sound and the pool untouched after a `resources`
/// error.
async fn kept(pool: &RedisPool, mut conn: Pooled<RedisManager>) {
    assert!(!conn.is_broken() && !conn.is_closed());
    let pong: String = redis::cmd("PING").query_async(&mut *conn).await.unwrap();
    assert_eq!(pong, "PONG");
    drop(conn);
    let st = pool.status();
    assert_eq!(st.counters.closed.broken, 0, "{st:?}");
    assert_eq!(st.counters.closed.invalidated, 0, "{st:?}");
    assert_eq!((st.open, st.idle), (2, 2), "{st:?}");
    assert!(pool.last_error().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_master_answers_readonly_which_invalidates() {
    let master = RedisServer::start().expect("private Redis");
    let node = RedisServer::start().expect("private Redis");
    let pool = pool(&node);
    let mut a = one_in_hand_one_idle(&pool).await;
    // The failover: the node becomes a replica of another master.
    node.cmd(&["REPLICAOF", "127.0.0.1", &master.port().to_string()])
        .unwrap();
    let (class, message) = set_fails(&mut a).await;
    assert_eq!(class, ErrorClass::ReadOnly, "{message}");
    assert!(message.starts_with("READONLY "), "{message}");
    assert!(a.is_broken(), "not reused for writes");
    drop(a);
    let st = pool.status();
    assert_eq!(st.counters.closed.broken, 1, "{st:?}");
    assert_eq!(st.counters.closed.invalidated, 1, "{st:?}");
    assert_eq!(
        pool.last_error().expect("recorded").cause.class,
        ErrorClass::ReadOnly
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_is_resources_and_keeps_the_connection() {
    let server = RedisServer::start().expect("private Redis");
    let pool = pool(&server);
    let mut a = one_in_hand_one_idle(&pool).await;
    server
        .cmd(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        .unwrap();
    server.cmd(&["CONFIG", "SET", "maxmemory", "1"]).unwrap();
    let (class, message) = set_fails(&mut a).await;
    server.cmd(&["CONFIG", "SET", "maxmemory", "0"]).unwrap();
    assert_eq!(class, ErrorClass::Resources, "{message}");
    assert!(message.starts_with("OOM "), "{message}");
    kept(&pool, a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noreplicas_is_resources_and_keeps_the_connection() {
    let server = RedisServer::start().expect("private Redis");
    let pool = pool(&server);
    let mut a = one_in_hand_one_idle(&pool).await;
    server
        .cmd(&["CONFIG", "SET", "min-replicas-to-write", "1"])
        .unwrap();
    let (class, message) = set_fails(&mut a).await;
    server
        .cmd(&["CONFIG", "SET", "min-replicas-to-write", "0"])
        .unwrap();
    assert_eq!(class, ErrorClass::Resources, "{message}");
    assert!(message.starts_with("NOREPLICAS "), "{message}");
    kept(&pool, a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_is_resources_and_keeps_the_connection() {
    let server = RedisServer::start().expect("private Redis");
    let pool = pool(&server);
    let mut a = one_in_hand_one_idle(&pool).await;
    server
        .cmd(&["CONFIG", "SET", "busy-reply-threshold", "100"])
        .unwrap();
    // A script that runs for 1.5 s, on a connection of its own.
    let client = redis::Client::open(server.url()).unwrap();
    let mut other = client.get_multiplexed_async_connection().await.unwrap();
    other.set_response_timeout(Duration::from_secs(10));
    let script = tokio::spawn(async move {
        redis::cmd("EVAL")
            .arg(
                "local t = redis.call('TIME') \
                 local start = tonumber(t[1]) + tonumber(t[2]) / 1e6 \
                 while true do \
                   local n = redis.call('TIME') \
                   if tonumber(n[1]) + tonumber(n[2]) / 1e6 - start > 1.5 then return 1 end \
                 end",
            )
            .arg(0)
            .query_async::<i64>(&mut other)
            .await
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (class, message) = set_fails(&mut a).await;
    assert_eq!(script.await.unwrap().unwrap(), 1);
    assert_eq!(class, ErrorClass::Resources, "{message}");
    assert!(message.starts_with("BUSY "), "{message}");
    kept(&pool, a).await;
}
