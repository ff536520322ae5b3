//! The scenarios. Each is a complete test, generic over the backend.
//!
//! The first group ports SQLAlchemy's QueuePool tests
//! (`test/engine/test_pool.py`): timeouts that never fire early, overflow
//! closed on return, unlimited overflow, failed connects giving their slot
//! back, a hanging connect blocking nobody, recycle at checkout only,
//! waiters served on return and on discard, FIFO order. The second group is
//! recovery: restarts and killed sessions while idle, an outage shorter than
//! `pool_timeout`, a frozen server, a wrong password.

use crate::backend::Backend;
use pool_core::redact::SecretUrl;
use pool_core::settings::Overflow;
use pool_core::{CloseReason, ErrorClass, Pool, PoolSettings, Pooled, RetryPolicy};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Settings for a test pool: short timeouts so failures are quick.
pub fn settings(url: &str, pool_size: u32, max_overflow: i64) -> PoolSettings {
    let mut s = PoolSettings::new("test");
    s.url = Some(SecretUrl::new(url));
    s.pool_size = pool_size;
    s.max_overflow = if max_overflow < 0 {
        Overflow::Unlimited
    } else {
        Overflow::Limited(max_overflow as u32)
    };
    s.pool_timeout = Duration::from_secs(5);
    s.connect_timeout = Duration::from_secs(2);
    s.validation_timeout = Duration::from_millis(500);
    s.retry = RetryPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    s
}

fn pool<B: Backend>(server: &B::Server, size: u32, overflow: i64) -> Pool<B::M> {
    B::build(settings(&B::url(server), size, overflow))
}

fn pool_with<B: Backend>(
    server: &B::Server,
    size: u32,
    overflow: i64,
    f: impl FnOnce(&mut PoolSettings),
) -> Pool<B::M> {
    let mut s = settings(&B::url(server), size, overflow);
    f(&mut s);
    B::build(s)
}

/// A checkout and one round trip.
pub async fn use_once<B: Backend>(pool: &Pool<B::M>) -> Result<(), String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    B::round_trip(&mut conn).await
}

async fn id_of<B: Backend>(pool: &Pool<B::M>) -> i64 {
    B::session_id(&mut pool.get().await.unwrap()).await
}

async fn hold<B: Backend>(pool: &Pool<B::M>, n: usize) -> Vec<Pooled<B::M>> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(pool.get().await.unwrap());
    }
    held
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Runs a blocking kit call (restart, stop) off the runtime's workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("kit call panicked")
}

// ---------------------------------------------------------------- sizing

/// `pool_timeout` applies once overflow is used up, never fires early (even
/// with several waiters racing), and the error shows the pool's state.
pub async fn timeout_after_overflow_is_used_up_and_never_early<B: Backend>() {
    let server = B::start();
    let pool = pool_with::<B>(&server, 2, 1, |s| {
        s.pool_timeout = Duration::from_millis(500)
    });
    let held = hold::<B>(&pool, 3).await;
    let mut waiters = Vec::new();
    for _ in 0..5 {
        let pool = pool.clone();
        waiters.push(tokio::spawn(async move {
            let start = Instant::now();
            let err = pool.get().await.expect_err("no slot is free");
            (start.elapsed(), err)
        }));
    }
    for w in waiters {
        let (elapsed, err) = w.await.unwrap();
        assert!(err.is_timeout(), "{err}");
        assert!(
            elapsed >= Duration::from_millis(500),
            "fired early: {elapsed:?}"
        );
        assert!(elapsed < Duration::from_secs(2), "fired late: {elapsed:?}");
        let msg = err.to_string();
        assert!(msg.contains("limit of size 2 overflow 1 reached"), "{msg}");
        assert!(msg.contains("timeout 0.50"), "{msg}");
        assert!(msg.contains("in_use=3"), "{msg}");
    }
    assert_eq!(pool.status().counters.timeouts, 5);
    drop(held);
    use_once::<B>(&pool).await.unwrap();
}

/// A connection returned while `pool_size` are idle is closed, on the
/// server too.
pub async fn overflow_is_closed_on_return_to_a_full_pool<B: Backend>() {
    let server = B::start();
    let pool = pool::<B>(&server, 2, 3);
    let held = hold::<B>(&pool, 5).await;
    let s = pool.status();
    assert_eq!((s.open, s.in_use, s.overflow_in_use), (5, 5, 3));
    assert_eq!(B::sessions(&server), 5);
    drop(held);
    let s = pool.status();
    assert_eq!((s.open, s.idle, s.in_use, s.overflow_in_use), (2, 2, 0, 0));
    assert_eq!(s.counters.closed.get(CloseReason::Overflow), 3);
    until("the server has 2 sessions", || B::sessions(&server) == 2).await;
}

