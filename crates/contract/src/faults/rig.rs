//! Running one scenario against one pool: a fresh server (and proxy), the
//! load, the fault on its schedule, then the leak checks.

use super::driver::{drive, Gate, Monitor, Target, Tasks};
use super::figures::{self, FaultTimes, Figures};
use super::monitor::{PgSessions, RedisClients};
use super::scenarios::{Db, Fault, Profile, Scenario, LOADING_KEYS, MAX_CONN_SERVER};
use super::targets::{Ours, RawBb8, RawDeadpool, RAW_PG_APP};
use crate::backend::{Backend, Postgres, Redis};
use bb8_redis::redis;
use pool_testkit::{FaultProxy, LoginProbe, Mode, PgOptions, PgServer, RedisServer};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which pool to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// pool-postgres / pool-redis.
    Ours,
    /// deadpool-postgres / bb8-redis, as the issue configures them.
    Raw,
    /// Ours, with a caller that drops the connection when its own bound on
    /// a round trip runs out instead of marking it broken.
    OursCallerDrops,
}

/// `application_name` of our pool's sessions (pool named `faults`).
pub const OURS_PG_APP: &str = "pool-postgres/faults";
/// `application_name` of the `psql` sessions that fill `max_connections`.
const PSQL_APP: &str = "pool-testkit-psql";

fn kit<T>(what: &str, r: pool_testkit::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("test kit: {what}: {e}"))
}

