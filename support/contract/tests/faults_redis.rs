//! Redis faults against our pool (see `pool_contract::faults`).

use pool_contract::faults::{self, rig, PoolKind};

pool_contract::fault_tests!(
    restart => "redis-restart",
    client_kill_while_idle => "redis-client-kill-idle",
    client_kill_under_load => "redis-client-kill-busy",
    debug_sleep => "redis-debug-sleep",
    freeze => "redis-freeze",
);

/// A server loading its dataset (`-LOADING` for a few seconds), as our
/// pool behaves today: nothing hangs or leaks and the pool recovers at
/// once, and the error callers get names the cause. But every command on
/// a connection made during the load fails (see `loading_is_waited_out`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loading() {
    let (s, p, f) = faults::run_ci("redis-loading", PoolKind::Ours).await;
    assert!(
        f.notes.iter().any(|n| n.starts_with("-LOADING seen")),
        "the server never said LOADING:\n{}",
        f.summary()
    );
    rig::assert_bounded(&s, &p, &f);
    assert!(
        f.errors
            .iter()
            .any(|(_, e)| e.contains("loading the dataset")),
        "callers are not told why:\n{}",
        f.summary()
    );
}

/// The contract for `-LOADING`: a checkout during the load waits (it is a
/// "not ready yet" like 57P03) instead of handing out a connection whose
/// every command fails: `pool-redis` pings every new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loading_is_waited_out() {
    faults::check_ours("redis-loading").await;
}