/// `max_overflow = -1`: no limit, nobody waits; extras close on return.
pub async fn unlimited_overflow_never_waits<B: Backend>() {
    let server = B::start();
    let pool = pool::<B>(&server, 1, -1);
    let held = hold::<B>(&pool, 20).await;
    let s = pool.status();
    assert_eq!(s.max_size, None);
    assert_eq!((s.open, s.in_use, s.overflow_in_use), (20, 20, 19));
    assert_eq!(s.counters.checkouts_waited, 0);
    drop(held);
    let s = pool.status();
    assert_eq!((s.open, s.idle), (1, 1));
    assert_eq!(s.counters.closed.overflow, 19);
}

/// Failed connects leak nothing: once the server is back, every slot works.
pub async fn a_failed_connect_gives_its_overflow_slot_back<B: Backend>() {
    let mut server = B::start();
    let pool = pool_with::<B>(&server, 1, 1, |s| {
        s.pool_timeout = Duration::from_millis(300)
    });
    B::stop(&mut server);
    for _ in 0..3 {
        let err = pool.get().await.expect_err("server is down");
        assert!(err.is_timeout(), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("last error: connect to"), "{msg}");
        assert!(msg.contains("refused"), "{msg}");
    }
    let s = pool.status();
    assert_eq!((s.open, s.in_use, s.connecting, s.waiting), (0, 0, 0, 0));
    B::start_again(&mut server);
    let mut a = pool.get().await.unwrap();
    let mut b = pool.get().await.unwrap();
    assert_ne!(B::session_id(&mut a).await, B::session_id(&mut b).await);
}

/// A proxy that swallows the first connection it accepts (that connect
/// hangs: no byte ever comes back) and forwards the others. The receiver
/// fires once the first one was swallowed.
async fn hang_first_connection(upstream: u16) -> (u16, tokio::sync::oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut swallowed = None;
        let mut tx = Some(tx);
        while let Ok((mut client, _)) = listener.accept().await {
            if swallowed.is_none() {
                swallowed = Some(client);
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
                continue;
            }
            tokio::spawn(async move {
                if let Ok(mut server) =
                    tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    (port, rx)
}

/// One hanging connect does not block the other checkouts.
pub async fn one_hanging_connect_does_not_block_others<B: Backend>() {
    let server = B::start();
    let url = B::url(&server);
    let port = url
        .rsplit(':')
        .next()
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse::<u16>().ok())
        .expect("url has a port");
    let (proxy_port, swallowed) = hang_first_connection(port).await;
    let proxied = url.replace(&format!(":{port}"), &format!(":{proxy_port}"));
    let mut s = settings(&proxied, 1, 1);
    s.connect_timeout = Duration::from_secs(3);
    let pool = B::build(s);

    let start = Instant::now();
    let hanging = {
        let pool = pool.clone();
        tokio::spawn(async move { (pool.get().await.map(|_| ()), start.elapsed()) })
    };
    until("the first connect hangs", || pool.status().connecting == 1).await;
    // Its socket reached the proxy (so the next connection is forwarded).
    tokio::time::timeout(Duration::from_secs(10), swallowed)
        .await
        .expect("the first connection reaches the proxy")
        .expect("the proxy runs");
    let other = pool.get().await.unwrap();
    let other_done = start.elapsed();
    // Well before the hanging connect's own end (connect_timeout, 3 s):
    // the other checkout did not queue behind it.
    assert!(
        other_done < Duration::from_millis(900),
        "blocked: {other_done:?}"
    );
    drop(other);
    let (result, hang_done) = hanging.await.unwrap();
    result.unwrap();
    assert!(hang_done > other_done, "{hang_done:?}");
}

/// `pool_recycle` replaces old connections at checkout, never under a
/// caller.
pub async fn recycle_happens_at_checkout_only<B: Backend>() {
    let server = B::start();
    let pool = pool_with::<B>(&server, 1, 0, |s| {
        s.pool_recycle = Some(Duration::from_millis(800))
    });
    let mut conn = pool.get().await.unwrap();
    let first = B::session_id(&mut conn).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        B::session_id(&mut conn).await,
        first,
        "closed while checked out"
    );
    drop(conn);
    let second = id_of::<B>(&pool).await;
    assert_ne!(first, second, "an old connection was handed out");
    assert_eq!(pool.status().counters.closed.recycled, 1);
    assert_eq!(id_of::<B>(&pool).await, second, "a young one is reused");
}

/// A waiter gets the connection when it is returned, and a new one when it
/// is discarded.
pub async fn waiters_are_served_on_return_and_on_discard<B: Backend>() {
    let server = B::start();
    let pool = pool::<B>(&server, 1, 0);
    let mut conn = pool.get().await.unwrap();
    let id = B::session_id(&mut conn).await;
    let spawn_waiter = |pool: Pool<B::M>| tokio::spawn(async move { id_of::<B>(&pool).await });

    let waiter = spawn_waiter(pool.clone());
    until("the waiter queues", || pool.status().waiting == 1).await;
    drop(conn);
    assert_eq!(
        waiter.await.unwrap(),
        id,
        "the returned connection goes to the waiter"
    );

    let mut conn = pool.get().await.unwrap();
    let waiter = spawn_waiter(pool.clone());
    until("the waiter queues", || pool.status().waiting == 1).await;
    conn.mark_broken();
    drop(conn);
    let new_id = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(
        new_id, id,
        "the discarded connection's slot goes to the waiter"
    );
    assert_eq!(pool.status().counters.closed.broken, 1);
}

/// Waiters are served in arrival order.
pub async fn waiters_are_served_in_arrival_order<B: Backend>() {
    let server = B::start();
    let pool = pool::<B>(&server, 1, 0);
    let conn = pool.get().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..10u32 {
        let (pool2, order) = (pool.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let c = pool2.get().await.unwrap();
            order.lock().unwrap().push(i);
            tokio::time::sleep(Duration::from_millis(5)).await;
            drop(c);
        }));
        until("the task queues", || pool.status().waiting == i + 1).await;
    }
    drop(conn);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

