//! Deterministic engine tests: the scriptable fake manager
//! ([`crate::testing`]) and tokio's paused clock put every race and await
//! point of the engine under a test that gives the same answer every run.

use super::*;
use crate::settings::Overflow;
use crate::testing::{FakeError, FakeManager, FakeMode, Op, Step};
use crate::{ErrorClass, RetryPolicy};
use std::time::Duration;
use tokio::time::{sleep, timeout};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn settings(pool_size: u32, overflow: u32) -> PoolSettings {
    let mut s = PoolSettings::new("t");
    s.pool_size = pool_size;
    s.max_overflow = Overflow::Limited(overflow);
    s.pool_timeout = Duration::from_secs(30);
    s.pre_ping = true;
    s.pre_ping_window = ms(500);
    s.validation_timeout = Duration::from_secs(1);
    s.connect_timeout = Duration::from_secs(5);
    s.retry = RetryPolicy {
        initial: ms(50),
        max: Duration::from_secs(1),
    };
    s
}

fn pool(s: PoolSettings) -> Pool<FakeManager> {
    Pool::new(FakeManager::working(), s)
}

/// The counters and gauges agree with each other and with the fake server:
/// every checkout ended in a return or is still out, every connection
/// opened is closed or still open, every connect attempt has one outcome,
/// and nothing in flight is left counted.
#[track_caller]
fn assert_reconciled(pool: &Pool<FakeManager>) {
    let s = pool.status();
    let c = &s.counters;
    assert_eq!(c.checkouts, c.returns + u64::from(s.in_use), "{s:?}");
    assert_eq!(c.created, c.closed.total() + u64::from(s.open), "{s:?}");
    assert_eq!(
        c.connect_attempts,
        c.created + c.connect_failures + c.connects_cancelled,
        "{s:?}"
    );
    assert_eq!(s.open, s.idle + s.in_use, "{s:?}");
    assert_eq!(
        u64::from(s.open) + c.closed.detached,
        pool.manager().open_connections(),
        "the pool's open count matches the connections alive: {s:?}"
    );
    assert_eq!(s.connecting, 0, "{s:?}");
    assert_eq!(s.waiting, 0, "{s:?}");
}

#[tokio::test(start_paused = true)]
async fn a_connect_in_flight_during_close_hands_out_nothing() {
    let pool = pool(settings(1, 0));
    pool.manager().push(Op::Connect, Step::ok_after(ms(100)));
    let p = pool.clone();
    let get = tokio::spawn(async move { p.get().await.map(|c| c.id) });
    sleep(ms(10)).await;
    assert_eq!(pool.status().connecting, 1);
    let t = Instant::now();
    pool.close();
    let r = get.await.unwrap();
    assert!(matches!(r, Err(PoolError::Closed(_))), "{r:?}");
    assert!(t.elapsed() < ms(10), "close ends the checkout at once");
    assert_eq!(pool.manager().open_connections(), 0);
    assert_reconciled(&pool);
}

#[tokio::test(start_paused = true)]
async fn close_during_validation_ends_the_checkout_at_once() {
    let pool = pool(settings(1, 0));
    drop(pool.get().await.unwrap());
    sleep(ms(600)).await; // out of the bypass window: the next checkout pings
    pool.manager().set_default(Op::Ping, Step::Hang);
    let p = pool.clone();
    let get = tokio::spawn(async move { p.get().await.map(|c| c.id) });
    sleep(ms(10)).await;
    assert_eq!(pool.manager().pings(), 1);
    let t = Instant::now();
    pool.close();
    let r = get.await.unwrap();
    assert!(matches!(r, Err(PoolError::Closed(_))), "{r:?}");
    assert!(t.elapsed() < ms(10), "{:?}", t.elapsed());
    assert_eq!(pool.manager().open_connections(), 0);
    assert_eq!(pool.status().counters.closed.pool_closed, 1);
    assert_reconciled(&pool);
}

