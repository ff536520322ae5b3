//! The Redis side of the fault code (`FaultBackend` for [`Redis`]): a
//! server started for the scenario (with a dataset that loads slowly, for
//! `-LOADING`), and the faults only Redis has: `DEBUG SLEEP` and a restart
//! that loads that dataset, watched from a connection of its own.

use super::driver::{Monitor, Target};
use super::monitor::{RedisClients, WATCH_NAME};
use super::rig::PoolKind;
use super::scenarios::{Fault, Profile, Scenario, LOADING_KEYS};
use super::servers::{kit, with, FaultBackend};
use super::targets::RawBb8;
use crate::backend::{Backend, Redis};
use bb8_redis::redis;
use pool_testkit::RedisServer;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    let client = redis::Client::open(Redis::url_at(port)).ok()?;
    let mut seen: Option<(Instant, Instant)> = None;
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    while !done.load(SeqCst) {
        let attempt = async {
            if conn.is_none() {
                let mut c = client.get_multiplexed_async_connection().await?;
                redis::cmd("CLIENT")
                    .arg("SETNAME")
                    .arg(WATCH_NAME)
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

impl FaultBackend for Redis {
    type Prep = ();

    const KILLED: &'static str = "clients killed";
    const SOAK_FAULTS: [&'static str; 3] = ["redis restart", "redis client kill", "redis freeze"];

    fn start_for(scenario: &Scenario) -> RedisServer {
        let server = Redis::start();
        if scenario.fault == Fault::Loading {
            prepare_loading(&server);
        }
        server
    }

    fn port(server: &RedisServer) -> u16 {
        server.port()
    }

    fn url_at(port: u16) -> String {
        format!("redis://127.0.0.1:{port}/0")
    }

    fn raw(url: &str, p: &Profile) -> Arc<dyn Target> {
        Arc::new(RawBb8::new(url, p.pool_size, p.pool_timeout))
    }

    /// Every normal client but the fault code's own: whatever the pool,
    /// nothing else connects.
    fn monitor(port: u16, _kind: PoolKind) -> Box<dyn Monitor> {
        Box::new(RedisClients::new(port))
    }

    async fn fault(
        scenario: &Scenario,
        srv: &Arc<Mutex<RedisServer>>,
        port: u16,
        fire: Instant,
        _prep: (),
        notes: &mut Vec<String>,
    ) -> Option<Instant> {
        match scenario.fault {
            Fault::DebugSleep => {
                let secs = scenario.hold.as_secs_f64();
                with(srv, move |s| kit("DEBUG SLEEP", s.debug_sleep(secs))).await;
                tokio::time::sleep_until((fire + scenario.hold).into()).await;
            }
            Fault::Loading => {
                let done = AtomicBool::new(false);
                let restart = async {
                    with(srv, Redis::restart).await;
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
            }
            other => panic!("{other:?} is not a Redis fault"),
        }
        Some(Instant::now())
    }
}
