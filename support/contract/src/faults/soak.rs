//! The soak: both of our pools (PostgreSQL and Redis, each behind a fault
//! proxy) under load for `SOAK_SECONDS`, while faults fire on a schedule
//! (restart, killed sessions, a short freeze, a proxy reset). At the end:
//! memory flat, no task of ours left, every pool back to its baseline,
//! counters reconciled, the servers holding no more sessions than the
//! pools may open, and no op hung.

use super::driver::{bounded_sample, join_load, one_op, Monitor, Outcome, Target, Tasks};
use super::rig::PoolKind;
use super::scenarios::Profile;
use super::servers::{blocking, kit, with, FaultBackend};
use super::settle;
use super::targets::Ours;
use crate::backend::{Postgres, Redis};
use pool_core::PoolCounters;
use pool_testkit::FaultProxy;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

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

/// One of our pools in the soak: its server, the fault proxy in front,
/// the load's tally and the session monitor.
struct Soaked<B: FaultBackend> {
    server: Arc<Mutex<B::Server>>,
    proxy: FaultProxy,
    target: Arc<dyn Target>,
    monitor: Box<dyn Monitor>,
    tally: Arc<Tally>,
    sessions_max: Option<usize>,
}

impl<B: FaultBackend> Soaked<B> {
    /// Starts the server, a proxy in front and our pool through it.
    async fn start(p: &Profile) -> Self {
        let server = blocking(B::start).await;
        let port = B::port(&server);
        let proxy = kit(
            "proxy",
            FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], port))).await,
        );
        let pool = B::build(p.settings(&B::url_at(proxy.addr().port())));
        Soaked {
            server: Arc::new(Mutex::new(server)),
            proxy,
            target: Arc::new(Ours::<B>::new(pool)),
            monitor: B::monitor(port, PoolKind::Ours),
            tally: Arc::default(),
            sessions_max: None,
        }
    }

    /// The load tasks, until `stop`.
    fn load(&self, tasks: &Tasks, stop: &Arc<AtomicBool>, p: &Profile) -> Vec<JoinHandle<()>> {
        let shape = p.shape();
        (0..shape.tasks)
            .map(|_| {
                let (target, tally, stop, shape) = (
                    self.target.clone(),
                    self.tally.clone(),
                    stop.clone(),
                    shape.clone(),
                );
                tasks.spawn(async move {
                    while !stop.load(SeqCst) {
                        let op = one_op(target.as_ref(), &shape).await;
                        tally.ops.fetch_add(1, SeqCst);
                        match op.outcome {
                            Outcome::Ok => tally.ok.fetch_add(1, SeqCst),
                            Outcome::Hung => tally.hung.fetch_add(1, SeqCst),
                            _ => tally.errors.fetch_add(1, SeqCst),
                        };
                        tokio::time::sleep(shape.think).await;
                    }
                })
            })
            .collect()
    }

    /// Fires the backend's restart (0), session kill (1) or freeze (2);
    /// returns its name.
    async fn fault(&self, which: usize, freeze: Duration) -> &'static str {
        match which {
            0 => with(&self.server, B::restart).await,
            1 => {
                with(&self.server, |s| B::kill_sessions(s)).await;
            }
            _ => {
                with(&self.server, |s| B::freeze(s)).await;
                tokio::time::sleep(freeze).await;
                with(&self.server, |s| B::thaw(s)).await;
            }
        }
        B::SOAK_FAULTS[which]
    }

    /// One bounded sample of the server's sessions, kept if the most yet.
    async fn sample(&mut self) {
        if let Some(n) = bounded_sample(self.monitor.as_mut()).await {
            self.sessions_max = Some(self.sessions_max.map_or(n, |m| m.max(n)));
        }
    }

    /// The pool's figures, once it is back to its baseline (a few seconds
    /// at most).
    async fn figures(&mut self) -> PoolSoak {
        let target = self.target.as_ref();
        let (end, settled) = settle::pool_baseline(target).await;
        let sessions_end = settle::server_sessions(self.monitor.as_mut(), target).await;
        let counters = target.counters().expect("our pool");
        let reconciled = counters.checkouts == counters.returns + u64::from(end.in_use)
            && counters.created - counters.closed.total() == u64::from(end.open);
        let tally = &self.tally;
        PoolSoak {
            db: B::NAME,
            ops: tally.ops.load(SeqCst),
            ok: tally.ok.load(SeqCst),
            errors: tally.errors.load(SeqCst),
            hung: tally.hung.load(SeqCst),
            end: (end.open, end.in_use, end.waiting),
            settled,
            counters,
            reconciled,
            sessions_max: self.sessions_max,
            sessions_end,
        }
    }

    /// Stops the proxy, then the server (blocking, off the runtime).
    async fn stop(self) {
        drop(self.proxy);
        let server = self.server;
        blocking(move || drop(server)).await;
    }
}

/// Runs the soak.
pub async fn soak(cfg: &SoakConfig) -> SoakFigures {
    let p = &cfg.profile;
    let mut pg = Soaked::<Postgres>::start(p).await;
    let mut redis = Soaked::<Redis>::start(p).await;

    let tasks = Tasks::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = pg.load(&tasks, &stop, p);
    handles.extend(redis.load(&tasks, &stop, p));
    // Warm-up: every connection open, buffers grown.
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.monitor.sample().await;
    redis.monitor.sample().await;
    let rss_start_kib = rss_kib();
    let runtime_tasks_start = runtime_tasks() - tasks.live();

    let start = Instant::now();
    let mut faults = Vec::new();
    let mut next_fault = start + cfg.period;
    let mut i = 0usize;
    while start.elapsed() < cfg.duration {
        if Instant::now() >= next_fault {
            // PostgreSQL and Redis in turn: restart, session kill, freeze;
            // then a reset of every connection through both proxies.
            let name = match i % 7 {
                6 => {
                    pg.proxy.reset_all();
                    redis.proxy.reset_all();
                    "proxy reset"
                }
                k if k % 2 == 0 => pg.fault(k / 2, cfg.freeze).await,
                k => redis.fault(k / 2, cfg.freeze).await,
            };
            faults.push(name);
            i += 1;
            next_fault = Instant::now() + cfg.period;
        }
        pg.sample().await;
        redis.sample().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let duration = start.elapsed();
    stop.store(true, SeqCst);
    let (panics, stuck) = join_load(handles, p.outer_timeout() + Duration::from_secs(1)).await;

    let pools = vec![pg.figures().await, redis.figures().await];
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
    pg.stop().await;
    redis.stop().await;
    figures
}
