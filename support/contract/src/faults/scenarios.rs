//! The fault scenarios, as data: which server, which fault, how long it
//! lasts, and what our pool must show.

use pool_core::redact::SecretUrl;
use pool_core::settings::Overflow;
use pool_core::{PoolSettings, RetryPolicy};
use std::time::Duration;

use super::driver::LoadShape;

/// Which server a scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// PostgreSQL (ours vs raw deadpool-postgres).
    Postgres,
    /// Redis (ours vs raw bb8-redis).
    Redis,
}

impl Db {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Db::Postgres => "postgres",
            Db::Redis => "redis",
        }
    }
}

/// A fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// PostgreSQL fast shutdown (SIGINT) and start on the same port.
    PgRestartFast,
    /// PostgreSQL immediate shutdown (SIGQUIT) and start (crash recovery).
    PgRestartImmediate,
    /// SIGKILL of the postmaster and every backend, then start (crash
    /// recovery). For Redis: SIGKILL and start.
    Kill9,
    /// `pg_terminate_backend` / `CLIENT KILL` of every pool connection
    /// after the load paused longer than the bypass window.
    KillSessionsIdle,
    /// The same under load.
    KillSessionsBusy,
    /// SIGSTOP of every server process for `hold`, then SIGCONT.
    Freeze,
    /// PostgreSQL `max_connections` reached: other sessions (`psql`
    /// children in `pg_sleep`) hold every free slot from the start; freed
    /// after `hold`.
    MaxConnections,
    /// A standby that answers every login with 57P03 from the start;
    /// promoted after `hold`.
    Standby57P03,
    /// Redis stop (SIGTERM) and start on the same port.
    RedisRestart,
    /// Redis `DEBUG SLEEP` for `hold`.
    DebugSleep,
    /// Redis restart with a dataset whose load takes about `hold`
    /// (`-LOADING` meanwhile).
    Loading,
    /// The fault proxy drops every byte both ways for `hold` (connections
    /// stay open: a cut cable).
    Blackhole,
    /// The fault proxy resets (RST) every open connection.
    ResetAll,
    /// The fault proxy resets every connection and refuses new ones for
    /// `hold`.
    Refuse,
    /// The fault proxy adds `Profile::latency` to every chunk, both ways,
    /// for `hold`.
    Latency,
}

impl Fault {
    /// Goes through the fault proxy.
    pub fn uses_proxy(self) -> bool {
        matches!(
            self,
            Fault::Blackhole | Fault::ResetAll | Fault::Refuse | Fault::Latency
        )
    }

    /// A one-shot kill whose exact moment is somewhere inside the call
    /// that makes it (see [`super::figures::classify`]).
    pub fn is_instant(self) -> bool {
        matches!(
            self,
            Fault::KillSessionsIdle | Fault::KillSessionsBusy | Fault::ResetAll
        )
    }

    /// In place from the start of the run (the pool starts cold against
    /// it).
    pub fn from_start(self) -> bool {
        matches!(self, Fault::MaxConnections | Fault::Standby57P03)
    }
}

/// What our pool must show in a scenario (beyond what holds for all: no
/// hung op, no unexpected checkout failure, no leak, no panic).
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    /// Most ops started after the fault that may get a dead connection
    /// (inside the bypass window nothing tells a live connection from a
    /// dead one without a round trip).
    pub handout_max: usize,
    /// Some checkout must time out during the outage (the fault outlasts
    /// `pool_timeout`).
    pub timeouts: bool,
    /// Text every checkout timeout during the outage must carry (the
    /// underlying cause).
    pub cause: Option<&'static str>,
    /// Whether the server's session count is checked against the pool's
    /// limit throughout the run, or only once the fault is over. A Redis
    /// server that is loading does not free the clients that closed
    /// meanwhile (the pool's abandoned connect attempts, the kit's readiness
    /// probes) until it has loaded, so its count then overstates what is
    /// open; the pool's own gauges and the end count are still checked.
    pub sessions_checked: SessionsChecked,
}

