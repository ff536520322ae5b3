//! DNS faults for the startup wait: a name that resolves only after a few
//! failed lookups (a compose service whose container starts late), and a
//! name that never resolves (a typo), for both backends' probes.

use super::scenarios::Db;
use pool_core::startup::{Resolve, ResolveFuture, WaitError, WaitOptions, DNS_HINT};
use pool_core::RetryPolicy;
use pool_postgres::PgProbe;
use pool_redis::RedisProbe;
use pool_testkit::{PgServer, RedisServer};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A resolver whose first `failures` lookups fail like an unknown name;
/// later ones resolve to `127.0.0.1`.
#[derive(Debug)]
pub struct FlakyResolver {
    failures: u32,
    calls: AtomicU32,
    resolved_at: Mutex<Option<Instant>>,
}

impl FlakyResolver {
    /// Fails `failures` times, then resolves.
    pub fn new(failures: u32) -> Self {
        FlakyResolver {
            failures,
            calls: AtomicU32::new(0),
            resolved_at: Mutex::new(None),
        }
    }

    /// Lookups so far.
    pub fn calls(&self) -> u32 {
        self.calls.load(SeqCst)
    }

    /// When the name first resolved.
    pub fn resolved_at(&self) -> Option<Instant> {
        *self.resolved_at.lock().unwrap()
    }
}

impl Resolve for FlakyResolver {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> ResolveFuture<'a> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, SeqCst);
            if n < self.failures {
                return Err(io::Error::other(format!(
                    "failed to lookup address information: Name or service not known \
                     ({host}, simulated lookup {} of {})",
                    n + 1,
                    self.failures
                )));
            }
            self.resolved_at
                .lock()
                .unwrap()
                .get_or_insert_with(Instant::now);
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        })
    }
}

/// What a startup wait (or a raw pool's first checkout) did with a DNS
/// fault.
#[derive(Debug, Clone)]
pub struct DnsFigures {
    /// Scenario id (`dns-late`, `dns-never`).
    pub id: &'static str,
    /// The backend.
    pub db: Db,
    /// `ours` (startup wait) or the raw pool.
    pub pool: &'static str,
    /// `ready`, `not ready`, `error`, `fatal`...
    pub outcome: String,
    /// Attempts made.
    pub attempts: Option<u32>,
    /// How long it took.
    pub waited: Duration,
    /// The name resolving → ready.
    pub after_resolve: Option<Duration>,
    /// The message or failure.
    pub detail: String,
}

impl DnsFigures {
    /// One line for logs.
    pub fn summary(&self) -> String {
        format!(
            "[{} / {} / {}] {} after {:?} ({:?} attempts, resolve->ready {:?}): {}",
            self.id,
            self.db.as_str(),
            self.pool,
            self.outcome,
            self.waited,
            self.attempts,
            self.after_resolve,
            self.detail
        )
    }
}

fn options(resolver: std::sync::Arc<dyn Resolve>, deadline: Duration) -> WaitOptions {
    WaitOptions {
        deadline: Some(deadline),
        retry: RetryPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(250),
        },
        attempt_timeout: Duration::from_secs(1),
        resolver,
        once: false,
    }
}

fn settings(url: &str) -> pool_core::PoolSettings {
    super::scenarios::Profile::ci().settings(url)
}

async fn wait(
    db: Db,
    url: &str,
    opts: &WaitOptions,
) -> Result<pool_core::startup::Ready, WaitError> {
    match db {
        Db::Postgres => PgProbe::new(&settings(url)).expect("url").wait(opts).await,
        Db::Redis => {
            RedisProbe::new(&settings(url))
                .expect("url")
                .wait(opts)
                .await
        }
    }
}

fn outcome(r: &Result<pool_core::startup::Ready, WaitError>) -> (String, Option<u32>, String) {
    match r {
        Ok(ready) => ("ready".into(), Some(ready.attempts), String::new()),
        Err(WaitError::NotReady { last, attempts, .. }) => {
            ("not ready".into(), Some(*attempts), last.to_string())
        }
        Err(WaitError::Fatal {
            failure, attempts, ..
        }) => ("fatal".into(), Some(*attempts), failure.to_string()),
    }
}