/// A return and `close()` on two threads at once: whichever wins, the
/// connection ends up closed (the window is between the return's check of
/// the closed flag and its push onto the idle stack).
#[test]
fn a_return_racing_close_leaves_no_connection_open() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for round in 0..3000 {
        let pool = pool(settings(8, 0));
        let conns: Vec<_> = rt.block_on(async {
            let mut v = Vec::new();
            for _ in 0..8 {
                v.push(pool.get().await.unwrap());
            }
            v
        });
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                barrier.wait();
                drop(conns);
            });
            s.spawn(|| {
                barrier.wait();
                pool.close();
            });
        });
        let st = pool.status();
        assert_eq!(
            (st.open, st.idle, pool.manager().open_connections()),
            (0, 0, 0),
            "round {round}: {st:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_overflow_connection_returned_while_checkouts_queue_goes_to_a_waiter() {
    let pool = pool(settings(1, 1));
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let (p1, p2) = (pool.clone(), pool.clone());
    let c = tokio::spawn(async move { p1.get().await });
    let d = tokio::spawn(async move { p2.get().await });
    sleep(ms(1)).await;
    assert_eq!(pool.status().waiting, 2);
    drop(a);
    drop(b);
    let (c, d) = (c.await.unwrap().unwrap(), d.await.unwrap().unwrap());
    let mut ids = [c.id, d.id];
    ids.sort();
    assert_eq!(ids, [1, 2], "the waiters got the two returned connections");
    assert_eq!(pool.manager().connects(), 2, "none closed and reopened");
    assert_eq!(pool.status().counters.closed.overflow, 0);
    drop((c, d));
    assert_eq!(
        pool.status().counters.closed.overflow,
        1,
        "back to pool_size"
    );
    assert_reconciled(&pool);
}