/// When the server's session count must stay within the pool's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionsChecked {
    /// In every sample of the run and at the end.
    Throughout,
    /// At the end only (see [`Expect::sessions_checked`]).
    AtTheEnd,
}

/// One scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Stable id (`pg-restart-fast`), used by tests and `--only`.
    pub id: &'static str,
    /// Row title in the report.
    pub title: &'static str,
    /// The server.
    pub db: Db,
    /// The fault.
    pub fault: Fault,
    /// How long the fault lasts (freeze, black hole...); zero for one-shot
    /// faults.
    pub hold: Duration,
    /// What our pool must show.
    pub expect: Expect,
}

impl Scenario {
    /// What was done, with the durations used.
    pub fn fault_as_run(&self, p: &Profile) -> String {
        let hold = format!("{:.1} s", self.hold.as_secs_f64());
        match self.fault {
            Fault::PgRestartFast => "pg_ctl-style fast stop + start".into(),
            Fault::PgRestartImmediate => "immediate stop + start (crash recovery)".into(),
            Fault::Kill9 => "SIGKILL of every server process + start".into(),
            Fault::KillSessionsIdle if self.db == Db::Postgres => {
                "pg_terminate_backend of all pool sessions, pool idle 0.7 s".into()
            }
            Fault::KillSessionsIdle => "CLIENT KILL of all pool connections, pool idle 0.7 s".into(),
            Fault::KillSessionsBusy if self.db == Db::Postgres => {
                "pg_terminate_backend of all pool sessions under load".into()
            }
            Fault::KillSessionsBusy => "CLIENT KILL of all pool connections under load".into(),
            Fault::Freeze => format!("SIGSTOP {hold}, SIGCONT"),
            Fault::MaxConnections => format!(
                "max_connections={} full (psql pg_sleep sessions) from the start, freed after {hold}",
                MAX_CONN_SERVER
            ),
            Fault::Standby57P03 => format!("standby answering 57P03 from the start, promoted after {hold}"),
            Fault::RedisRestart => "SIGTERM + start (empty dataset)".into(),
            Fault::DebugSleep => format!("DEBUG SLEEP {hold}"),
            Fault::Loading => format!(
                "restart with a {LOADING_KEYS}-key RDB, key-load-delay 100 us (-LOADING meanwhile)"
            ),
            Fault::Blackhole => format!("proxy drops all bytes {hold}"),
            Fault::ResetAll => "proxy RSTs every connection under load".into(),
            Fault::Refuse => format!("proxy RSTs every connection and refuses new ones {hold}"),
            Fault::Latency => format!(
                "proxy adds {} ms per chunk each way for {hold}",
                p.latency.as_millis()
            ),
        }
    }
}

/// `max_connections` of the server in [`Fault::MaxConnections`].
pub const MAX_CONN_SERVER: u32 = 12;
/// Keys in the dataset of [`Fault::Loading`].
pub const LOADING_KEYS: u32 = 20_000;

/// The knobs of a run: pool settings, load and timing.
#[derive(Debug, Clone)]
pub struct Profile {
    /// `pool_size` of our pool and max size of the raw ones.
    pub pool_size: u32,
    /// Concurrent load tasks.
    pub tasks: usize,
    /// Pause of each task between ops.
    pub think: Duration,
    /// `pool_timeout` (deadpool's wait timeout, bb8's connection timeout).
    pub pool_timeout: Duration,
    /// Our `connect_timeout`.
    pub connect_timeout: Duration,
    /// Our `validation_timeout`; also the caller's bound on a round trip.
    pub validation_timeout: Duration,
    /// Our backoff.
    pub retry: RetryPolicy,
    /// Added to `pool_timeout + validation_timeout` for the outer bound.
    pub slack: Duration,
    /// When the fault fires, from the start of the load.
    pub fire_at: Duration,
    /// How long the load goes on after the server is back.
    pub tail: Duration,
    /// How long freezes, black holes and `DEBUG SLEEP` last.
    pub freeze: Duration,
    /// Latency added by the proxy in [`Fault::Latency`].
    pub latency: Duration,
}

