//! Redis lifecycle hooks on a real server: `REDIS_CONNECT_INIT_COMMANDS`
//! and the init hook run on every new connection.

use pool_contract::scenarios::settings;
use pool_core::Pool;
use pool_redis::redis;
use pool_redis::RedisManager;
use pool_testkit::RedisServer;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_commands_and_the_init_hook_run_on_every_new_connection() {
    let server = RedisServer::start().expect("private Redis");
    let mut s = settings(&server.url(), 1, 1);
    s.connect_init = Some("SELECT 3; CLIENT SETNAME inited".into());
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let manager = RedisManager::new(&s)
        .unwrap()
        .with_init_hook(Arc::new(move |_conn| {
            let seen = seen.clone();
            Box::pin(async move {
                seen.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
        }));
    let pool = Pool::new(manager, s);
    let mut a = pool.get().await.unwrap();
    let mut b = pool.get().await.unwrap();
    for c in [&mut a, &mut b] {
        let info: String = redis::cmd("CLIENT")
            .arg("INFO")
            .query_async(&mut **c)
            .await
            .unwrap();
        assert!(info.contains(" db=3 "), "{info}");
        assert!(info.contains(" name=inited "), "{info}");
    }
    assert_eq!(calls.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_init_command_fails_the_checkout_with_the_servers_error() {
    let server = RedisServer::start().expect("private Redis");
    let mut s = settings(&server.url(), 1, 0);
    s.connect_init = Some("NOSUCHCOMMAND x".into());
    s.pool_timeout = std::time::Duration::from_millis(500);
    let pool = Pool::new(RedisManager::new(&s).unwrap(), s);
    let err = pool.get().await.unwrap_err().to_string();
    assert!(err.to_lowercase().contains("unknown command"), "{err}");
    assert_eq!(pool.status().open, 0);
}