/// The startup wait against a live server whose name fails `failures`
/// lookups first. It must become ready, one backoff cap or so after the
/// name resolves.
pub async fn late(db: Db, failures: u32) -> DnsFigures {
    let (url, _keep): (String, Box<dyn std::any::Any + Send>) = match db {
        Db::Postgres => {
            let s = tokio::task::spawn_blocking(|| PgServer::start().expect("start PostgreSQL"))
                .await
                .unwrap();
            (s.url(), Box::new(s))
        }
        Db::Redis => {
            let s = tokio::task::spawn_blocking(|| RedisServer::start().expect("start Redis"))
                .await
                .unwrap();
            (s.url(), Box::new(s))
        }
    };
    let resolver = std::sync::Arc::new(FlakyResolver::new(failures));
    let opts = options(resolver.clone(), Duration::from_secs(10));
    let start = Instant::now();
    let r = wait(db, &url, &opts).await;
    let done = Instant::now();
    let (outcome, attempts, detail) = outcome(&r);
    let figures = DnsFigures {
        id: "dns-late",
        db,
        pool: "ours",
        outcome,
        attempts,
        waited: done - start,
        after_resolve: resolver.resolved_at().map(|t| done - t),
        detail: format!("{failures} failed lookups first; {detail}"),
    };
    tokio::task::spawn_blocking(move || drop(_keep))
        .await
        .unwrap();
    figures
}

/// A `.invalid` name through the system resolver: the wait keeps trying
/// until its deadline, then says the name does not resolve, with the
/// compose hint.
pub async fn never(db: Db, deadline: Duration) -> DnsFigures {
    let url = match db {
        Db::Postgres => "postgres://postgres@db.faults.invalid:5433/postgres",
        Db::Redis => "redis://cache.faults.invalid:6380/0",
    };
    let opts = options(
        std::sync::Arc::new(pool_core::startup::SystemResolver),
        deadline,
    );
    let start = Instant::now();
    let r = wait(db, url, &opts).await;
    let (outcome, attempts, detail) = outcome(&r);
    DnsFigures {
        id: "dns-never",
        db,
        pool: "ours",
        outcome,
        attempts,
        waited: start.elapsed(),
        after_resolve: None,
        detail,
    }
}

/// The raw pool's first checkout on a `.invalid` name (raw pools have no
/// startup wait, and no resolver hook for the late-name case).
pub async fn never_raw(db: Db, pool_timeout: Duration) -> DnsFigures {
    use super::driver::{OpResult, Target};
    let start = Instant::now();
    let target: Box<dyn Target> = match db {
        Db::Postgres => Box::new(super::targets::RawDeadpool::new(
            "postgres://postgres@db.faults.invalid:5433/postgres",
            8,
            pool_timeout,
        )),
        Db::Redis => Box::new(super::targets::RawBb8::new(
            "redis://cache.faults.invalid:6380/0",
            8,
            pool_timeout,
        )),
    };
    let outer = pool_timeout + Duration::from_secs(3);
    let r = tokio::time::timeout(outer, target.op(Duration::from_millis(500))).await;
    let (outcome, detail) = match r {
        Err(_) => ("hung".to_string(), format!("no answer within {outer:?}")),
        Ok(OpResult::CheckoutFailed(e)) => ("error".into(), e),
        Ok(OpResult::RoundTripFailed { error, .. }) => ("error".into(), error),
        Ok(OpResult::Ok { .. }) => ("ready?!".into(), String::new()),
    };
    DnsFigures {
        id: "dns-never",
        db,
        pool: target.name(),
        outcome,
        attempts: None,
        waited: start.elapsed(),
        after_resolve: None,
        detail,
    }
}

/// Checks of [`late`]'s figures.
pub fn assert_late(f: &DnsFigures, failures: u32) {
    let s = f.summary();
    assert_eq!(f.outcome, "ready", "{s}");
    assert_eq!(f.attempts, Some(failures + 1), "{s}");
    let r = f.after_resolve.expect("resolved");
    assert!(r < Duration::from_secs(2), "{s}");
    assert!(f.waited < Duration::from_secs(5), "{s}");
}

/// Checks of [`never`](fn@never)'s figures.
pub fn assert_never(f: &DnsFigures, deadline: Duration) {
    let s = f.summary();
    assert_eq!(f.outcome, "not ready", "{s}");
    assert!(f.attempts.is_some_and(|a| a >= 3), "kept trying: {s}");
    assert!(f.waited >= deadline, "{s}");
    assert!(f.waited < deadline + Duration::from_secs(2), "bounded: {s}");
    assert!(f.detail.starts_with("dns:"), "{s}");
    assert!(f.detail.contains(&DNS_HINT[..40]), "{s}");
}
