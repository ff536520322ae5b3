//! The soak: both of our pools (PostgreSQL and Redis, each behind a fault
//! proxy) under load for `SOAK_SECONDS`, while faults fire on a schedule
//! (restart, killed sessions, a short freeze, a proxy reset). At the end:
//! memory flat, no task of ours left, every pool back to its baseline,
//! counters reconciled, the servers holding no more sessions than the
//! pools may open, and no op hung.

use super::driver::{Monitor, OpResult, Target, Tasks};
use super::monitor::{PgSessions, RedisClients};
use super::rig::{with, OURS_PG_APP};
use super::scenarios::Profile;
use super::targets::Ours;
use crate::backend::{Backend, Postgres, Redis};
use pool_core::PoolCounters;
use pool_testkit::{FaultProxy, PgServer, RedisServer};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long and how hard.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Total load time (after a one-second warm-up).
    pub duration: Duration,
    /// Time between two faults.
    pub period: Duration,
    /// How long a freeze lasts.
    pub freeze: Duration,
    /// Pool and timeouts.
    pub profile: Profile,
}

impl SoakConfig {
    /// `SOAK_SECONDS` (default `default_secs`), a fault every second, 0.5 s
    /// freezes, the CI profile.
    pub fn from_env(default_secs: f64) -> Self {
        let secs = std::env::var("SOAK_SECONDS")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(default_secs);
        SoakConfig {
            duration: Duration::from_secs_f64(secs),
            period: Duration::from_millis(1000),
            freeze: Duration::from_millis(500),
            profile: Profile::ci(),
        }
    }
}

/// Op counts of one pool.
#[derive(Debug, Default)]
struct Tally {
    ops: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    hung: AtomicU64,
}

/// One pool's figures after the soak.
#[derive(Debug, Clone)]
pub struct PoolSoak {
    /// `postgres` or `redis`.
    pub db: &'static str,
    /// Ops run.
    pub ops: u64,
    /// Ops that worked.
    pub ok: u64,
    /// Ops that failed (bounded).
    pub errors: u64,
    /// Ops past the outer bound.
    pub hung: u64,
    /// Open / in use / waiting at the end.
    pub end: (u32, u32, u32),
    /// Back to the baseline (nothing in use or waiting, open ≤ pool size).
    pub settled: bool,
    /// The pool's counters at the end.
    pub counters: PoolCounters,
    /// `checkouts == returns + in_use` and `created - closed == open`.
    pub reconciled: bool,
    /// Most server sessions sampled.
    pub sessions_max: Option<usize>,
    /// Server sessions at the end.
    pub sessions_end: Option<usize>,
}

/// The soak's figures.
#[derive(Debug, Clone)]
pub struct SoakFigures {
    /// Load time.
    pub duration: Duration,
    /// Faults fired, by name, in order.
    pub faults: Vec<&'static str>,
    /// Per pool.
    pub pools: Vec<PoolSoak>,
    /// VmRSS after the warm-up, KiB.
    pub rss_start_kib: u64,
    /// VmRSS at the end, KiB.
    pub rss_end_kib: u64,
    /// Tasks the fault code spawned that are still alive.
    pub live_tasks: usize,
    /// Load tasks that did not stop.
    pub stuck: usize,
    /// Load tasks that panicked.
    pub panics: usize,
    /// Tokio's alive tasks after the warm-up, minus the load tasks.
    pub runtime_tasks_start: usize,
    /// Tokio's alive tasks at the end.
    pub runtime_tasks_end: usize,
}

