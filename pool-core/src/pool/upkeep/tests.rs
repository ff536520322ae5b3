//! The housekeeper, warm-up and pause, proven with the scriptable fake
//! manager and tokio's paused clock (deterministic: every sleep is exact).

use crate::settings::Overflow;
use crate::testing::{FakeManager, FakeMode, Op, Step};
use crate::{ErrorClass, Pool, PoolError, PoolSettings};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{sleep, Instant};
use tracing::Instrument;

const MS: Duration = Duration::from_millis(1);

fn settings(pool_size: u32) -> PoolSettings {
    let mut s = PoolSettings::new("upkeep");
    s.pool_size = pool_size;
    s.max_overflow = Overflow::Limited(0);
    s
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Checks out `n` connections at once, then returns them all.
async fn burst(pool: &Pool<FakeManager>, n: usize) {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(pool.get().await.unwrap());
    }
}

#[tokio::test(start_paused = true)]
async fn min_idle_is_filled_at_start_and_refilled_after_the_server_kills_sessions() {
    let mut s = settings(4);
    s.min_idle = 2;
    s.housekeeping_period = Duration::from_secs(1);
    let pool = Pool::new(FakeManager::working(), s);
    sleep(10 * MS).await;
    let st = pool.status();
    assert_eq!((st.open, st.idle), (2, 2), "{st:?}");
    assert_eq!(pool.manager().open_connections(), 2);

    // The server drops both idle sessions; nobody checks out.
    pool.manager().kill(1);
    pool.manager().kill(2);
    sleep(Duration::from_millis(1010)).await;
    let st = pool.status();
    assert_eq!((st.open, st.idle), (2, 2), "{st:?}");
    assert_eq!(st.counters.closed.broken, 2);
    assert_eq!(pool.manager().connects(), 4);
    assert_eq!(pool.manager().open_connections(), 2);
    assert!(st.housekeeper.as_ref().unwrap().runs >= 2);
    assert!(st.housekeeper.unwrap().last_run.is_some());
}

#[tokio::test(start_paused = true)]
async fn min_idle_refill_retries_with_the_backoff_not_the_period() {
    let mut s = settings(4);
    s.min_idle = 1;
    s.housekeeping_period = Duration::from_secs(30);
    s.retry.initial = Duration::from_millis(50);
    s.retry.max = Duration::from_millis(400);
    let pool = Pool::new(FakeManager::new(FakeMode::Refuse), s);
    sleep(Duration::from_secs(3)).await;
    assert_eq!(pool.status().open, 0);
    let attempts = pool.manager().connects();
    // At least every 400 ms for 3 s, not once per 30 s period.
    assert!(attempts >= 7, "{attempts} attempts");
    pool.manager().set_mode(FakeMode::Ok);
    sleep(Duration::from_millis(410)).await;
    assert_eq!(pool.status().idle, 1);
    // Filled: back to the period, no more connects.
    let attempts = pool.manager().connects();
    sleep(Duration::from_secs(5)).await;
    assert_eq!(pool.manager().connects(), attempts);
}