/// Runs a blocking kit call on a server shared with the fault code.
pub(crate) async fn with<S: Send + 'static, T: Send + 'static>(
    srv: &Arc<Mutex<S>>,
    f: impl FnOnce(&mut S) -> T + Send + 'static,
) -> T {
    let srv = srv.clone();
    tokio::task::spawn_blocking(move || f(&mut srv.lock().unwrap_or_else(|e| e.into_inner())))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

async fn start<S: Send + 'static>(f: impl FnOnce() -> S + Send + 'static) -> S {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Runs `scenario` against `kind`'s pool with `p`'s settings.
pub async fn run(scenario: &Scenario, kind: PoolKind, p: &Profile) -> Figures {
    match scenario.db {
        Db::Postgres => run_pg(scenario, kind, p).await,
        Db::Redis => run_redis(scenario, kind, p).await,
    }
}

async fn proxy_for(scenario: &Scenario, port: u16) -> Option<FaultProxy> {
    if !scenario.fault.uses_proxy() {
        return None;
    }
    let upstream = SocketAddr::from(([127, 0, 0, 1], port));
    Some(kit("fault proxy", FaultProxy::start(upstream).await))
}

// ------------------------------------------------------------ PostgreSQL

/// `psql` sessions holding connection slots; killed on drop.
struct Sleepers(Vec<Child>);

impl Drop for Sleepers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Fills every free slot of the server with `psql` sessions in
/// `pg_sleep`, counting them through `admin` (connected before).
async fn fill_slots(srv: &Arc<Mutex<PgServer>>, admin: &mut PgSessions, n: usize) -> Sleepers {
    let children = with(srv, move |s| {
        (0..n)
            .map(|_| {
                s.psql_command(None)
                    .args(["-c", "select pg_sleep(120)"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn psql")
            })
            .collect::<Vec<_>>()
    })
    .await;
    let sleepers = Sleepers(children);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if admin.count_app(PSQL_APP).await == Some(n) {
            return sleepers;
        }
        assert!(
            Instant::now() < deadline,
            "psql sessions did not fill the slots"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Promotes a standby (what `pg_ctl promote` does: a `promote` file in
/// the data directory and SIGUSR1 to the postmaster), then waits until it
/// accepts logins.
fn promote(s: &mut PgServer) {
    let pid = s.pid().expect("standby runs");
    std::fs::write(s.data_dir().join("promote"), b"").expect("write the promote file");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .expect("signal the postmaster");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(s.probe_login(Duration::from_secs(1)), Ok(LoginProbe::Ready)) {
        assert!(Instant::now() < deadline, "the standby was not promoted");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The startup wait against a server that answers 57P03: it must keep
/// waiting (several attempts) and end at its deadline with 57P03 as the
/// last failure.
pub async fn startup_wait_on_57p03(url: &str, deadline: Duration) -> String {
    use pool_core::startup::{WaitError, WaitOptions};
    let probe = pool_postgres::PgProbe::new(&Profile::ci().settings(url)).expect("valid URL");
    let opts = WaitOptions {
        deadline: Some(deadline),
        retry: pool_core::RetryPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(250),
        },
        attempt_timeout: Duration::from_secs(1),
        ..WaitOptions::default()
    };
    match probe.wait(&opts).await {
        Err(WaitError::NotReady {
            last,
            attempts,
            waited_ms,
            ..
        }) => {
            assert!(attempts >= 3, "gave up after {attempts} attempt(s)");
            assert!(last.message.contains("57P03"), "{last}");
            format!(
                "startup wait: not ready after {attempts} attempts in {:.1} s, last: {}",
                waited_ms as f64 / 1000.0,
                last.message
            )
        }
        other => panic!("the startup wait must keep waiting on 57P03: {other:?}"),
    }
}

async fn run_pg(scenario: &Scenario, kind: PoolKind, p: &Profile) -> Figures {
    let opts = PgOptions {
        max_connections: if scenario.fault == Fault::MaxConnections {
            MAX_CONN_SERVER
        } else {
            100
        },
        standby_57p03: scenario.fault == Fault::Standby57P03,
        ..PgOptions::default()
    };
    let server = start(move || kit("start PostgreSQL", PgServer::start_with(opts))).await;
    let port = server.port();
    let proxy = proxy_for(scenario, port).await;
    let url = match &proxy {
        Some(px) => format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            px.addr().port()
        ),
        None => server.url(),
    };
    let (target, app): (Arc<dyn Target>, &str) = match kind {
        PoolKind::Ours => (
            Arc::new(Ours::<Postgres>::new(Postgres::build(p.settings(&url)))),
            OURS_PG_APP,
        ),
        PoolKind::OursCallerDrops => (
            Arc::new(Ours::<Postgres>::dropping_on_timeout(Postgres::build(
                p.settings(&url),
            ))),
            OURS_PG_APP,
        ),
        PoolKind::Raw => (
            Arc::new(RawDeadpool::new(&url, p.pool_size as usize, p.pool_timeout)),
            RAW_PG_APP,
        ),
    };
    let srv = Arc::new(Mutex::new(server));
    let mut monitor = PgSessions::new(port, app);
    let mut notes = Vec::new();
    let mut admin = PgSessions::new(port, PSQL_APP);
    let mut sleepers = None;
    match scenario.fault {
        Fault::MaxConnections => {
            // Monitor and admin take their slots first; psql takes the rest.
            monitor.sample().await;
            admin.count_app(PSQL_APP).await.expect("admin session");
            let n = MAX_CONN_SERVER as usize - 2;
            sleepers = Some(fill_slots(&srv, &mut admin, n).await);
            notes.push(format!(
                "{n} psql sessions + 2 monitor sessions fill max_connections={MAX_CONN_SERVER}"
            ));
        }
        Fault::Standby57P03 if kind != PoolKind::Raw => {
            notes.push(startup_wait_on_57p03(&url, Duration::from_secs(2)).await);
        }
        _ => {}
    }
    let gate = Arc::new(Gate::default());
    let tasks = Tasks::default();
    let ctl = {
        let (srv, gate) = (srv.clone(), gate.clone());
        let proxy = proxy.as_ref();
        let p = p.clone();
        let scenario = scenario.clone();
        // Before the load starts: a fault in place from the start has hit
        // every op.
        let created = Instant::now();
        async move {
            let fire_at = if scenario.fault.from_start() {
                created
            } else {
                Instant::now() + p.fire_at
            };
            if scenario.fault == Fault::KillSessionsIdle {
                tokio::time::sleep_until((fire_at - Duration::from_millis(700)).into()).await;
                gate.pause();
            }
            tokio::time::sleep_until(fire_at.into()).await;
            let fire = if scenario.fault.from_start() {
                created
            } else {
                Instant::now()
            };
            let mut notes = Vec::new();
            let back = match scenario.fault {
                Fault::PgRestartFast => {
                    with(&srv, |s| kit("restart fast", s.restart_fast())).await;
                    Some(Instant::now())
                }
                Fault::PgRestartImmediate => {
                    with(&srv, |s| kit("restart immediate", s.restart_immediate())).await;
                    Some(Instant::now())
                }
                Fault::Kill9 => {
                    with(&srv, |s| {
                        kit("kill -9", s.kill9());
                        kit("start again", s.start_again());
                    })
                    .await;
                    Some(Instant::now())
                }
                Fault::KillSessionsIdle | Fault::KillSessionsBusy => {
                    let n = with(&srv, |s| kit("terminate", s.terminate_backends())).await;
                    notes.push(format!("{n} sessions terminated"));
                    Some(Instant::now())
                }
                Fault::Freeze => {
                    with(&srv, |s| kit("freeze", s.freeze())).await;
                    tokio::time::sleep(scenario.hold).await;
                    with(&srv, |s| kit("thaw", s.thaw())).await;
                    Some(Instant::now())
                }
                Fault::MaxConnections => {
                    tokio::time::sleep(scenario.hold).await;
                    let killed = admin
                        .execute(&format!(
                            "select pg_terminate_backend(pid) from pg_stat_activity \
                             where application_name = '{PSQL_APP}'"
                        ))
                        .await;
                    drop(sleepers);
                    notes.push(format!("{} psql sessions ended", killed.unwrap_or(0)));
                    Some(Instant::now())
                }
                Fault::Standby57P03 => {
                    tokio::time::sleep(scenario.hold).await;
                    with(&srv, promote).await;
                    Some(Instant::now())
                }
                _ => network(&scenario, &p, proxy.expect("proxy")).await,
            };
            if let Some(b) = back {
                notes.push(format!(
                    "server back {} ms after the fault",
                    (b - fire).as_millis()
                ));
            }
            gate.resume();
            tokio::time::sleep(p.tail).await;
            FaultTimes { fire, back, notes }
        }
    };
    let (res, mut times) = drive(
        target.clone(),
        &p.shape(),
        gate,
        &tasks,
        Some(&mut monitor),
        ctl,
    )
    .await;
    times.notes.splice(0..0, notes);
    let fig = finish(
        scenario,
        p,
        target.as_ref(),
        res,
        times,
        &mut monitor,
        &tasks,
    )
    .await;
    drop(proxy);
    start(move || drop(srv)).await;
    fig
}

/// The proxy faults (both backends).
async fn network(scenario: &Scenario, p: &Profile, proxy: &FaultProxy) -> Option<Instant> {
    match scenario.fault {
        Fault::Blackhole => {
            proxy.set_mode(Mode::Blackhole);
            tokio::time::sleep(scenario.hold).await;
            proxy.set_mode(Mode::Pass);
        }
        Fault::ResetAll => {
            proxy.reset_all();
        }
        Fault::Refuse => {
            proxy.set_mode(Mode::Refuse);
            proxy.reset_all();
            tokio::time::sleep(scenario.hold).await;
            proxy.set_mode(Mode::Pass);
        }
        Fault::Latency => {
            proxy.set_mode(Mode::Latency(p.latency));
            tokio::time::sleep(scenario.hold).await;
            proxy.set_mode(Mode::Pass);
        }
        other => panic!("{other:?} is not a network fault"),
    }
    Some(Instant::now())
}

// ----------------------------------------------------------------- Redis

/// Prepares a dataset whose load takes a while: `LOADING_KEYS` keys saved
/// to the RDB file, with `key-load-delay` (µs per key) and frequent event
/// processing while loading, kept across restarts with `CONFIG REWRITE`.
fn prepare_loading(s: &RedisServer) {
    let keys = LOADING_KEYS.to_string();
    kit(
        "DEBUG POPULATE",
        s.cmd(&["DEBUG", "POPULATE", &keys, "key", "64"]),
    );
    kit(
        "key-load-delay",
        s.cmd(&["CONFIG", "SET", "key-load-delay", "100"]),
    );
    kit(
        "loading-process-events-interval-bytes",
        s.cmd(&[
            "CONFIG",
            "SET",
            "loading-process-events-interval-bytes",
            "1024",
        ]),
    );
    kit("CONFIG REWRITE", s.cmd(&["CONFIG", "REWRITE"]));
    kit("SAVE", s.cmd(&["SAVE"]));
}

/// Polls `PING` until `done` on one connection of its own (named
/// `fault-watch`, so the session monitor leaves it out), reconnecting
/// when the server restarts; returns when `-LOADING` was first and last
/// seen.
async fn watch_loading(port: u16, done: &AtomicBool) -> Option<(Instant, Instant)> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0")).ok()?;
    let mut seen: Option<(Instant, Instant)> = None;
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    while !done.load(SeqCst) {
        let attempt = async {
            if conn.is_none() {
                let mut c = client.get_multiplexed_async_connection().await?;
                redis::cmd("CLIENT")
                    .arg("SETNAME")
                    .arg(super::monitor::WATCH_NAME)
                    .query_async::<()>(&mut c)
                    .await?;
                conn = Some(c);
            }
            let c = conn.as_mut().expect("connected");
            redis::cmd("PING").query_async::<String>(c).await
        };
        match tokio::time::timeout(Duration::from_millis(500), attempt).await {
            Ok(Err(e)) if e.code() == Some("LOADING") => {
                let now = Instant::now();
                seen = Some(seen.map_or((now, now), |(first, _)| (first, now)));
            }
            Ok(Ok(_)) => {}
            _ => conn = None,
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    seen
}

async fn run_redis(scenario: &Scenario, kind: PoolKind, p: &Profile) -> Figures {
    let server = start(|| kit("start Redis", RedisServer::start())).await;
    let port = server.port();
    let proxy = proxy_for(scenario, port).await;
    let url = match &proxy {
        Some(px) => format!("redis://127.0.0.1:{}/0", px.addr().port()),
        None => server.url(),
    };
    if scenario.fault == Fault::Loading {
        let s = Arc::new(Mutex::new(server));
        with(&s, |s| prepare_loading(s)).await;
        let server = Arc::try_unwrap(s).expect("one owner").into_inner().unwrap();
        return run_redis_with(scenario, kind, p, server, proxy, url).await;
    }
    run_redis_with(scenario, kind, p, server, proxy, url).await
}

async fn run_redis_with(
    scenario: &Scenario,
    kind: PoolKind,
    p: &Profile,
    server: RedisServer,
    proxy: Option<FaultProxy>,
    url: String,
) -> Figures {
    let port = server.port();
    let target: Arc<dyn Target> = match kind {
        PoolKind::Ours => Arc::new(Ours::<Redis>::new(Redis::build(p.settings(&url)))),
        PoolKind::OursCallerDrops => Arc::new(Ours::<Redis>::dropping_on_timeout(Redis::build(
            p.settings(&url),
        ))),
        PoolKind::Raw => Arc::new(RawBb8::new(&url, p.pool_size, p.pool_timeout)),
    };
    let srv = Arc::new(Mutex::new(server));
    let mut monitor = RedisClients::new(port);
    let gate = Arc::new(Gate::default());
    let tasks = Tasks::default();
    let ctl = {
        let (srv, gate) = (srv.clone(), gate.clone());
        let proxy = proxy.as_ref();
        let p = p.clone();
        let scenario = scenario.clone();
        async move {
            let start = Instant::now();
            let fire_at = start + p.fire_at;
            if scenario.fault == Fault::KillSessionsIdle {
                tokio::time::sleep_until((fire_at - Duration::from_millis(700)).into()).await;
                gate.pause();
            }
            tokio::time::sleep_until(fire_at.into()).await;
            let fire = Instant::now();
            let mut notes = Vec::new();
            let back = match scenario.fault {
                Fault::RedisRestart => {
                    with(&srv, |s| kit("restart", s.restart())).await;
                    Some(Instant::now())
                }
                Fault::Kill9 => {
                    with(&srv, |s| {
                        kit("kill -9", s.kill9());
                        kit("start again", s.start_again());
                    })
                    .await;
                    Some(Instant::now())
                }
                Fault::KillSessionsIdle | Fault::KillSessionsBusy => {
                    let n = with(&srv, |s| kit("CLIENT KILL", s.client_kill_all())).await;
                    notes.push(format!("{n} clients killed"));
                    Some(Instant::now())
                }
                Fault::DebugSleep => {
                    let secs = scenario.hold.as_secs_f64();
                    with(&srv, move |s| kit("DEBUG SLEEP", s.debug_sleep(secs))).await;
                    tokio::time::sleep_until((fire + scenario.hold).into()).await;
                    Some(Instant::now())
                }
                Fault::Freeze => {
                    with(&srv, |s| kit("freeze", s.freeze())).await;
                    tokio::time::sleep(scenario.hold).await;
                    with(&srv, |s| kit("thaw", s.thaw())).await;
                    Some(Instant::now())
                }
                Fault::Loading => {
                    let done = AtomicBool::new(false);
                    let restart = async {
                        with(&srv, |s| kit("restart", s.restart())).await;
                        done.store(true, SeqCst);
                    };
                    let ((), seen) = tokio::join!(restart, watch_loading(port, &done));
                    match seen {
                        Some((first, last)) => notes.push(format!(
                            "-LOADING seen from {} ms to {} ms after the fault",
                            (first - fire).as_millis(),
                            (last - fire).as_millis()
                        )),
                        None => notes.push("-LOADING was never seen".into()),
                    }
                    Some(Instant::now())
                }
                _ => network(&scenario, &p, proxy.expect("proxy")).await,
            };
            if let Some(b) = back {
                notes.push(format!(
                    "server back {} ms after the fault",
                    (b - fire).as_millis()
                ));
            }
            gate.resume();
            tokio::time::sleep(p.tail).await;
            FaultTimes { fire, back, notes }
        }
    };
    let (res, times) = drive(
        target.clone(),
        &p.shape(),
        gate,
        &tasks,
        Some(&mut monitor),
        ctl,
    )
    .await;
    let fig = finish(
        scenario,
        p,
        target.as_ref(),
        res,
        times,
        &mut monitor,
        &tasks,
    )
    .await;
    drop(proxy);
    start(move || drop(srv)).await;
    fig
}

// ------------------------------------------------------------- the end

/// Waits (a few seconds at most) for the pool to settle back to its
/// baseline and the server to drop closed sessions, then computes the
/// figures.
async fn finish(
    scenario: &Scenario,
    p: &Profile,
    target: &dyn Target,
    res: super::driver::DriveResult,
    times: FaultTimes,
    monitor: &mut dyn Monitor,
    tasks: &Tasks,
) -> Figures {
    let deadline = Instant::now() + Duration::from_secs(3);
    let (end, settled) = loop {
        let s = target.snapshot();
        let ok = s.in_use == 0 && s.waiting == 0 && s.open <= target.pool_size();
        if ok || Instant::now() >= deadline {
            break (s, ok);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut sessions_end = None;
    loop {
        if let Ok(Some(n)) = tokio::time::timeout(Duration::from_secs(1), monitor.sample()).await {
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
    let counts = figures::classify(
        &res.ops,
        &times,
        scenario.fault.is_instant(),
        p.pool_timeout,
        p.grace(),
    );
    Figures {
        scenario: scenario.id,
        pool: target.name(),
        fault_as_run: scenario.fault_as_run(p),
        counts,
        recovery: figures::recovery(&res.ops, &times),
        healed: times.back.is_some(),
        outage: times.back.map(|b| b - times.fire),
        end,
        settled,
        max_size: target.max_size(),
        sessions_max: res.sessions_max,
        sessions_end,
        session_samples: res.session_samples,
        panics: res.panics,
        stuck: res.stuck,
        live_tasks: tasks.live(),
        counters: target.counters(),
        errors: figures::error_samples(&res.ops, 4),
        handout_last: figures::handout_last(&res.ops, &times, scenario.fault.is_instant()),
        notes: times.notes,
    }
}

/// The checks every scenario makes of our pool; panics with the figures:
/// [`assert_bounded`], plus at most `expect.handout_max` dead connections
/// handed out, the server's session count never above the pool's limit,
/// and the expected bounded timeouts with their cause.
pub fn assert_contract(scenario: &Scenario, p: &Profile, f: &Figures) {
    assert_bounded(scenario, p, f);
    let c = &f.counts;
    let why = f.summary();
    assert!(
        c.handout <= scenario.expect.handout_max,
        "{} dead connections handed out (at most {} allowed):\n{why}",
        c.handout,
        scenario.expect.handout_max
    );
    let max = f.max_size as usize + scenario.expect.session_slack;
    assert!(
        f.sessions_max.is_none_or(|n| n <= max),
        "more server sessions than the pool may open (+ {} slack):\n{why}",
        scenario.expect.session_slack
    );
    if scenario.expect.timeouts {
        assert!(
            c.outage > 0,
            "no checkout timed out during the outage:\n{why}"
        );
    }
    if let Some(cause) = scenario.expect.cause {
        assert!(
            f.errors
                .iter()
                .any(|(_, e)| e.contains("timed out") && e.contains(cause)),
            "no timeout names the cause {cause:?}:\n{why}"
        );
    }
}

/// What holds whatever the fault: no op hung, no panic or stuck task, no
/// checkout failed although the server was back in time, the server was
/// noticed within one backoff cap (plus slack), and afterwards the pool is
/// back to its baseline, the server has no more sessions than the pool's
/// limit, and the counters reconcile.
pub fn assert_bounded(_scenario: &Scenario, p: &Profile, f: &Figures) {
    let c = &f.counts;
    let why = f.summary();
    assert_eq!(c.hung, 0, "ops hung past the outer bound:\n{why}");
    assert_eq!(
        (f.panics, f.stuck, f.live_tasks),
        (0, 0, 0),
        "panics or stuck tasks:\n{why}"
    );
    assert_eq!(
        c.unexpected, 0,
        "checkouts failed although the server was back in time:\n{why}"
    );
    assert!(c.ok > 0, "nothing worked:\n{why}");
    assert!(
        f.settled,
        "the pool did not get back to its baseline:\n{why}"
    );
    let max = f.max_size as usize;
    assert!(
        f.sessions_end.is_some_and(|n| n <= max),
        "server sessions after the run:\n{why}"
    );
    assert!(
        f.session_samples > 0,
        "the session monitor never answered:\n{why}"
    );
    if f.healed {
        let limit = p.grace() + Duration::from_millis(500);
        let r = f
            .recovery
            .unwrap_or_else(|| panic!("no checkout worked after the server was back:\n{why}"));
        assert!(
            r <= limit,
            "took {r:?} (limit {limit:?}) to notice the server:\n{why}"
        );
    }
    if let Some(k) = &f.counters {
        assert_eq!(
            k.checkouts,
            k.returns + u64::from(f.end.in_use),
            "checkouts vs returns:\n{why}"
        );
        assert_eq!(
            k.created - k.closed.total(),
            u64::from(f.end.open),
            "created - closed vs open:\n{why}"
        );
    }
}