impl SoakFigures {
    /// A readable summary.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "soak {:.0} s, {} faults ({}); VmRSS {} -> {} KiB; tasks of ours left {}, stuck {}, panics {}; \
             runtime tasks {} -> {}",
            self.duration.as_secs_f64(),
            self.faults.len(),
            self.faults.join(", "),
            self.rss_start_kib,
            self.rss_end_kib,
            self.live_tasks,
            self.stuck,
            self.panics,
            self.runtime_tasks_start,
            self.runtime_tasks_end,
        );
        for p in &self.pools {
            s.push_str(&format!(
                "\n  {}: ops {} ok {} errors {} hung {}; end open/in_use/waiting {:?} settled {}; reconciled {} \
                 (checkouts {} returns {} created {} closed {}); sessions max {:?} end {:?}",
                p.db,
                p.ops,
                p.ok,
                p.errors,
                p.hung,
                p.end,
                p.settled,
                p.reconciled,
                p.counters.checkouts,
                p.counters.returns,
                p.counters.created,
                p.counters.closed.total(),
                p.sessions_max,
                p.sessions_end
            ));
        }
        s
    }

    /// The soak's checks.
    pub fn assert_ok(&self) {
        let s = self.summary();
        assert_eq!((self.live_tasks, self.stuck, self.panics), (0, 0, 0), "{s}");
        // Allocator noise and lazily grown buffers: 32 MiB or 25 %.
        let slack = (self.rss_start_kib / 4).max(32 * 1024);
        assert!(
            self.rss_end_kib <= self.rss_start_kib + slack,
            "memory grew: {s}"
        );
        assert!(
            self.runtime_tasks_end <= self.runtime_tasks_start + 4,
            "runtime tasks grew: {s}"
        );
        for p in &self.pools {
            assert_eq!(p.hung, 0, "{s}");
            assert!(p.ok > 0, "{s}");
            assert!(p.settled, "{s}");
            assert!(p.reconciled, "{s}");
            assert!(p.sessions_end.is_some_and(|n| n <= 8), "{s}");
        }
        assert!(!self.faults.is_empty(), "{s}");
    }
}

/// VmRSS of this process, KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn runtime_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

fn load(
    tasks: &Tasks,
    target: Arc<dyn Target>,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    p: &Profile,
) -> Vec<tokio::task::JoinHandle<()>> {
    let shape = p.shape();
    (0..shape.tasks)
        .map(|_| {
            let (target, tally, stop, shape) =
                (target.clone(), tally.clone(), stop.clone(), shape.clone());
            tasks.spawn(async move {
                while !stop.load(SeqCst) {
                    let r =
                        tokio::time::timeout(shape.outer_timeout, target.op(shape.query_timeout))
                            .await;
                    tally.ops.fetch_add(1, SeqCst);
                    match r {
                        Ok(OpResult::Ok { .. }) => tally.ok.fetch_add(1, SeqCst),
                        Ok(_) => tally.errors.fetch_add(1, SeqCst),
                        Err(_) => tally.hung.fetch_add(1, SeqCst),
                    };
                    tokio::time::sleep(shape.think).await;
                }
            })
        })
        .collect()
}

fn kit<T>(what: &str, r: pool_testkit::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("test kit: {what}: {e}"))
}

