//! Upkeep scenarios on real servers: the housekeeper (min idle, idle
//! timeout, background recycle, keepalive, leak detection), warm-up, pause
//! and resume, and no task left behind. The same behaviours are proven
//! deterministically with the fake manager in `pool_core`'s own tests; these
//! prove them through real drivers and sockets, with generous slack.

use crate::backend::Backend;
use crate::faults::servers::FaultBackend;
use crate::scenarios::{settings, use_once};
use pool_core::{ErrorClass, Pool, PoolError, PoolSettings};
use pool_testkit::{FaultProxy, Mode};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Runs every upkeep scenario for one backend.
#[macro_export]
macro_rules! upkeep_tests {
    ($backend:ty) => {
        $crate::upkeep_tests!($backend:
            min_idle_is_filled_at_start_and_refilled_after_sessions_are_killed,
            idle_timeout_shrinks_the_pool_to_min_idle_after_a_burst,
            the_bottom_of_the_stack_is_recycled_in_the_background,
            keepalive_finds_a_black_holed_idle_connection_before_any_caller,
            a_held_connection_is_reported_as_a_leak_and_kept,
            warm_up_opens_connections_and_fails_at_its_deadline_when_the_server_is_down,
            pause_holds_checkouts_until_resume,
            close_leaves_no_task_behind,
        );
    };
    ($backend:ty: $($name:ident),* $(,)?) => {
        mod upkeep {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::upkeep::$name::<$backend>().await;
                }
            )*
        }
    };
}