/// 64 tasks on 8 connections for 2 s: nobody starves.
pub async fn no_task_starves_under_64_tasks_on_8_connections<B: Backend>() {
    let server = B::start();
    let pool = pool::<B>(&server, 8, 0);
    let stop = Instant::now() + Duration::from_secs(2);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < stop {
                let mut c = pool.get().await.unwrap();
                B::round_trip(&mut c).await.unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.unwrap());
    }
    let (min, max) = (*counts.iter().min().unwrap(), *counts.iter().max().unwrap());
    assert!(min > 1, "a task starved: {counts:?}");
    assert!(max <= min * 3 + 3, "unfair spread: min {min}, max {max}");
    let s = pool.status();
    assert_eq!(s.open, 8);
    assert_eq!(s.counters.checkouts, counts.iter().sum::<u64>());
}

/// No ping inside the bypass window; one after it.
pub async fn validation_is_skipped_inside_the_bypass_window<B: Backend>() {
    let server = B::start();
    let pool = pool_with::<B>(&server, 1, 0, |s| {
        s.pre_ping_window = Duration::from_millis(300)
    });
    drop(pool.get().await.unwrap());
    for _ in 0..10 {
        drop(pool.get().await.unwrap());
    }
    let c = pool.status().counters;
    assert_eq!((c.validations, c.validations_skipped), (0, 10));
    tokio::time::sleep(Duration::from_millis(400)).await;
    drop(pool.get().await.unwrap());
    assert_eq!(pool.status().counters.validations, 1);
}

/// Every checkout ends in one return; opens minus closes is what is open.
pub async fn counters_reconcile<B: Backend>() {
    let server = B::start();
    let pool = pool::<B>(&server, 2, 2);
    for i in 0..20 {
        let mut c = pool.get().await.unwrap();
        if i % 5 == 0 {
            c.mark_broken();
        }
    }
    drop(hold::<B>(&pool, 4).await);
    let s = pool.status();
    let c = s.counters;
    assert_eq!((c.checkouts, c.returns, c.closed.broken), (24, 24, 4));
    assert_eq!(c.created - c.closed.total(), u64::from(s.open));
}

// -------------------------------------------------------------- recovery

/// Fills the pool with `n` connections, then leaves them idle past the
/// bypass window.
async fn warm<B: Backend>(pool: &Pool<B::M>, n: usize) {
    drop(hold::<B>(pool, n).await);
    assert_eq!(pool.status().idle as usize, n);
    tokio::time::sleep(Duration::from_millis(700)).await;
}

async fn no_errors<B: Backend>(pool: &Pool<B::M>, n: usize) {
    let mut errors = Vec::new();
    for _ in 0..n {
        if let Err(e) = use_once::<B>(pool).await {
            errors.push(e);
        }
    }
    assert!(
        errors.is_empty(),
        "{} errors surfaced: {errors:?}",
        errors.len()
    );
}

/// Restarts (clean and kill -9) while the pool is idle: later checkouts see
/// no error.
pub async fn restart_while_idle_surfaces_no_errors<B: Backend>() {
    let server = B::start();
    let pool = pool::<B>(&server, 4, 0);
    let mut server = Some(server);
    for kill in [false, true] {
        warm::<B>(&pool, 4).await;
        let mut s = server.take().unwrap();
        server = Some(
            blocking(move || {
                if kill {
                    B::kill9_and_start(&mut s)
                } else {
                    B::restart(&mut s)
                }
                s
            })
            .await,
        );
        no_errors::<B>(&pool, 20).await;
    }
    // Each dead connection is closed: found broken, failing its ping, or
    // invalidated at once by the disconnect another one revealed.
    let c = pool.status().counters;
    let dead = c.closed.broken + c.closed.validation_failed + c.closed.invalidated;
    assert!(dead >= 8, "{c:?}");
}

