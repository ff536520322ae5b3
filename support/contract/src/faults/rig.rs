//! Running one scenario against one pool: a fresh server (and proxy), the
//! load, the fault on its schedule, then the leak checks. Written once for
//! both backends (`FaultBackend`); the faults both servers share are
//! fired here, the others by the backend's own code.

use super::driver::{drive, Gate, Monitor, Target, Tasks};
use super::figures::{self, FaultTimes, Figures};
use super::scenarios::{Db, Fault, Profile, Scenario, SessionsChecked};
use super::servers::{blocking, kit, with, FaultBackend};
use super::settle;
use super::targets::Ours;
use crate::backend::{Postgres, Redis};
use pool_testkit::{FaultProxy, Mode};
use std::net::SocketAddr;
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

/// Runs `scenario` against `kind`'s pool with `p`'s settings.
pub async fn run(scenario: &Scenario, kind: PoolKind, p: &Profile) -> Figures {
    match scenario.db {
        Db::Postgres => run_on::<Postgres>(scenario, kind, p).await,
        Db::Redis => run_on::<Redis>(scenario, kind, p).await,
    }
}

async fn proxy_for(scenario: &Scenario, port: u16) -> Option<FaultProxy> {
    if !scenario.fault.uses_proxy() {
        return None;
    }
    let upstream = SocketAddr::from(([127, 0, 0, 1], port));
    Some(kit("fault proxy", FaultProxy::start(upstream).await))
}

/// `kind`'s pool on `B`, at `url`.
fn target<B: FaultBackend>(kind: PoolKind, url: &str, p: &Profile) -> Arc<dyn Target> {
    match kind {
        PoolKind::Ours => Arc::new(Ours::<B>::new(B::build(p.settings(url)))),
        PoolKind::OursCallerDrops => {
            Arc::new(Ours::<B>::dropping_on_timeout(B::build(p.settings(url))))
        }
        PoolKind::Raw => B::raw(url, p),
    }
}

async fn run_on<B: FaultBackend>(scenario: &Scenario, kind: PoolKind, p: &Profile) -> Figures {
    let server = {
        let scenario = scenario.clone();
        blocking(move || B::start_for(&scenario)).await
    };
    let port = B::port(&server);
    let proxy = proxy_for(scenario, port).await;
    let url = match &proxy {
        Some(px) => B::url_at(px.addr().port()),
        None => B::url(&server),
    };
    let target = target::<B>(kind, &url, p);
    let srv = Arc::new(Mutex::new(server));
    let mut monitor = B::monitor(port, kind);
    let mut notes = Vec::new();
    let prep = B::before_load(
        scenario,
        kind,
        &url,
        &srv,
        port,
        monitor.as_mut(),
        &mut notes,
    )
    .await;
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
                // The backend's own restart: a fast stop for PostgreSQL,
                // SIGTERM for Redis.
                Fault::PgRestartFast | Fault::RedisRestart => {
                    with(&srv, B::restart).await;
                    Some(Instant::now())
                }
                Fault::Kill9 => {
                    with(&srv, B::kill9_and_start).await;
                    Some(Instant::now())
                }
                Fault::KillSessionsIdle | Fault::KillSessionsBusy => {
                    let n = with(&srv, |s| B::kill_sessions(s)).await;
                    notes.push(format!("{n} {}", B::KILLED));
                    Some(Instant::now())
                }
                Fault::Freeze => {
                    with(&srv, |s| B::freeze(s)).await;
                    tokio::time::sleep(scenario.hold).await;
                    with(&srv, |s| B::thaw(s)).await;
                    Some(Instant::now())
                }
                f if f.uses_proxy() => network(&scenario, &p, proxy.expect("proxy")).await,
                _ => B::fault(&scenario, &srv, port, fire, prep, &mut notes).await,
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
        Some(monitor.as_mut()),
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
        monitor.as_mut(),
        &tasks,
    )
    .await;
    drop(proxy);
    blocking(move || drop(srv)).await;
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

// ------------------------------------------------------------- the end

/// Waits (a few seconds at most) for the pool to settle back to its
/// baseline and the server to drop closed sessions (see [`settle`]), then
/// computes the figures.
async fn finish(
    scenario: &Scenario,
    p: &Profile,
    target: &dyn Target,
    res: super::driver::DriveResult,
    times: FaultTimes,
    monitor: &mut dyn Monitor,
    tasks: &Tasks,
) -> Figures {
    let (end, settled) = settle::pool_baseline(target).await;
    let sessions_end = settle::server_sessions(monitor, target).await;
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
    if scenario.expect.sessions_checked == SessionsChecked::Throughout {
        assert!(
            f.sessions_max.is_none_or(|n| n <= f.max_size as usize),
            "more server sessions than the pool may open:\n{why}"
        );
    }
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