fn pool_with<B: Backend>(
    server: &B::Server,
    size: u32,
    f: impl FnOnce(&mut PoolSettings),
) -> Pool<B::M> {
    let mut s = settings(&B::url(server), size, 0);
    s.housekeeping_period = Duration::from_millis(200);
    f(&mut s);
    B::build(s)
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Checks out `n` connections at once, one round trip on each, then returns
/// them all.
async fn burst<B: Backend>(pool: &Pool<B::M>, n: usize) {
    let mut held = Vec::new();
    for _ in 0..n {
        let mut conn = pool.get().await.unwrap();
        B::round_trip(&mut conn).await.unwrap();
        held.push(conn);
    }
}

/// `min_idle` connections are open before any request, and reopened after
/// the server kills them, with no request (keepalive finds the dead ones
/// where the driver cannot tell: Redis).
pub async fn min_idle_is_filled_at_start_and_refilled_after_sessions_are_killed<B: Backend>() {
    let server = B::start();
    let pool = pool_with::<B>(&server, 4, |s| {
        s.min_idle = 2;
        s.keepalive = Some(Duration::from_millis(300));
    });
    until("min_idle is open", || pool.status().idle == 2).await;
    assert_eq!(pool.status().counters.checkouts, 0);
    assert!(B::sessions(&server) >= 2);
    // The pool may close the second session itself before the server gets
    // to it: the first death records a disconnect, which closes every older
    // idle connection at once (invalidation).
    assert!(B::kill_sessions(&server) >= 1);
    until("both are replaced", || {
        let st = pool.status();
        st.counters.created >= 4 && st.idle == 2
    })
    .await;
    let st = pool.status();
    let c = &st.counters.closed;
    assert!(
        c.broken + c.invalidated + c.validation_failed + c.keepalive_failed >= 2,
        "both killed sessions were closed: {st:?}"
    );
    assert_eq!(st.counters.checkouts, 0, "no request was needed");
    assert!(st.open <= 4, "{st:?}");
    assert!(st.housekeeper.unwrap().last_run.is_some());
    use_once::<B>(&pool).await.unwrap();
}

/// After a burst the pool shrinks back to `min_idle`.
pub async fn idle_timeout_shrinks_the_pool_to_min_idle_after_a_burst<B: Backend>() {
    let server = B::start();
    let pool = pool_with::<B>(&server, 4, |s| {
        s.min_idle = 1;
        s.idle_timeout = Some(Duration::from_millis(500));
    });
    burst::<B>(&pool, 4).await;
    assert_eq!(pool.status().idle, 4);
    let start = Instant::now();
    until("the pool is back to min_idle", || pool.status().open == 1).await;
    assert!(start.elapsed() >= Duration::from_millis(450));
    let st = pool.status();
    assert_eq!(st.counters.closed.idle_timeout, 3, "{st:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(pool.status().open, 1, "min_idle is kept");
    use_once::<B>(&pool).await.unwrap();
}

/// Connections under the top of the LIFO stack, never reached by a
/// checkout, are still recycled within `pool_recycle` + one period.
pub async fn the_bottom_of_the_stack_is_recycled_in_the_background<B: Backend>() {
    let server = B::start();
    let recycle = Duration::from_millis(1200);
    let pool = pool_with::<B>(&server, 3, |s| s.pool_recycle = Some(recycle));
    let period = Duration::from_secs_f64(pool.status().housekeeper.unwrap().period);
    assert_eq!(period, Duration::from_millis(200));
    let start = Instant::now();
    burst::<B>(&pool, 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A third, younger connection goes on top of the two older ones.
    let (a, b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    let mut c = pool.get().await.unwrap();
    let top = B::session_id(&mut c).await;
    drop((a, b));
    drop(c);
    // The caller only ever gets the top one.
    while start.elapsed() < recycle + period + Duration::from_millis(250) {
        let mut conn = pool.get().await.unwrap();
        assert_eq!(B::session_id(&mut conn).await, top);
        drop(conn);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = pool.status().counters.closed;
    assert_eq!(c.lifetime, 2, "{c:?}");
    assert_eq!(c.recycled, 0, "{c:?}");
    assert_eq!(pool.status().open, 1);
}

/// A black-holed idle connection is found by the keepalive ping, not by a
/// caller. (Bound on the crate's fault-backend trait for the proxy's URL;
/// both backends implement it.)
#[allow(private_bounds)]
pub async fn keepalive_finds_a_black_holed_idle_connection_before_any_caller<B: FaultBackend>() {
    let server = B::start();
    let upstream = SocketAddr::from(([127, 0, 0, 1], B::port(&server)));
    let proxy = FaultProxy::start(upstream).await.expect("fault proxy");
    let mut s = settings(&B::url_at(proxy.addr().port()), 2, 0);
    s.housekeeping_period = Duration::from_millis(200);
    s.keepalive = Some(Duration::from_millis(300));
    s.validation_timeout = Duration::from_millis(300);
    let pool = B::build(s);
    use_once::<B>(&pool).await.unwrap();
    until("the idle connection is pinged", || {
        pool.status().counters.keepalives >= 1
    })
    .await;
    assert_eq!(pool.status().counters.closed.keepalive_failed, 0);
    proxy.set_mode(Mode::Blackhole);
    until("keepalive closes it", || {
        pool.status().counters.closed.keepalive_failed == 1
    })
    .await;
    let st = pool.status();
    assert_eq!((st.open, st.idle), (0, 0), "{st:?}");
    assert_eq!(pool.last_error().unwrap().cause.class, ErrorClass::Timeout);
    proxy.set_mode(Mode::Pass);
    let start = Instant::now();
    use_once::<B>(&pool).await.unwrap();
    assert!(
        start.elapsed() < Duration::from_millis(300),
        "the caller waited"
    );
    let st = pool.status();
    assert_eq!(st.counters.validations, 0, "no caller met the dead one");
    assert_eq!(st.counters.timeouts, 0);
}

/// A connection held past the threshold is counted once and not taken
/// away.
pub async fn a_held_connection_is_reported_as_a_leak_and_kept<B: Backend>() {
    let server = B::start();
    let pool = pool_with::<B>(&server, 2, |s| {
        s.leak_threshold = Some(Duration::from_millis(200));
    });
    let mut conn = pool.get().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(pool.status().counters.leaks, 0);
    until("the leak is reported", || pool.status().counters.leaks == 1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(pool.status().counters.leaks, 1, "once per checkout");
    B::round_trip(&mut conn).await.unwrap();
    drop(conn);
    use_once::<B>(&pool).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(pool.status().counters.leaks, 1);
}

/// Warm-up opens its connections within its deadline, and fails at the
/// deadline with the cause when the server is down.
pub async fn warm_up_opens_connections_and_fails_at_its_deadline_when_the_server_is_down<
    B: Backend,
>() {
    let mut server = B::start();
    let pool = pool_with::<B>(&server, 3, |_| {});
    let open = pool.warm_up(None, Duration::from_secs(5)).await.unwrap();
    assert_eq!(open, 3);
    assert_eq!(pool.status().idle, 3);
    assert!(B::sessions(&server) >= 3);
    pool.close();

    let server = tokio::task::spawn_blocking(move || {
        B::stop(&mut server);
        server
    })
    .await
    .unwrap();
    let pool = pool_with::<B>(&server, 3, |_| {});
    let start = Instant::now();
    let err = pool
        .warm_up(Some(2), Duration::from_secs(1))
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let PoolError::Timeout { last_cause, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        last_cause.as_ref().map(|c| c.class),
        Some(ErrorClass::Unavailable),
        "{err}"
    );
}

/// Checkouts wait while the pool is paused and go on at resume.
pub async fn pause_holds_checkouts_until_resume<B: Backend>() {
    let server = B::start();
    let pool = pool_with::<B>(&server, 2, |_| {});
    use_once::<B>(&pool).await.unwrap();
    pool.pause();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { use_once::<B>(&pool).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "a checkout went through a paused pool"
    );
    assert_eq!(pool.status().waiting, 1);
    pool.resume();
    waiter.await.unwrap().unwrap();
}

/// `close()` stops the housekeeper: no task of the pool is left (driver
/// tasks of closed connections included).
pub async fn close_leaves_no_task_behind<B: Backend>() {
    let server = B::start();
    let alive = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let base = alive();
    let pool = pool_with::<B>(&server, 3, |s| {
        s.min_idle = 2;
        s.keepalive = Some(Duration::from_millis(300));
    });
    until("min_idle is open", || pool.status().idle == 2).await;
    assert!(alive() > base);
    pool.close();
    until("every task of the pool ended", || alive() == base).await;
    drop(pool);
    assert_eq!(alive(), base);
}
