//! PostgreSQL's error classes against the real driver's errors from a real
//! server: what each class does to the connection and to the pool.

use pool_contract::scenarios::settings;
use pool_core::{ErrorClass, Manager, Pool};
use pool_postgres::PgManager;
use pool_testkit::PgServer;
use tokio_postgres::error::SqlState;

fn pool(server: &PgServer) -> Pool<PgManager> {
    let s = settings(&server.url(), 2, 0);
    Pool::new(PgManager::new(&s).unwrap(), s)
}

/// Checks out two connections and returns the second: one connection in
/// hand, one idle, both opened before the error to come.
async fn one_in_hand_one_idle(pool: &Pool<PgManager>) -> pool_core::Pooled<PgManager> {
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    drop(b);
    assert_eq!(pool.status().idle, 1);
    a
}

/// The pool's status once no connection is in use any more (a return may
/// finish in a reset task of its own).
async fn returned(pool: &Pool<PgManager>) -> pool_core::PoolStatus {
    for _ in 0..200 {
        let st = pool.status();
        if st.in_use == 0 {
            return st;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("a connection is still in use: {:?}", pool.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_a_read_only_session_is_read_only_and_invalidates() {
    let server = PgServer::start().expect("private PostgreSQL");
    let pool = pool(&server);
    let mut a = one_in_hand_one_idle(&pool).await;
    // What a demoted primary (or a standby) answers a write with.
    a.batch_execute("SET default_transaction_read_only = on")
        .await
        .unwrap();
    let r = a.batch_execute("CREATE TABLE pool_test_ro (x int)").await;
    let e = r.as_ref().expect_err("a write in a read-only transaction");
    assert_eq!(e.code(), Some(&SqlState::READ_ONLY_SQL_TRANSACTION), "{e}");
    assert_eq!(pool.manager().classify(e), ErrorClass::ReadOnly, "{e}");
    assert!(a.observe(r).is_err());
    assert!(a.is_broken(), "not reused for writes");
    drop(a);
    let st = pool.status();
    assert_eq!(st.counters.closed.broken, 1, "{st:?}");
    // The other connection reaches the same node: closed at once.
    assert_eq!(st.counters.closed.invalidated, 1, "{st:?}");
    assert_eq!(st.open, 0, "{st:?}");
    let last = pool.last_error().expect("recorded");
    assert_eq!(last.cause.class, ErrorClass::ReadOnly);
    assert!(
        last.cause.message.contains("read-only transaction")
            && last.cause.message.contains("25006"),
        "{}",
        last.cause.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_resources_at_query_time_keeps_the_connection_and_the_pool() {
    let server = PgServer::start().expect("private PostgreSQL");
    let pool = pool(&server);
    let mut a = one_in_hand_one_idle(&pool).await;
    // 53400 configuration_limit_exceeded: a sort spilling past
    // temp_file_limit (disk full, 53100, and out of memory, 53200, are the
    // same class and not practical to provoke).
    a.batch_execute("SET work_mem = '64kB'; SET temp_file_limit = '128kB'")
        .await
        .unwrap();
    let r = a
        .query_one(
            "SELECT count(*) FROM (SELECT g FROM generate_series(1, 300000) g ORDER BY g DESC) s",
            &[],
        )
        .await;
    let e = r.as_ref().expect_err("temp_file_limit exceeded");
    assert_eq!(
        e.code(),
        Some(&SqlState::CONFIGURATION_LIMIT_EXCEEDED),
        "{e}"
    );
    assert_eq!(pool.manager().classify(e), ErrorClass::Resources, "{e}");
    assert!(a.observe(r).is_err());
    assert!(!a.is_broken());
    let one: i32 = a.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1, "the connection is sound");
    drop(a);
    let st = returned(&pool).await;
    assert_eq!(st.counters.closed.broken, 0, "{st:?}");
    assert_eq!(st.counters.closed.invalidated, 0, "{st:?}");
    assert_eq!((st.open, st.idle), (2, 2), "{st:?}");
    assert!(pool.last_error().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_timeout_is_a_query_error_on_a_sound_connection() {
    let server = PgServer::start().expect("private PostgreSQL");
    let pool = pool(&server);
    let mut a = one_in_hand_one_idle(&pool).await;
    a.batch_execute("SET statement_timeout = '50ms'")
        .await
        .unwrap();
    let r = a.batch_execute("SELECT pg_sleep(2)").await;
    let e = r.as_ref().expect_err("canceled by statement_timeout");
    assert_eq!(e.code(), Some(&SqlState::QUERY_CANCELED), "{e}");
    assert_eq!(pool.manager().classify(e), ErrorClass::Query, "{e}");
    assert!(a.observe(r).is_err());
    assert!(!a.is_broken());
    let one: i32 = a.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    drop(a);
    let st = pool.status();
    assert_eq!(
        st.counters.closed.broken + st.counters.closed.invalidated,
        0
    );
}
