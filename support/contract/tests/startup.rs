//! The startup waits of both backends against real servers: late servers,
//! servers that are up but not ready, fatal errors, names that never resolve.

use pool_contract::scenarios::settings;
use pool_core::startup::{Stage, WaitError, WaitOptions};
use pool_core::{ErrorClass, RetryPolicy};
use pool_postgres::PgProbe;
use pool_redis::RedisProbe;
use pool_testkit::{PgOptions, PgServer, RedisOptions, RedisServer};
use std::time::{Duration, Instant};

fn opts(deadline_ms: u64) -> WaitOptions {
    WaitOptions {
        deadline: Some(Duration::from_millis(deadline_ms)),
        retry: RetryPolicy {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        },
        attempt_timeout: Duration::from_secs(1),
        ..WaitOptions::default()
    }
}

fn pg_probe(url: &str) -> PgProbe {
    PgProbe::new(&settings(url, 1, 0)).unwrap()
}

fn redis_probe(url: &str) -> RedisProbe {
    RedisProbe::new(&settings(url, 1, 0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_that_starts_late_is_waited_for() {
    let mut pg = PgServer::start().unwrap();
    pg.stop_fast().unwrap();
    let probe = pg_probe(&pg.url());
    let wait = tokio::spawn(async move { probe.wait(&opts(20_000)).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let pg = tokio::task::spawn_blocking(move || {
        pg.start_again().unwrap();
        pg
    })
    .await
    .unwrap();
    let back = Instant::now();
    let ready = wait.await.unwrap().unwrap();
    assert!(ready.attempts > 1, "{ready:?}");
    assert!(
        back.elapsed() < Duration::from_secs(1),
        "noticed late: {:?}",
        back.elapsed()
    );
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_in_57p03_is_not_ready() {
    let pg = PgServer::start_with(PgOptions {
        standby_57p03: true,
        ..PgOptions::default()
    })
    .unwrap();
    let err = pg_probe(&pg.url()).wait(&opts(800)).await.unwrap_err();
    let WaitError::NotReady { last, attempts, .. } = &err else {
        panic!("57P03 must be waited on: {err}");
    };
    assert!(*attempts > 1);
    assert_eq!(last.class, ErrorClass::Unavailable);
    assert!(last.message.contains("57P03"), "{last}");
    assert!(
        last.hint
            .as_deref()
            .unwrap_or("")
            .contains("not accepting connections"),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_and_unknown_databases_are_fatal_at_once() {
    let pg = PgServer::start_with(PgOptions {
        password: Some("right-pw".into()),
        ..PgOptions::default()
    })
    .unwrap();
    let start = Instant::now();
    let err = pg_probe(&pg.url_with_password("wr0ng-pw"))
        .wait(&opts(10_000))
        .await
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2));
    let WaitError::Fatal {
        failure, attempts, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((failure.stage, *attempts), (Stage::Auth, 1));
    assert!(failure.message.contains("28P01"), "{failure}");
    assert!(!format!("{err} {err:?}").contains("wr0ng-pw"));

    let unknown_db = format!("{}/no_such_db", pg.url().strip_suffix("/postgres").unwrap());
    let err = pg_probe(&unknown_db).wait(&opts(10_000)).await.unwrap_err();
    let WaitError::Fatal { failure, .. } = &err else {
        panic!("{err}")
    };
    assert!(failure.message.contains("3D000"), "{failure}");

    let redis = RedisServer::start_with(RedisOptions {
        password: Some("right-pw".into()),
        ..RedisOptions::default()
    })
    .unwrap();
    for url in [
        redis.url_with_password("wr0ng-pw"),
        redis.url().replace(":right-pw@", "@"),
    ] {
        let start = Instant::now();
        let err = redis_probe(&url).wait(&opts(10_000)).await.unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(2));
        let WaitError::Fatal { failure, .. } = &err else {
            panic!("{url}: {err}")
        };
        assert_eq!(failure.stage, Stage::Auth, "{failure}");
        assert!(!format!("{err} {err:?}").contains("wr0ng-pw"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_replica_without_its_master_is_not_ready() {
    let redis = RedisServer::start_with(RedisOptions {
        replica_of_unreachable_master: true,
        ..RedisOptions::default()
    })
    .unwrap();
    let err = redis_probe(&redis.url())
        .wait(&opts(800))
        .await
        .unwrap_err();
    let WaitError::NotReady { last, .. } = &err else {
        panic!("MASTERDOWN must be waited on: {err}")
    };
    assert_eq!(last.class, ErrorClass::Unavailable);
    assert!(last.message.contains("MASTERDOWN"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_that_starts_late_is_waited_for() {
    let mut redis = RedisServer::start().unwrap();
    redis.stop().unwrap();
    let probe = redis_probe(&redis.url());
    let wait = tokio::spawn(async move { probe.wait(&opts(20_000)).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.start_again().unwrap();
    let ready = wait.await.unwrap().unwrap();
    assert!(ready.attempts > 1, "{ready:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_never_resolves_is_diagnosed() {
    let err = pg_probe("postgres://app:pw@postgres-db.invalid:5432/app")
        .wait(&opts(600))
        .await
        .unwrap_err();
    let WaitError::NotReady { last, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(last.stage, Stage::Dns);
    assert!(last.message.contains("does not resolve"), "{last}");
    assert!(
        last.hint.as_deref().unwrap_or("").contains("same network"),
        "{last}"
    );
}