/// Sessions killed by an administrator while idle: later checkouts see no
/// error.
pub async fn sessions_killed_while_idle_surface_no_errors<B: Backend>() {
    let server = B::start();
    let pool = pool::<B>(&server, 4, 0);
    warm::<B>(&pool, 4).await;
    assert_eq!(B::kill_sessions(&server), 4);
    no_errors::<B>(&pool, 20).await;
    let c = pool.status().counters;
    let dead = c.closed.broken + c.closed.validation_failed + c.closed.invalidated;
    assert!(dead >= 4, "{c:?}");
}

/// A checkout that starts during an outage succeeds once the server is back
/// (within one backoff cap), not at its first refused connect.
pub async fn a_checkout_during_an_outage_succeeds_when_the_server_returns<B: Backend>() {
    let mut server = B::start();
    let pool = pool_with::<B>(&server, 2, 0, |s| s.pool_timeout = Duration::from_secs(15));
    warm::<B>(&pool, 2).await;
    B::stop(&mut server);
    let checkout = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let r = use_once::<B>(&pool).await;
            (r, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !checkout.is_finished(),
        "the checkout gave up during the outage"
    );
    let _server = blocking(move || {
        B::start_again(&mut server);
        server
    })
    .await;
    let back = Instant::now();
    let (result, done) = checkout.await.unwrap();
    result.unwrap();
    let noticed = done.saturating_duration_since(back);
    // Backoff cap is 200 ms here; allow generous slack.
    assert!(
        noticed < Duration::from_secs(1),
        "took {noticed:?} to notice the server"
    );
    assert!(pool.status().counters.connect_failures > 0);
}

/// A frozen server (socket open, no answers) gives a bounded timeout error,
/// and checkouts work again after the thaw.
pub async fn a_frozen_server_gives_a_bounded_error_then_recovers<B: Backend>() {
    let server = B::start();
    let pool = pool_with::<B>(&server, 2, 0, |s| {
        s.pool_timeout = Duration::from_secs(2);
        s.validation_timeout = Duration::from_millis(500);
        s.connect_timeout = Duration::from_millis(500);
    });
    warm::<B>(&pool, 2).await;
    B::freeze(&server);
    let start = Instant::now();
    let result = pool.get().await;
    let elapsed = start.elapsed();
    B::thaw(&server);
    let err = result.expect_err("the server is frozen");
    assert!(err.is_timeout(), "{err}");
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    assert!(err.to_string().contains("last error"), "{err}");
    no_errors::<B>(&pool, 10).await;
}

/// A wrong password ends the checkout at once, with the server's reason
/// and without the password.
pub async fn a_wrong_password_is_fatal_at_once<B: Backend>() {
    let server = B::start_with_password("right-pw");
    let pool = B::build(settings(&B::url_with_password(&server, "wr0ng-pw"), 2, 0));
    let start = Instant::now();
    let err = pool.get().await.expect_err("wrong password");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "waited: {:?}",
        start.elapsed()
    );
    assert_eq!(err.class(), ErrorClass::Fatal, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(B::WRONG_PASSWORD_TEXT), "{msg}");
    assert!(
        !msg.contains("wr0ng-pw") && !format!("{err:?}").contains("wr0ng-pw"),
        "{msg}"
    );
    assert_eq!(pool.status().counters.fatal_errors, 1);
    let pool = B::build(settings(&B::url(&server), 2, 0));
    use_once::<B>(&pool).await.unwrap();
}

/// The caller's statement error keeps the connection; the server ending
/// the session breaks it, and it is not returned.
pub async fn a_callers_error_marks_the_connection_broken<B: Backend>() {
    let server = B::start();
    let pool = pool::<B>(&server, 2, 0);
    let mut conn = pool.get().await.unwrap();
    drop(pool.get().await.unwrap());
    assert!(B::statement_error(&mut conn).await.is_err());
    assert!(!conn.is_broken(), "a statement error broke the connection");
    assert!(B::end_own_session(&mut conn).await.is_err());
    assert!(conn.is_broken());
    drop(conn);
    // The disconnect also closes the older idle connection at once
    // (invalidation, as SQLAlchemy does), instead of pinging it later.
    let s = pool.status();
    assert_eq!(
        (
            s.counters.closed.broken,
            s.counters.closed.invalidated,
            s.open
        ),
        (1, 1, 0),
        "{s:?}"
    );
    let last = pool.last_error().expect("the disconnect is recorded");
    assert!(last.cause.class.breaks_connection(), "{last:?}");
    no_errors::<B>(&pool, 5).await;
}
