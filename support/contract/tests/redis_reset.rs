//! Reset on return on a real Redis server: a `SELECT` of another database,
//! an open `MULTI` or a `WATCH` a caller left behind does not reach the
//! next caller, a dropped `BLPOP` does not hold it up, and a caller that
//! left nothing costs no round trip.

use pool_contract::scenarios::settings;
use pool_core::{Pool, PoolSettings, ResetOnReturn};
use pool_redis::redis::{self, AsyncCommands};
use pool_redis::RedisManager;
use pool_testkit::RedisServer;
use std::time::{Duration, Instant};

fn pool(s: PoolSettings) -> Pool<RedisManager> {
    Pool::new(RedisManager::new(&s).unwrap(), s)
}

/// Waits for the resets under way (pool of 1: a checkout gets the
/// connection only once its reset is over).
async fn settle(pool: &Pool<RedisManager>) {
    drop(pool.get().await.unwrap());
}

/// Waits until no connection is out or being reset (a reset keeps its
/// connection counted in use).
async fn quiesce(pool: &Pool<RedisManager>) {
    let t = Instant::now();
    while pool.status().in_use > 0 {
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", pool.status());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn client_info(c: &mut pool_redis::RedisConnection) -> String {
    redis::cmd("CLIENT")
        .arg("INFO")
        .query_async(&mut **c)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_select_left_behind_does_not_reach_the_next_caller() {
    let server = RedisServer::start().expect("private Redis");
    let mut s = settings(&server.url(), 1, 0);
    s.connect_init = Some("SELECT 2".into());
    let pool = pool(s);
    for _ in 0..5 {
        let mut c = pool.get().await.unwrap();
        let _: () = c.set("k", 1).await.unwrap();
    }
    assert_eq!(pool.status().counters.resets, 0, "clean returns: no reset");
    let mut a = pool.get().await.unwrap();
    let _: () = redis::cmd("SELECT")
        .arg(5)
        .query_async(&mut *a)
        .await
        .unwrap();
    drop(a);
    let mut b = pool.get().await.unwrap();
    let info = client_info(&mut b).await;
    assert!(info.contains(" db=2 "), "{info}");
    drop(b);
    settle(&pool).await;
    assert_eq!(pool.status().counters.resets, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_multi_and_a_watch_are_undone() {
    let server = RedisServer::start().expect("private Redis");
    let pool = pool(settings(&server.url(), 1, 0));
    let mut a = pool.get().await.unwrap();
    let _: () = redis::cmd("MULTI").query_async(&mut *a).await.unwrap();
    let queued: String = redis::cmd("SET")
        .arg("left")
        .arg(1)
        .query_async(&mut *a)
        .await
        .unwrap();
    assert_eq!(queued, "QUEUED");
    drop(a);
    let mut b = pool.get().await.unwrap();
    let ok: String = redis::cmd("SET")
        .arg("mine")
        .arg(1)
        .query_async(&mut *b)
        .await
        .unwrap();
    assert_eq!(ok, "OK", "B is not inside A's MULTI");
    let left: Option<i64> = b.get("left").await.unwrap();
    assert_eq!(left, None, "A's queued SET was discarded");
    // A WATCH left behind would make B's transaction fail.
    let _: () = redis::cmd("WATCH")
        .arg("w")
        .query_async(&mut *b)
        .await
        .unwrap();
    drop(b);
    let mut other = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = other.set("w", 1).await.unwrap();
    let mut c = pool.get().await.unwrap();
    let (n,): (i64,) = redis::pipe()
        .atomic()
        .incr("counter", 1)
        .query_async(&mut *c)
        .await
        .expect("not aborted by A's WATCH");
    assert_eq!(n, 1);
    drop(c);
    settle(&pool).await;
    assert_eq!(pool.status().counters.resets, 2);
}

/// A caller gives up on `BLPOP key 2` after 50 ms: the connection (whose
/// every later command would wait behind it) is closed and counted, and
/// the next caller is served at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_blpop_does_not_hold_up_the_next_caller() {
    let server = RedisServer::start().expect("private Redis");
    let pool = pool(settings(&server.url(), 1, 0));
    let mut a = pool.get().await.unwrap();
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        redis::cmd("BLPOP")
            .arg("nothing")
            .arg(2)
            .query_async::<Option<(String, String)>>(&mut *a),
    )
    .await;
    assert!(gave_up.is_err(), "the caller timed out");
    drop(a);
    let t = Instant::now();
    let mut b = pool.get().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut *b).await.unwrap();
    assert_eq!(pong, "PONG");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    drop(b);
    let st = pool.status();
    assert_eq!(st.counters.closed.in_flight, 1, "{st:?}");
    assert!(pool.last_error().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_resets_the_session_and_applies_the_configuration_again() {
    let server = RedisServer::start().expect("private Redis");
    let mut s = settings(&server.url(), 1, 0);
    s.connect_init = Some("SELECT 2; CLIENT SETNAME inited".into());
    s.reset_on_return = ResetOnReturn::Discard;
    let pool = pool(s);
    let mut a = pool.get().await.unwrap();
    let _: () = redis::cmd("SELECT")
        .arg(5)
        .query_async(&mut *a)
        .await
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("other")
        .query_async(&mut *a)
        .await
        .unwrap();
    drop(a);
    let mut b = pool.get().await.unwrap();
    let info = client_info(&mut b).await;
    assert!(
        info.contains(" db=2 ") && info.contains(" name=inited "),
        "{info}"
    );
    drop(b);
    quiesce(&pool).await;
    assert_eq!(pool.status().counters.resets, 2, "every return");
}