#[tokio::test(start_paused = true)]
async fn min_idle_never_goes_above_pool_size() {
    let mut s = settings(2);
    s.min_idle = 2;
    s.housekeeping_period = Duration::from_secs(1);
    let pool = Pool::new(FakeManager::working(), s);
    sleep(10 * MS).await;
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    sleep(Duration::from_secs(3)).await;
    // Both are checked out: nothing is idle, yet nothing more is opened.
    assert_eq!(pool.status().open, 2);
    assert_eq!(pool.manager().connects(), 2);
    drop((a, b));
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_shrinks_the_pool_to_min_idle_after_a_burst() {
    let mut s = settings(5);
    s.min_idle = 1;
    s.idle_timeout = Some(Duration::from_secs(10));
    let pool = Pool::new(FakeManager::working(), s);
    // Period: a quarter of the idle timeout.
    assert_eq!(
        pool.status().housekeeper.unwrap().period,
        Duration::from_millis(2500).as_secs_f64()
    );
    sleep(10 * MS).await;
    burst(&pool, 5).await;
    assert_eq!(pool.status().idle, 5);
    sleep(Duration::from_secs(5)).await;
    assert_eq!(pool.status().idle, 5, "not idle for 10 s yet");
    sleep(Duration::from_secs(8)).await;
    let st = pool.status();
    assert_eq!((st.open, st.idle), (1, 1), "{st:?}");
    assert_eq!(st.counters.closed.idle_timeout, 4);
    assert_eq!(pool.manager().open_connections(), 1);
    // It stays at min_idle.
    sleep(Duration::from_secs(60)).await;
    assert_eq!(pool.status().open, 1);
}

#[tokio::test(start_paused = true)]
async fn the_bottom_of_the_stack_is_recycled_in_the_background() {
    let recycle = Duration::from_secs(100);
    let mut s = settings(3);
    s.pool_recycle = Some(recycle);
    let pool = Pool::new(FakeManager::working(), s);
    let period = Duration::from_secs_f64(pool.status().housekeeper.unwrap().period);
    assert_eq!(period, Duration::from_secs(25));
    let start = Instant::now();
    burst(&pool, 2).await;
    // Half a lifetime later a third connection goes on top; the two
    // older ones sit below it.
    sleep(recycle / 2).await;
    let (a, b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    let c = pool.get().await.unwrap();
    assert_eq!(c.id, 3);
    drop((a, b));
    drop(c);
    // One caller keeps using the top connection: the two below it are never
    // reached by a checkout.
    while start.elapsed() < recycle + period + MS {
        let conn = pool.get().await.unwrap();
        assert_eq!(conn.id, 3);
        drop(conn);
        sleep(Duration::from_secs(1)).await;
    }
    let mut closed = pool.manager().closed_ids();
    closed.sort();
    assert_eq!(closed, vec![1, 2]);
    let c = pool.status().counters.closed;
    assert_eq!(c.lifetime, 2, "{c:?}");
    assert_eq!(c.recycled, 0, "{c:?}");
}

#[tokio::test(start_paused = true)]
async fn recycling_never_touches_a_checked_out_connection() {
    let mut s = settings(2);
    s.pool_recycle = Some(Duration::from_secs(10));
    let pool = Pool::new(FakeManager::working(), s);
    let held = pool.get().await.unwrap();
    sleep(Duration::from_secs(30)).await;
    assert!(pool.manager().closed_ids().is_empty());
    assert_eq!(pool.status().in_use, 1);
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn keepalive_finds_a_black_holed_idle_connection_before_any_caller() {
    let mut s = settings(2);
    s.keepalive = Some(Duration::from_secs(10));
    s.validation_timeout = Duration::from_secs(2);
    let pool = Pool::new(FakeManager::working(), s);
    drop(pool.get().await.unwrap());
    // A healthy idle connection is pinged and kept.
    sleep(Duration::from_millis(12_510)).await;
    assert_eq!(pool.manager().pings(), 1);
    assert_eq!(pool.status().idle, 1);
    // Then the network black-holes it: the next ping never answers.
    pool.manager().set_default(Op::Ping, Step::Hang);
    sleep(Duration::from_secs(15)).await;
    let st = pool.status();
    assert_eq!(st.counters.closed.keepalive_failed, 1, "{st:?}");
    assert_eq!(st.counters.keepalives, 2);
    assert_eq!((st.open, st.idle), (0, 0));
    let cause = pool.last_error().unwrap().cause;
    assert_eq!(cause.class, ErrorClass::Timeout);
    assert!(cause.message.contains("keepalive"), "{cause}");
    // The caller gets a fresh connection without meeting the dead one.
    pool.manager().set_default(Op::Ping, Step::Ok);
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.id, 2);
    assert_eq!(pool.status().counters.validations, 0);
}

#[tokio::test(start_paused = true)]
async fn keepalive_does_not_ping_while_every_slot_is_taken() {
    let mut s = settings(1);
    s.keepalive = Some(Duration::from_secs(4));
    let pool = Pool::new(FakeManager::working(), s);
    let held = pool.get().await.unwrap();
    sleep(Duration::from_secs(20)).await;
    assert_eq!(pool.manager().pings(), 0);
    drop(held);
}

/// A subscriber writing formatted events into a buffer.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(start_paused = true)]
async fn a_held_connection_is_reported_once_with_where_it_was_checked_out() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut s = settings(2);
    s.leak_threshold = Some(Duration::from_secs(4));
    let pool = Pool::new(FakeManager::working(), s);
    let line = line!() + 1;
    let held = async { pool.get().await.unwrap() }
        .instrument(tracing::info_span!("handle_order"))
        .await;
    sleep(Duration::from_secs(3)).await;
    assert_eq!(pool.status().counters.leaks, 0, "not past the threshold");
    sleep(Duration::from_secs(3)).await;
    assert_eq!(pool.status().counters.leaks, 1);
    let text = logs.text();
    let at = format!("{}:{line}", file!());
    assert!(text.contains("possible leak"), "{text}");
    assert!(text.contains(&at), "no {at} in {text}");
    assert!(text.contains("span=\"handle_order\""), "{text}");
    assert!(text.contains("pool=upkeep"), "{text}");
    // Reported once, and not taken away.
    sleep(Duration::from_secs(20)).await;
    assert_eq!(pool.status().counters.leaks, 1);
    assert_eq!(pool.status().in_use, 1);
    drop(held);
    // A short checkout of the same connection is no leak.
    let again = pool.get().await.unwrap();
    sleep(Duration::from_secs(1)).await;
    drop(again);
    sleep(Duration::from_secs(10)).await;
    assert_eq!(pool.status().counters.leaks, 1);
}

#[tokio::test]
async fn the_leak_metric_counts() {
    use crate::metrics::recorder::TestRecorder;
    let rec = TestRecorder::default();
    let mut s = settings(1);
    s.name = "leaky".into();
    s.leak_threshold = Some(Duration::from_millis(40));
    let pool = metrics::with_local_recorder(&rec, || Pool::new(FakeManager::working(), s));
    let held = pool.get().await.unwrap();
    sleep(Duration::from_millis(150)).await;
    assert_eq!(rec.counter("db_pool_leaks_total{pool=leaky}"), 1);
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn warm_up_opens_connections_within_its_deadline() {
    let manager = FakeManager::working();
    manager.set_default(Op::Connect, Step::ok_after(Duration::from_millis(100)));
    let pool = Pool::new(manager, settings(4));
    let start = Instant::now();
    let open = pool.warm_up(None, Duration::from_secs(1)).await.unwrap();
    assert_eq!(open, 4);
    assert!(start.elapsed() <= Duration::from_millis(400));
    assert_eq!(pool.status().idle, 4);
    // Checkouts now connect nothing.
    burst(&pool, 4).await;
    assert_eq!(pool.manager().connects(), 4);

    // min_idle is the default target when set.
    let mut s = settings(4);
    s.min_idle = 2;
    let pool = Pool::new(FakeManager::working(), s);
    assert_eq!(pool.warm_up(None, Duration::from_secs(1)).await.unwrap(), 2);
    assert_eq!(
        pool.warm_up(Some(9), Duration::from_secs(1)).await.unwrap(),
        4
    );
}

#[tokio::test(start_paused = true)]
async fn warm_up_fails_at_its_deadline_when_the_server_is_down() {
    let pool = Pool::new(FakeManager::new(FakeMode::Refuse), settings(4));
    let start = Instant::now();
    let err = pool
        .warm_up(Some(2), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    let PoolError::Timeout { last_cause, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(last_cause.as_ref().unwrap().class, ErrorClass::Unavailable);
    assert!(pool.manager().connects() >= 2);
    assert!(!err.to_string().contains("hunter2"), "{err}");

    let pool = Pool::new(FakeManager::new(FakeMode::Fatal), settings(4));
    let err = pool
        .warm_up(None, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, PoolError::Fatal { .. }), "{err}");
    assert_eq!(pool.manager().connects(), 1);
}

#[tokio::test(start_paused = true)]
async fn pause_holds_checkouts_until_resume() {
    let mut s = settings(2);
    s.pool_timeout = Duration::from_secs(5);
    let pool = Pool::new(FakeManager::working(), s);
    drop(pool.get().await.unwrap());
    pool.pause();
    assert!(pool.status().paused);
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| c.id) }
    });
    sleep(Duration::from_secs(2)).await;
    assert!(!waiter.is_finished());
    assert_eq!(pool.status().waiting, 1);
    pool.resume();
    assert_eq!(waiter.await.unwrap().unwrap(), 1);
    assert_eq!(pool.status().waiting, 0);

    // A paused checkout still ends at its pool_timeout.
    pool.pause();
    let start = Instant::now();
    let err = pool.get().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    // Closing wakes paused checkouts with Closed.
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| c.id) }
    });
    sleep(MS).await;
    pool.close();
    assert!(matches!(
        waiter.await.unwrap().unwrap_err(),
        PoolError::Closed(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn close_and_the_last_drop_stop_the_housekeeper() {
    let base = alive_tasks();
    // Every feature off: no task at all.
    let pool = Pool::new(FakeManager::working(), settings(2));
    assert!(pool.status().housekeeper.is_none());
    sleep(MS).await;
    assert_eq!(alive_tasks(), base);
    drop(pool);

    let mut s = settings(2);
    s.min_idle = 1;
    let pool = Pool::new(FakeManager::working(), s.clone());
    sleep(MS).await;
    assert_eq!(alive_tasks(), base + 1);
    pool.close();
    sleep(MS).await;
    assert_eq!(alive_tasks(), base, "close leaves no task behind");
    assert_eq!(pool.manager().open_connections(), 0);

    let pool = Pool::new(FakeManager::working(), s);
    sleep(MS).await;
    assert_eq!(alive_tasks(), base + 1);
    let conn = pool.get().await.unwrap();
    drop(pool);
    sleep(MS).await;
    assert_eq!(
        alive_tasks(),
        base + 1,
        "a checked-out connection keeps the pool"
    );
    drop(conn);
    sleep(MS).await;
    assert_eq!(alive_tasks(), base, "the last handle dropped stops it");
}

#[test]
fn a_pool_built_outside_a_runtime_starts_its_housekeeper_at_the_first_checkout() {
    let mut s = settings(2);
    s.min_idle = 2;
    let pool = Pool::new(FakeManager::working(), s);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(pool.status().open, 0);
        drop(pool.get().await.unwrap());
        sleep(10 * MS).await;
        assert_eq!(pool.status().idle, 2);
    });
}