impl Profile {
    /// Short windows for CI: 3 s freezes.
    pub fn ci() -> Self {
        Profile {
            pool_size: 8,
            tasks: 16,
            think: Duration::from_millis(5),
            pool_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            validation_timeout: Duration::from_millis(500),
            retry: RetryPolicy {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(250),
            },
            slack: Duration::from_secs(1),
            fire_at: Duration::from_millis(800),
            tail: Duration::from_millis(1000),
            freeze: Duration::from_secs(3),
            latency: Duration::from_millis(100),
        }
    }

    /// The report's profile: 5 s freezes (override with `FAULT_FREEZE_SECS`).
    pub fn report() -> Self {
        let freeze = std::env::var("FAULT_FREEZE_SECS")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(Duration::from_secs(5), Duration::from_secs_f64);
        Profile {
            freeze,
            fire_at: Duration::from_secs(1),
            tail: Duration::from_secs(2),
            ..Profile::ci()
        }
    }

    /// The outer bound on one op: past it, the op is counted as hung.
    pub fn outer_timeout(&self) -> Duration {
        self.pool_timeout + self.validation_timeout + self.slack
    }

    /// How long after the server is back a checkout may take to notice:
    /// one backoff cap plus half a second of scheduling slack.
    pub fn grace(&self) -> Duration {
        self.retry.max + Duration::from_millis(500)
    }

    /// The load.
    pub fn shape(&self) -> LoadShape {
        LoadShape {
            tasks: self.tasks,
            think: self.think,
            query_timeout: self.validation_timeout,
            outer_timeout: self.outer_timeout(),
        }
    }

    /// Our pool's settings for `url`: `pool_size` connections, no
    /// overflow (the same limit as the raw pools), the profile's timeouts.
    pub fn settings(&self, url: &str) -> PoolSettings {
        let mut s = PoolSettings::new("faults");
        s.url = Some(SecretUrl::new(url));
        s.pool_size = self.pool_size;
        s.max_overflow = Overflow::Limited(0);
        s.pool_timeout = self.pool_timeout;
        s.connect_timeout = self.connect_timeout;
        s.validation_timeout = self.validation_timeout;
        s.retry = self.retry;
        s.slow_checkout = Duration::from_secs(60);
        s
    }

    /// Every scenario, with this profile's durations.
    pub fn scenarios(&self) -> Vec<Scenario> {
        all(self)
    }
}

/// Every scenario, with `p`'s durations: faults of the PostgreSQL server,
/// faults of the Redis server, then network faults (through the fault
/// proxy) on both.
pub fn all(p: &Profile) -> Vec<Scenario> {
    let mut all = postgres_server(p);
    all.extend(redis_server(p));
    all.extend(network(p));
    all
}

/// A scenario with no outage: ops go on, at most `handout_max` of those
/// started after the fault get a dead connection.
fn recovers(handout_max: usize) -> Expect {
    Expect {
        handout_max,
        timeouts: false,
        cause: None,
        sessions_checked: SessionsChecked::Throughout,
    }
}

/// A scenario whose outage outlasts `pool_timeout`: checkouts time out
/// (carrying `cause` when given), and any of the pool's connections may be
/// handed out dead.
fn outage(p: &Profile, cause: Option<&'static str>) -> Expect {
    Expect {
        handout_max: p.pool_size as usize,
        timeouts: true,
        cause,
        sessions_checked: SessionsChecked::Throughout,
    }
}

fn scenario(
    id: &'static str,
    title: &'static str,
    db: Db,
    fault: Fault,
    hold: Duration,
    expect: Expect,
) -> Scenario {
    Scenario {
        id,
        title,
        db,
        fault,
        hold,
        expect,
    }
}