#[tokio::test(start_paused = true)]
async fn after_a_disconnect_older_idle_connections_are_closed_at_once() {
    let mut s = settings(5, 0);
    s.pool_timeout = Duration::from_secs(3);
    let pool = pool(s);
    let mut conns = Vec::new();
    for _ in 0..5 {
        conns.push(pool.get().await.unwrap());
    }
    let mut last = conns.pop().unwrap();
    drop(conns);
    sleep(ms(600)).await; // out of the bypass window
                          // The server went away: the idle sockets are black holes.
    pool.manager().set_default(Op::Ping, Step::Hang);
    let seen: Result<(), FakeError> = Err(FakeError(ErrorClass::Disconnected));
    assert!(last.observe(seen).is_err());
    drop(last);
    let st = pool.status();
    assert_eq!(
        st.idle, 0,
        "closed at once, not at their next checkout: {st:?}"
    );
    assert_eq!(st.counters.closed.invalidated, 4, "{st:?}");
    let t = Instant::now();
    let c = pool.get().await.unwrap();
    assert!(
        t.elapsed() < ms(10),
        "no ping per stale connection: {:?}",
        t.elapsed()
    );
    assert_eq!(pool.manager().pings(), 0);
    assert_eq!(c.id, 6);
    drop(c);
    assert_reconciled(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_connect_leaves_exact_counters() {
    let pool = pool(settings(1, 0));
    pool.manager()
        .push(Op::Connect, Step::ok_after(Duration::from_secs(1)));
    assert!(timeout(ms(100), pool.get()).await.is_err());
    let s = pool.status();
    assert_eq!(s.counters.connect_attempts, 1, "{s:?}");
    assert_eq!(s.counters.connects_cancelled, 1, "{s:?}");
    assert_reconciled(&pool);
    // The slot came back: the next checkout connects at once.
    let c = pool.get_timeout(ms(10)).await.unwrap();
    assert_eq!(c.id, 1);
    drop(c);
    assert_reconciled(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_error_counts_its_own_checkout_as_waiting() {
    let pool = pool(settings(1, 0));
    let _held = pool.get().await.unwrap();
    let err = pool.get_timeout(ms(100)).await.unwrap_err();
    match &err {
        PoolError::Timeout { status, .. } => assert_eq!(status.waiting, 1, "{err}"),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("waiting=1"), "{err}");
}

fn slow_retries(s: &mut PoolSettings, initial: Duration, max: Duration) {
    s.retry = RetryPolicy { initial, max };
}

#[tokio::test(start_paused = true)]
async fn a_returned_connection_wakes_a_checkout_sleeping_in_backoff() {
    let mut s = settings(1, 1);
    slow_retries(&mut s, Duration::from_secs(1), Duration::from_secs(1));
    let pool = pool(s);
    let a = pool.get().await.unwrap();
    pool.manager()
        .set_default(Op::Connect, Step::Fail(ErrorClass::Unavailable));
    let p = pool.clone();
    let b = tokio::spawn(async move {
        let t = Instant::now();
        p.get().await.map(|c| (c.id, t.elapsed()))
    });
    sleep(ms(10)).await;
    assert_eq!(pool.manager().connects(), 2, "b failed once and sleeps");
    drop(a);
    let (id, took) = b.await.unwrap().unwrap();
    assert_eq!(id, 1);
    assert!(
        took < ms(20),
        "woken by the return, not the backoff: {took:?}"
    );
    assert_reconciled(&pool);
}

#[tokio::test(start_paused = true)]
async fn closing_the_pool_wakes_a_checkout_sleeping_in_backoff() {
    let mut s = settings(1, 0);
    slow_retries(&mut s, Duration::from_secs(1), Duration::from_secs(1));
    let pool = pool(s);
    pool.manager()
        .set_default(Op::Connect, Step::Fail(ErrorClass::Unavailable));
    let p = pool.clone();
    let b = tokio::spawn(async move {
        let t = Instant::now();
        (p.get().await.map(|c| c.id), t.elapsed())
    });
    sleep(ms(10)).await;
    pool.close();
    let (r, took) = b.await.unwrap();
    assert!(matches!(r, Err(PoolError::Closed(_))), "{r:?}");
    assert!(took < ms(20), "{took:?}");
    assert_reconciled(&pool);
}

#[tokio::test(start_paused = true)]
async fn the_last_attempt_is_timed_to_fit_the_deadline() {
    // Backoff sleeps of 1-2 s, a deadline of 1 s: sleeping out the backoff
    // would always miss it.
    let mut s = settings(1, 0);
    slow_retries(&mut s, Duration::from_secs(2), Duration::from_secs(2));
    s.pool_timeout = Duration::from_secs(1);
    let pool = pool(s);
    pool.manager()
        .push(Op::Connect, Step::Fail(ErrorClass::Unavailable));
    pool.manager()
        .set_default(Op::Connect, Step::ok_after(ms(10)));
    let t = Instant::now();
    let c = pool.get().await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(pool.manager().connects(), 2);
    drop(c);
    assert_reconciled(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_server_back_within_pool_timeout_serves_every_waiter() {
    // Finding 6 of issue 18: an outage shorter than pool_timeout must not
    // fail checkouts. The server refuses for 1.5 s; pool_timeout is 2 s.
    let mut s = settings(4, 0);
    s.pool_timeout = Duration::from_secs(2);
    let pool = pool(s);
    pool.manager().set_default(
        Op::Connect,
        Step::fail_after(ms(1), ErrorClass::Unavailable),
    );
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let p = pool.clone();
        tasks.push(tokio::spawn(async move {
            let c = p.get().await?;
            sleep(ms(5)).await;
            drop(c);
            Ok::<_, PoolError>(Instant::now())
        }));
    }
    sleep(ms(1500)).await;
    let back = Instant::now();
    pool.manager()
        .set_default(Op::Connect, Step::ok_after(ms(5)));
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap().expect("no checkout fails"));
    }
    let first = *done.iter().min().unwrap();
    assert!(
        first - back <= Duration::from_secs(1),
        "the first success within one backoff cap: {:?}",
        first - back
    );
    for d in done {
        assert!(
            d - first < ms(50),
            "the others are woken by the first success, not their backoff: {:?}",
            d - first
        );
    }
    assert_reconciled(&pool);
}

mod cancellation {
    //! A checkout dropped at each of its await points gives everything back.

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn while_queued_for_a_slot() {
        let pool = pool(settings(1, 0));
        let held = pool.get().await.unwrap();
        assert!(timeout(ms(10), pool.get()).await.is_err());
        assert_eq!(pool.status().waiting, 0);
        drop(held);
        let c = pool.get_timeout(ms(1)).await.unwrap();
        assert_eq!(c.id, 1);
        drop(c);
        assert_reconciled(&pool);
    }

    #[tokio::test(start_paused = true)]
    async fn while_validating() {
        let pool = pool(settings(1, 0));
        drop(pool.get().await.unwrap());
        sleep(ms(600)).await;
        pool.manager()
            .push(Op::Ping, Step::ok_after(Duration::from_secs(1)));
        assert!(timeout(ms(10), pool.get()).await.is_err());
        let s = pool.status();
        assert_eq!(s.counters.closed.cancelled, 1, "{s:?}");
        assert_reconciled(&pool);
        let c = pool.get_timeout(ms(1)).await.unwrap();
        assert_eq!(c.id, 2, "a new connection: the half-pinged one was closed");
        drop(c);
        assert_reconciled(&pool);
    }

    #[tokio::test(start_paused = true)]
    async fn while_connecting() {
        let pool = pool(settings(1, 0));
        pool.manager().push(Op::Connect, Step::Hang);
        assert!(timeout(ms(10), pool.get()).await.is_err());
        assert_reconciled(&pool);
        assert!(pool.get_timeout(ms(1)).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn while_sleeping_in_backoff() {
        let pool = pool(settings(1, 0));
        pool.manager()
            .set_default(Op::Connect, Step::Fail(ErrorClass::Unavailable));
        assert!(timeout(ms(100), pool.get()).await.is_err());
        assert!(pool.manager().connects() >= 2);
        assert_reconciled(&pool);
        pool.manager().set_default(Op::Connect, Step::Ok);
        assert!(pool.get_timeout(ms(1)).await.is_ok());
        assert_reconciled(&pool);
    }
}

mod hooks {
    //! The manager's lifecycle hooks: `after_connect` and `on_close`.

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn every_connection_the_pool_lets_go_is_released_once() {
        let pool = pool(settings(1, 1));
        let a = pool.get().await.unwrap();
        let b = pool.get().await.unwrap();
        drop(a); // idle
        drop(b); // overflow: closed
        let c = pool.get().await.unwrap();
        let kept = c.detach(); // detached: the caller's now
        let d = pool.get().await.unwrap();
        drop(d);
        pool.close(); // the idle one
        let mut released = pool.manager().released_ids();
        released.sort();
        assert_eq!(released, [1, 2, 3], "each once, detached included");
        let s = pool.status();
        assert_eq!(s.counters.closed.total(), 3, "{s:?}");
        assert_eq!(kept.id, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_init_fails_the_attempt_and_releases_the_connection() {
        let pool = pool(settings(1, 0));
        pool.manager()
            .push(Op::Init, Step::Fail(ErrorClass::Unavailable));
        let c = pool.get().await.unwrap();
        assert_eq!(c.id, 2, "the first connection failed its init");
        assert_eq!(pool.manager().released_ids(), [1]);
        let s = pool.status();
        assert_eq!(s.counters.connect_failures, 1, "{s:?}");
        assert_eq!(s.counters.created, 1, "{s:?}");
        assert!(pool
            .last_error()
            .unwrap()
            .cause
            .message
            .contains("unavailable"));
        drop(c);
        assert_reconciled(&pool);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fatal_init_error_ends_the_checkout() {
        let pool = pool(settings(1, 0));
        pool.manager().push(Op::Init, Step::Fail(ErrorClass::Fatal));
        let err = pool.get().await.unwrap_err();
        assert!(matches!(err, PoolError::Fatal { .. }), "{err}");
        assert_eq!(pool.manager().released_ids(), [1]);
        assert_reconciled(&pool);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_init_is_bounded_by_connect_timeout() {
        let pool = pool(settings(1, 0));
        pool.manager().push(Op::Init, Step::Hang);
        let t = Instant::now();
        let c = pool.get().await.unwrap();
        let took = t.elapsed();
        assert!(
            took >= Duration::from_secs(5) && took < Duration::from_secs(6),
            "{took:?}"
        );
        assert_eq!(c.id, 2);
        assert_eq!(pool.manager().released_ids(), [1]);
        drop(c);
        assert_reconciled(&pool);
    }
}

fn fail_fast_settings() -> PoolSettings {
    let mut s = settings(2, 0);
    s.fail_fast = true;
    s
}

/// The error of a checkout that failed fast, with its `retry_in`.
#[track_caller]
fn unavailable(r: Result<Pooled<FakeManager>, PoolError>) -> Duration {
    match r {
        Err(PoolError::Unavailable {
            retry_in, cause, ..
        }) => {
            assert_eq!(cause.class, ErrorClass::Unavailable);
            assert!(cause.message.contains("connect to"), "{cause}");
            retry_in
        }
        other => panic!("expected an unavailable error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn fail_fast_fails_at_once_and_tries_again_after_each_backoff_step() {
    let pool = pool(fail_fast_settings());
    pool.manager().set_mode(FakeMode::Refuse);
    let t = Instant::now();
    // The first checkout tries once and fails at once (no backoff, no
    // waiting out the 30 s pool_timeout).
    assert_eq!(unavailable(pool.get().await), ms(50));
    assert_eq!(t.elapsed(), Duration::ZERO);
    assert_eq!(pool.manager().connects(), 1);
    // Inside the first backoff step (50 ms) nobody tries again.
    sleep(ms(20)).await;
    assert_eq!(unavailable(pool.get().await), ms(30));
    assert_eq!(pool.manager().connects(), 1, "no attempt inside the window");
    // After it, the next checkout tries; a second failure doubles the step.
    sleep(ms(31)).await;
    assert_eq!(unavailable(pool.get().await), ms(100));
    assert_eq!(pool.manager().connects(), 2);
    // The server comes back: checkouts inside the window still fail fast,
    // the first one after it connects, and the pool is up again.
    pool.manager().set_mode(FakeMode::Ok);
    sleep(ms(99)).await;
    assert_eq!(unavailable(pool.get().await), ms(1));
    sleep(ms(1)).await;
    let c = pool.get().await.expect("the server is back");
    assert_eq!(pool.manager().connects(), 3);
    drop(c);
    assert!(pool.get().await.is_ok());
    let s = pool.status();
    assert_eq!(s.counters.failed_fast, 4, "{s:?}");
    assert_eq!(s.counters.timeouts, 0, "{s:?}");
    assert_reconciled(&pool);
}

#[tokio::test(start_paused = true)]
async fn fail_fast_still_hands_out_idle_connections_and_is_off_by_default() {
    let pool = pool(fail_fast_settings());
    let held = pool.get().await.unwrap();
    drop(pool.get().await.unwrap()); // a second connection, now idle
    let held2 = pool.get().await.unwrap();
    drop(held);
    // The server goes away; the idle connection is still handed out.
    pool.manager().set_mode(FakeMode::Refuse);
    let idle = pool
        .get()
        .await
        .expect("an idle connection needs no connect");
    drop(idle);
    drop(held2);
    assert_reconciled(&pool);

    // Off (the default): a checkout waits out the outage within
    // pool_timeout and gets the connection when the server is back.
    let mut s = settings(1, 0);
    assert!(!PoolSettings::new("d").fail_fast, "off by default");
    s.fail_fast = false;
    let pool = pool_with(s, FakeMode::Refuse);
    let p = pool.clone();
    let get = tokio::spawn(async move { p.get().await.map(|c| c.id) });
    sleep(ms(500)).await;
    assert!(!get.is_finished(), "without fail_fast the checkout waits");
    pool.manager().set_mode(FakeMode::Ok);
    assert!(get.await.unwrap().is_ok());
    assert_eq!(pool.status().counters.failed_fast, 0);
    assert_reconciled(&pool);
}

fn pool_with(s: PoolSettings, mode: FakeMode) -> Pool<FakeManager> {
    Pool::new(FakeManager::new(mode), s)
}

#[tokio::test(start_paused = true)]
async fn fail_fast_sends_one_probe_at_a_time_to_a_server_that_hangs() {
    let mut s = fail_fast_settings();
    s.pool_size = 4;
    let pool = pool(s);
    pool.manager().set_mode(FakeMode::Refuse);
    unavailable(pool.get().await); // down
                                   // The server now hangs: after the window, one checkout probes it and
                                   // waits out connect_timeout (5 s); every other checkout meanwhile fails
                                   // at once instead of piling onto it.
    pool.manager().set_default(
        Op::Connect,
        Step::fail_after(Duration::from_secs(5), ErrorClass::Timeout),
    );
    sleep(ms(60)).await;
    let p = pool.clone();
    let probe = tokio::spawn(async move { p.get().await.map(|c| c.id) });
    sleep(ms(10)).await;
    assert_eq!(pool.status().connecting, 1);
    for _ in 0..3 {
        let t = Instant::now();
        let e = pool.get().await.expect_err("fails fast");
        assert!(
            e.to_string().contains("a connect attempt is under way"),
            "{e}"
        );
        // Shown through redaction (as the backend does) it still says so:
        // the text names the target once, in the cause.
        let shown = crate::redact::redact_url(&e.to_string());
        assert!(
            shown.contains("failing fast") && shown.contains("connect to fake://"),
            "{shown}"
        );
        assert_eq!(t.elapsed(), Duration::ZERO);
    }
    assert_eq!(pool.manager().connects(), 2, "one probe, not four");
    assert!(matches!(
        probe.await.unwrap(),
        Err(PoolError::Unavailable { .. })
    ));
    assert_reconciled(&pool);
}

/// Reset on return: a connection its caller left dirty is reset at once in
/// a task of its own (not lazily at the next checkout), and no one gets it
/// before the reset is over; a clean return costs no reset.
#[tokio::test(start_paused = true)]
async fn a_dirty_return_is_reset_at_once_and_before_the_next_caller() {
    let pool = pool(settings(1, 0));
    drop(pool.get().await.unwrap());
    assert!(pool.manager().resets().is_empty(), "a clean return");
    let a = pool.get().await.unwrap();
    pool.manager().leave(a.id, Returned::Reset);
    pool.manager().push(Op::Reset, Step::ok_after(ms(100)));
    drop(a);
    // Promptly, with no checkout asking for it.
    sleep(ms(1)).await;
    assert_eq!(pool.manager().resets(), [(1, Returned::Reset)]);
    assert_eq!(pool.status().idle, 0, "not idle while resetting");
    let t = Instant::now();
    let b = pool.get().await.unwrap();
    assert_eq!(b.id, 1);
    assert_eq!(t.elapsed(), ms(99), "B waited for the reset to end");
    drop(b);
    let c = pool.status().counters;
    assert_eq!((c.resets, c.cancels, c.closed.total()), (1, 0, 0), "{c:?}");
    assert_reconciled(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_request_in_flight_is_cancelled_or_the_connection_closed() {
    let pool = pool(settings(1, 0));
    // Cancelled server-side, then reused.
    let a = pool.get().await.unwrap();
    pool.manager().leave(a.id, Returned::Cancel);
    drop(a);
    let b = pool.get().await.unwrap();
    assert_eq!(b.id, 1);
    // The backend cannot cancel: closed at once, a new one for the next.
    pool.manager().leave(b.id, Returned::Close);
    drop(b);
    let c = pool.get().await.unwrap();
    assert_eq!(c.id, 2);
    // A cancel that fails: closed too.
    pool.manager().leave(c.id, Returned::Cancel);
    pool.manager()
        .push(Op::Reset, Step::Fail(ErrorClass::Query));
    drop(c);
    assert_eq!(pool.get().await.unwrap().id, 3);
    let c = pool.status().counters;
    assert_eq!((c.resets, c.cancels), (0, 1), "{c:?}");
    assert_eq!(c.closed.in_flight, 2, "{c:?}");
    assert!(
        pool.last_error().is_none(),
        "no disconnect recorded for the pool"
    );
    assert_reconciled(&pool);
}

#[tokio::test(start_paused = true)]
async fn a_reset_that_fails_or_hangs_closes_the_connection() {
    let pool = pool(settings(1, 0));
    let a = pool.get().await.unwrap();
    pool.manager().leave(a.id, Returned::Reset);
    pool.manager().push(Op::Reset, Step::Hang);
    drop(a);
    let t = Instant::now();
    let b = pool.get().await.unwrap();
    assert_eq!(t.elapsed(), Duration::from_secs(1), "validation_timeout");
    assert_eq!(b.id, 2);
    pool.manager().leave(b.id, Returned::Reset);
    pool.manager()
        .push(Op::Reset, Step::Fail(ErrorClass::Disconnected));
    drop(b);
    assert_eq!(pool.get().await.unwrap().id, 3);
    let c = pool.status().counters;
    assert_eq!(c.closed.reset_failed, 2, "{c:?}");
    assert_eq!(c.resets, 0, "{c:?}");
    assert_reconciled(&pool);
}

#[tokio::test(start_paused = true)]
async fn close_during_a_reset_closes_the_connection() {
    let pool = pool(settings(1, 0));
    let a = pool.get().await.unwrap();
    pool.manager().leave(a.id, Returned::Reset);
    pool.manager().push(Op::Reset, Step::Hang);
    drop(a);
    sleep(ms(10)).await;
    pool.close();
    sleep(ms(1)).await;
    assert_eq!(pool.manager().open_connections(), 0);
    assert_eq!(pool.status().counters.closed.pool_closed, 1);
    assert_reconciled(&pool);
}