/// Runs the soak.
pub async fn soak(cfg: &SoakConfig) -> SoakFigures {
    let p = &cfg.profile;
    let (pg, redis) = tokio::task::spawn_blocking(|| {
        (
            kit("start PostgreSQL", PgServer::start()),
            kit("start Redis", RedisServer::start()),
        )
    })
    .await
    .expect("start servers");
    let (pg_port, redis_port) = (pg.port(), redis.port());
    let pg_proxy = kit(
        "proxy",
        FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], pg_port))).await,
    );
    let redis_proxy = kit(
        "proxy",
        FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], redis_port))).await,
    );
    let pg_pool = Postgres::build(p.settings(&format!(
        "postgres://postgres@127.0.0.1:{}/postgres",
        pg_proxy.addr().port()
    )));
    let redis_pool = Redis::build(p.settings(&format!(
        "redis://127.0.0.1:{}/0",
        redis_proxy.addr().port()
    )));
    let pg_target: Arc<dyn Target> = Arc::new(Ours::<Postgres>::new(pg_pool.clone()));
    let redis_target: Arc<dyn Target> = Arc::new(Ours::<Redis>::new(redis_pool.clone()));
    let (pg, redis) = (Arc::new(Mutex::new(pg)), Arc::new(Mutex::new(redis)));
    let mut pg_mon = PgSessions::new(pg_port, OURS_PG_APP);
    let mut redis_mon = RedisClients::new(redis_port);

    let tasks = Tasks::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (pg_tally, redis_tally) = (Arc::new(Tally::default()), Arc::new(Tally::default()));
    let mut handles = load(&tasks, pg_target.clone(), pg_tally.clone(), stop.clone(), p);
    handles.extend(load(
        &tasks,
        redis_target.clone(),
        redis_tally.clone(),
        stop.clone(),
        p,
    ));
    // Warm-up: every connection open, buffers grown.
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg_mon.sample().await;
    redis_mon.sample().await;
    let rss_start_kib = rss_kib();
    let runtime_tasks_start = runtime_tasks() - tasks.live();

    let start = Instant::now();
    let mut faults = Vec::new();
    let mut sessions_max = (None::<usize>, None::<usize>);
    let mut next_fault = start + cfg.period;
    let mut i = 0usize;
    while start.elapsed() < cfg.duration {
        if Instant::now() >= next_fault {
            let name = match i % 7 {
                0 => {
                    with(&pg, |s| kit("restart", s.restart_fast())).await;
                    "pg restart"
                }
                1 => {
                    with(&redis, |s| kit("restart", s.restart())).await;
                    "redis restart"
                }
                2 => {
                    with(&pg, |s| kit("terminate", s.terminate_backends())).await;
                    "pg terminate"
                }
                3 => {
                    with(&redis, |s| kit("CLIENT KILL", s.client_kill_all())).await;
                    "redis client kill"
                }
                4 => {
                    with(&pg, |s| kit("freeze", s.freeze())).await;
                    tokio::time::sleep(cfg.freeze).await;
                    with(&pg, |s| kit("thaw", s.thaw())).await;
                    "pg freeze"
                }
                5 => {
                    with(&redis, |s| kit("freeze", s.freeze())).await;
                    tokio::time::sleep(cfg.freeze).await;
                    with(&redis, |s| kit("thaw", s.thaw())).await;
                    "redis freeze"
                }
                _ => {
                    pg_proxy.reset_all();
                    redis_proxy.reset_all();
                    "proxy reset"
                }
            };
            faults.push(name);
            i += 1;
            next_fault = Instant::now() + cfg.period;
        }
        let max = |m: Option<usize>, n: Option<usize>| match (m, n) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let a = tokio::time::timeout(Duration::from_secs(1), pg_mon.sample())
            .await
            .ok()
            .flatten();
        let b = tokio::time::timeout(Duration::from_secs(1), redis_mon.sample())
            .await
            .ok()
            .flatten();
        sessions_max = (max(sessions_max.0, a), max(sessions_max.1, b));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let duration = start.elapsed();
    stop.store(true, SeqCst);
    let (mut stuck, mut panics) = (0, 0);
    for h in handles {
        let abort = h.abort_handle();
        match tokio::time::timeout(p.outer_timeout() + Duration::from_secs(1), h).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.is_panic() => panics += 1,
            Ok(Err(_)) => {}
            Err(_) => {
                stuck += 1;
                abort.abort();
            }
        }
    }

    let mut pools = Vec::new();
    for (db, target, tally, mon, smax) in [
        (
            "postgres",
            &pg_target,
            &pg_tally,
            &mut pg_mon as &mut dyn Monitor,
            sessions_max.0,
        ),
        (
            "redis",
            &redis_target,
            &redis_tally,
            &mut redis_mon as &mut dyn Monitor,
            sessions_max.1,
        ),
    ] {
        let deadline = Instant::now() + Duration::from_secs(3);
        let (end, settled) = loop {
            let s = target.snapshot();
            let ok = s.in_use == 0 && s.waiting == 0 && s.open <= target.pool_size();
            if ok || Instant::now() >= deadline {
                break (s, ok);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut sessions_end = None;
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            if let Ok(Some(n)) = tokio::time::timeout(Duration::from_secs(1), mon.sample()).await {
                sessions_end = Some(n);
                if n <= target.pool_size() as usize {
                    break;
                }
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let counters = target.counters().expect("our pool");
        let reconciled = counters.checkouts == counters.returns + u64::from(end.in_use)
            && counters.created - counters.closed.total() == u64::from(end.open);
        pools.push(PoolSoak {
            db,
            ops: tally.ops.load(SeqCst),
            ok: tally.ok.load(SeqCst),
            errors: tally.errors.load(SeqCst),
            hung: tally.hung.load(SeqCst),
            end: (end.open, end.in_use, end.waiting),
            settled,
            counters,
            reconciled,
            sessions_max: smax,
            sessions_end,
        });
    }
    // Let dropped connections' driver tasks wind down before counting.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut runtime_tasks_end = runtime_tasks();
    while runtime_tasks_end > runtime_tasks_start && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        runtime_tasks_end = runtime_tasks();
    }
    let figures = SoakFigures {
        duration,
        faults,
        pools,
        rss_start_kib,
        rss_end_kib: rss_kib(),
        live_tasks: tasks.live(),
        stuck,
        panics,
        runtime_tasks_start,
        runtime_tasks_end,
    };
    drop((pg_proxy, redis_proxy));
    tokio::task::spawn_blocking(move || drop((pg, redis)))
        .await
        .expect("stop servers");
    figures
}
