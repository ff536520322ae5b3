//! The PostgreSQL side of the fault code (`FaultBackend` for
//! [`Postgres`]): a server started for the scenario (few slots, or a
//! standby), `psql` sessions that fill `max_connections` before the load,
//! and the faults only PostgreSQL has: an immediate restart, the slots
//! freed, a standby promoted.

use super::driver::{Monitor, Target};
use super::monitor::PgSessions;
use super::rig::PoolKind;
use super::scenarios::{Fault, Profile, Scenario, MAX_CONN_SERVER};
use super::servers::{kit, with, FaultBackend};
use super::targets::{RawDeadpool, RAW_PG_APP};
use crate::backend::Postgres;
use pool_testkit::{LoginProbe, PgOptions, PgServer};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `application_name` of our pool's sessions (pool named `faults`).
pub const OURS_PG_APP: &str = "pool-postgres/faults";
/// `application_name` of the `psql` sessions that fill `max_connections`.
const PSQL_APP: &str = "pool-testkit-psql";

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

/// The server's slots held by `psql` sessions, and the session that
/// counted them (and ends them).
pub(crate) struct FullSlots {
    admin: PgSessions,
    sleepers: Sleepers,
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

impl FaultBackend for Postgres {
    /// Set when the scenario fills `max_connections`.
    type Prep = Option<FullSlots>;

    const KILLED: &'static str = "sessions terminated";
    const SOAK_FAULTS: [&'static str; 3] = ["pg restart", "pg terminate", "pg freeze"];

    fn start_for(scenario: &Scenario) -> PgServer {
        let opts = PgOptions {
            max_connections: if scenario.fault == Fault::MaxConnections {
                MAX_CONN_SERVER
            } else {
                100
            },
            standby_57p03: scenario.fault == Fault::Standby57P03,
            ..PgOptions::default()
        };
        kit("start PostgreSQL", PgServer::start_with(opts))
    }

    fn port(server: &PgServer) -> u16 {
        server.port()
    }

    fn url_at(port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    }

    fn raw(url: &str, p: &Profile) -> Arc<dyn Target> {
        Arc::new(RawDeadpool::new(url, p.pool_size as usize, p.pool_timeout))
    }

    fn monitor(port: u16, kind: PoolKind) -> Box<dyn Monitor> {
        let app = match kind {
            PoolKind::Ours | PoolKind::OursCallerDrops => OURS_PG_APP,
            PoolKind::Raw => RAW_PG_APP,
        };
        Box::new(PgSessions::new(port, app))
    }

    async fn before_load(
        scenario: &Scenario,
        kind: PoolKind,
        url: &str,
        srv: &Arc<Mutex<PgServer>>,
        port: u16,
        monitor: &mut dyn Monitor,
        notes: &mut Vec<String>,
    ) -> Option<FullSlots> {
        match scenario.fault {
            Fault::MaxConnections => {
                // Monitor and admin take their slots first; psql takes the rest.
                let mut admin = PgSessions::new(port, PSQL_APP);
                monitor.sample().await;
                admin.count_app(PSQL_APP).await.expect("admin session");
                let n = MAX_CONN_SERVER as usize - 2;
                let sleepers = fill_slots(srv, &mut admin, n).await;
                notes.push(format!(
                    "{n} psql sessions + 2 monitor sessions fill max_connections={MAX_CONN_SERVER}"
                ));
                Some(FullSlots { admin, sleepers })
            }
            Fault::Standby57P03 if kind != PoolKind::Raw => {
                notes.push(startup_wait_on_57p03(url, Duration::from_secs(2)).await);
                None
            }
            _ => None,
        }
    }

    async fn fault(
        scenario: &Scenario,
        srv: &Arc<Mutex<PgServer>>,
        _port: u16,
        _fire: Instant,
        prep: Option<FullSlots>,
        notes: &mut Vec<String>,
    ) -> Option<Instant> {
        match scenario.fault {
            Fault::PgRestartImmediate => {
                with(srv, |s| kit("restart immediate", s.restart_immediate())).await;
            }
            Fault::MaxConnections => {
                let FullSlots {
                    mut admin,
                    sleepers,
                } = prep.expect("the slots were filled before the load");
                tokio::time::sleep(scenario.hold).await;
                let killed = admin
                    .execute(&format!(
                        "select pg_terminate_backend(pid) from pg_stat_activity \
                         where application_name = '{PSQL_APP}'"
                    ))
                    .await;
                drop(sleepers);
                notes.push(format!("{} psql sessions ended", killed.unwrap_or(0)));
            }
            Fault::Standby57P03 => {
                tokio::time::sleep(scenario.hold).await;
                with(srv, promote).await;
            }
            other => panic!("{other:?} is not a PostgreSQL fault"),
        }
        Some(Instant::now())
    }
}
