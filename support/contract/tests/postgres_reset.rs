//! Reset on return on a real PostgreSQL server: nothing one caller leaves
//! on a connection (an open or failed transaction, `SET LOCAL`, a request
//! still running) reaches the next caller, and an open transaction is
//! rolled back right after the return, not at the next checkout.

use pool_contract::scenarios::settings;
use pool_core::{Pool, PoolSettings, ResetOnReturn};
use pool_postgres::PgManager;
use pool_testkit::PgServer;
use std::time::{Duration, Instant};

fn pool(s: PoolSettings) -> Pool<PgManager> {
    Pool::new(PgManager::new(&s).unwrap(), s)
}

/// Waits for the resets under way (with a pool of 1, a checkout gets the
/// connection only once its reset is over).
async fn settle(pool: &Pool<PgManager>) {
    drop(pool.get().await.unwrap());
}

/// Waits until no connection is out or being reset (a reset keeps its
/// connection counted in use).
async fn quiesce(pool: &Pool<PgManager>) {
    let t = Instant::now();
    while pool.status().in_use > 0 {
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", pool.status());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A session of its own, outside the pool, to look at the pool's sessions.
async fn observer(server: &PgServer) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// B's statement runs in a transaction of its own (not in one A left
/// open): its transaction started with its statement (a simple query: one
/// statement start for both).
async fn in_own_transaction(c: &tokio_postgres::Client) -> bool {
    let rows = c
        .simple_query(
            "SELECT xact_start = query_start FROM pg_stat_activity WHERE pid = pg_backend_pid()",
        )
        .await
        .unwrap();
    rows.iter()
        .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("t")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_transaction_is_rolled_back_before_the_next_caller() {
    let server = PgServer::start().expect("private PostgreSQL");
    let pool = pool(settings(&server.url(), 1, 0));
    let a = pool.get().await.unwrap();
    let err = a.batch_execute("BEGIN; SELECT 1/0").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("22012"), "{err}");
    drop(a);
    let b = pool.get().await.unwrap();
    let one: i32 = b.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    assert!(in_own_transaction(&b).await);
    drop(b);
    settle(&pool).await;
    let c = pool.status().counters;
    assert_eq!((c.resets, c.closed.total()), (1, 0), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_left_open_is_rolled_back_at_once_after_the_return() {
    let server = PgServer::start().expect("private PostgreSQL");
    let watch = observer(&server).await;
    watch
        .batch_execute("CREATE TABLE reset_t (x int)")
        .await
        .unwrap();
    let pool = pool(settings(&server.url(), 1, 0));
    let a = pool.get().await.unwrap();
    a.batch_execute("BEGIN; INSERT INTO reset_t VALUES (1)")
        .await
        .unwrap();
    drop(a);
    // No checkout in between: the rollback happens on its own, promptly.
    let idle_in_tx = "SELECT count(*) FROM pg_stat_activity \
         WHERE state LIKE 'idle in transaction%' AND application_name = 'pool-postgres/test'";
    let t = Instant::now();
    loop {
        let n: i64 = watch.query_one(idle_in_tx, &[]).await.unwrap().get(0);
        if n == 0 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "a session of the pool is still idle in transaction"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let b = pool.get().await.unwrap();
    let n: i64 = b
        .query_one("SELECT count(*) FROM reset_t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "A's insert was rolled back, not seen by B");
    assert!(in_own_transaction(&b).await);
    drop(b);
    let n: i64 = watch
        .query_one("SELECT count(*) FROM reset_t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "never committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_local_is_not_seen_by_the_next_caller_and_clean_callers_cost_nothing() {
    let server = PgServer::start().expect("private PostgreSQL");
    let pool = pool(settings(&server.url(), 1, 0));
    for _ in 0..5 {
        let c = pool.get().await.unwrap();
        c.query_one("SELECT 1", &[]).await.unwrap();
    }
    assert_eq!(pool.status().counters.resets, 0, "clean returns: no reset");
    let a = pool.get().await.unwrap();
    a.batch_execute("BEGIN; SET LOCAL statement_timeout = '1234ms'")
        .await
        .unwrap();
    drop(a);
    let b = pool.get().await.unwrap();
    let v: String = b
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(v, "1234ms");
    drop(b);
    settle(&pool).await;
    assert_eq!(pool.status().counters.resets, 1);
}

/// A caller gives up on `pg_sleep(3)` after 50 ms: the request is
/// cancelled server-side before anyone else gets the connection, so the
/// next caller does not wait for it, and no disconnect is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_is_cancelled_before_the_next_caller() {
    let server = PgServer::start().expect("private PostgreSQL");
    let pool = pool(settings(&server.url(), 1, 0));
    let a = pool.get().await.unwrap();
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        a.simple_query("SELECT pg_sleep(3)"),
    )
    .await;
    assert!(gave_up.is_err(), "the caller timed out");
    drop(a);
    let t = Instant::now();
    let b = pool.get().await.unwrap();
    let one: i32 = b.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    let took = t.elapsed();
    drop(b);
    settle(&pool).await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let st = pool.status();
    assert_eq!(st.counters.cancels, 1, "{st:?}");
    assert_eq!(st.counters.closed.total(), 0, "{st:?}");
    assert!(pool.last_error().is_none(), "{:?}", pool.last_error());
}

/// `discard`: `DISCARD ALL` on every return; prepared statements still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_resets_the_whole_session_and_the_statement_cache() {
    let server = PgServer::start().expect("private PostgreSQL");
    let mut s = settings(&server.url(), 1, 0);
    s.reset_on_return = ResetOnReturn::Discard;
    let pool = pool(s);
    let a = pool.get().await.unwrap();
    a.batch_execute("SET search_path = pg_catalog")
        .await
        .unwrap();
    let st = a.prepare_cached("SELECT 1").await.unwrap();
    a.query_one(&st, &[]).await.unwrap();
    drop(a);
    let b = pool.get().await.unwrap();
    let v: String = b.query_one("SHOW search_path", &[]).await.unwrap().get(0);
    assert_eq!(v, "\"$user\", public");
    // The server dropped its prepared statements; the cache was cleared.
    let st = b.prepare_cached("SELECT 1").await.unwrap();
    b.query_one(&st, &[]).await.unwrap();
    drop(b);
    quiesce(&pool).await;
    assert_eq!(pool.status().counters.resets, 2, "every return");
}