/// Restarts, kills, freezes and refused logins of the PostgreSQL server.
fn postgres_server(p: &Profile) -> Vec<Scenario> {
    use Fault::*;
    let n = p.pool_size as usize;
    // Outlasts pool_timeout, so bounded timeouts are seen.
    let long = p.pool_timeout + Duration::from_secs(1);
    let zero = Duration::ZERO;
    let sc =
        |id, title, fault, hold, expect| scenario(id, title, Db::Postgres, fault, hold, expect);
    vec![
        sc(
            "pg-restart-fast",
            "restart (fast)",
            PgRestartFast,
            zero,
            recovers(n),
        ),
        sc(
            "pg-restart-immediate",
            "restart (immediate)",
            PgRestartImmediate,
            zero,
            recovers(n),
        ),
        sc("pg-kill9", "kill -9 + start", Kill9, zero, recovers(n)),
        sc(
            "pg-terminate-idle",
            "terminate sessions, idle",
            KillSessionsIdle,
            zero,
            recovers(0),
        ),
        sc(
            "pg-terminate-busy",
            "terminate sessions, busy",
            KillSessionsBusy,
            zero,
            recovers(n),
        ),
        sc(
            "pg-freeze",
            "freeze (SIGSTOP)",
            Freeze,
            p.freeze,
            outage(p, None),
        ),
        sc(
            "pg-max-connections",
            "max_connections (53300)",
            MaxConnections,
            long,
            outage(p, Some("too many clients")),
        ),
        sc(
            "pg-57p03",
            "standby (57P03)",
            Standby57P03,
            long,
            outage(p, Some("not accepting connections")),
        ),
    ]
}

/// Restarts, kills, freezes, `DEBUG SLEEP` and `-LOADING` of the Redis
/// server.
fn redis_server(p: &Profile) -> Vec<Scenario> {
    use Fault::*;
    let n = p.pool_size as usize;
    let zero = Duration::ZERO;
    let sc = |id, title, fault, hold, expect| scenario(id, title, Db::Redis, fault, hold, expect);
    vec![
        sc("redis-restart", "restart", RedisRestart, zero, recovers(n)),
        sc(
            "redis-client-kill-idle",
            "CLIENT KILL, idle",
            KillSessionsIdle,
            zero,
            recovers(0),
        ),
        sc(
            "redis-client-kill-busy",
            "CLIENT KILL, busy",
            KillSessionsBusy,
            zero,
            recovers(n),
        ),
        sc(
            "redis-debug-sleep",
            "DEBUG SLEEP",
            DebugSleep,
            p.freeze,
            outage(p, None),
        ),
        sc(
            "redis-freeze",
            "freeze (SIGSTOP)",
            Freeze,
            p.freeze,
            outage(p, None),
        ),
        sc(
            "redis-loading",
            "LOADING",
            Loading,
            zero,
            Expect {
                sessions_checked: SessionsChecked::AtTheEnd,
                ..recovers(n)
            },
        ),
    ]
}

/// The fault proxy's faults, each on PostgreSQL then on Redis.
fn network(p: &Profile) -> Vec<Scenario> {
    use Fault::*;
    let n = p.pool_size as usize;
    let short = Duration::from_millis(1500);
    // (ids on PostgreSQL and Redis, title, fault, hold, expectation)
    let faults = [
        (
            ["pg-blackhole", "redis-blackhole"],
            "network black hole",
            Blackhole,
            p.freeze,
            outage(p, None),
        ),
        (
            ["pg-reset", "redis-reset"],
            "network reset (RST all)",
            ResetAll,
            Duration::ZERO,
            recovers(n),
        ),
        (
            ["pg-refuse", "redis-refuse"],
            "network refuses new connections",
            Refuse,
            short,
            recovers(n),
        ),
        (
            ["pg-latency", "redis-latency"],
            "network latency",
            Latency,
            short,
            recovers(0),
        ),
    ];
    faults
        .into_iter()
        .flat_map(|(ids, title, fault, hold, expect)| {
            [Db::Postgres, Db::Redis]
                .into_iter()
                .zip(ids)
                .map(move |(db, id)| scenario(id, title, db, fault, hold, expect))
        })
        .collect()
}

/// The scenario with this id.
pub fn by_id(p: &Profile, id: &str) -> Scenario {
    all(p)
        .into_iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no fault scenario {id:?}"))
}
