//! PostgreSQL lifecycle hooks on a real server: the statement-cache
//! registry stays flat however many connections come and go, and
//! `DB_CONNECT_INIT_SQL` / the init hook run on every new connection.

use pool_contract::scenarios::settings;
use pool_core::Pool;
use pool_postgres::PgManager;
use pool_testkit::PgServer;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Entries in deadpool-postgres's statement-cache registry (one per
/// connection it ever saw until `detach`), counted from its `Debug` output:
/// the registry has no accessor for its length.
fn registry_len(m: &PgManager) -> usize {
    format!("{:?}", m.statement_caches())
        .matches("(Weak)")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_statement_cache_registry_stays_flat_over_thousands_of_closes() {
    let server = PgServer::start().expect("private PostgreSQL");
    // pool_size 1, overflow 1: the second connection of each round is
    // closed on return as overflow.
    let s = settings(&server.url(), 1, 1);
    let pool = Pool::new(PgManager::new(&s).unwrap(), s);
    for _ in 0..2000 {
        let a = pool.get().await.unwrap();
        let b = pool.get().await.unwrap();
        drop(a);
        drop(b);
    }
    let st = pool.status();
    assert_eq!(st.counters.closed.overflow, 2000, "{st:?}");
    assert_eq!(st.open, 1);
    assert_eq!(
        registry_len(pool.manager()),
        1,
        "one entry for the one open connection"
    );
    pool.close();
    assert_eq!(registry_len(pool.manager()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_sql_and_the_init_hook_run_on_every_new_connection() {
    let server = PgServer::start().expect("private PostgreSQL");
    let mut s = settings(&server.url(), 1, 1);
    s.connect_init =
        Some("SET application_name = 'inited'; SET statement_timeout = '1234ms'".into());
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let manager = PgManager::new(&s)
        .unwrap()
        .with_init_hook(Arc::new(move |conn| {
            let seen = seen.clone();
            Box::pin(async move {
                seen.fetch_add(1, Ordering::Relaxed);
                conn.batch_execute("SET search_path = pg_catalog").await
            })
        }));
    let pool = Pool::new(manager, s);
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    for c in [&a, &b] {
        let row = c
            .query_one(
                "SELECT current_setting('application_name'), current_setting('statement_timeout'), current_setting('search_path')",
                &[],
            )
            .await
            .unwrap();
        let got: (String, String, String) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(got, ("inited".into(), "1234ms".into(), "pg_catalog".into()));
    }
    assert_eq!(calls.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_init_sql_fails_the_checkout_with_the_servers_error() {
    let server = PgServer::start().expect("private PostgreSQL");
    let mut s = settings(&server.url(), 1, 0);
    s.connect_init = Some("SET no_such_setting_here = 1".into());
    s.pool_timeout = std::time::Duration::from_millis(500);
    let pool = Pool::new(PgManager::new(&s).unwrap(), s);
    let err = pool.get().await.unwrap_err().to_string();
    assert!(err.contains("no_such_setting_here"), "{err}");
    assert_eq!(pool.status().open, 0);
    assert_eq!(
        registry_len(pool.manager()),
        0,
        "failed inits are released too"
    );
}
