//! A [`Backend`] as the fault code drives it: how its server starts for a
//! scenario, how its sessions are counted, which raw pool it is compared
//! with, and the faults only it has. The rig and the soak are written once
//! against [`FaultBackend`]; `pg_faults` and `redis_faults` implement it.
//!
//! Also the helpers for the kit's blocking calls, which must not run on a
//! runtime thread.

use super::driver::{Monitor, Target};
use super::rig::PoolKind;
use super::scenarios::{Profile, Scenario};
use crate::backend::Backend;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What the rig and the soak need of a backend beyond [`Backend`] (which
/// already has the pool, the round trip and the faults both servers
/// share: restart, kill -9, killed sessions, freeze).
pub(crate) trait FaultBackend: Backend {
    /// What [`FaultBackend::before_load`] hands on to
    /// [`FaultBackend::fault`] (PostgreSQL: the sessions that fill
    /// `max_connections`).
    type Prep: Send + Default;

    /// How the rig's note names what a session kill ended (`{n} ...`).
    const KILLED: &'static str;
    /// How the soak names its restart, session kill and freeze of this
    /// backend.
    const SOAK_FAULTS: [&'static str; 3];

    /// Starts a private server as `scenario` needs it (blocking).
    fn start_for(scenario: &Scenario) -> Self::Server;
    /// The server's own port (never the proxy's).
    fn port(server: &Self::Server) -> u16;
    /// The URL of a server (or of a proxy in front of one) on
    /// `127.0.0.1:port`.
    fn url_at(port: u16) -> String;
    /// The raw pool ours is compared with.
    fn raw(url: &str, p: &Profile) -> Arc<dyn Target>;
    /// Counts the server's sessions of `kind`'s pool, on a connection of
    /// its own straight to `port`.
    fn monitor(port: u16, kind: PoolKind) -> Box<dyn Monitor>;

    /// What `scenario` needs in place before the load starts (other
    /// sessions holding the server's slots, a run of the startup wait),
    /// with notes for the report; nothing by default.
    fn before_load(
        _scenario: &Scenario,
        _kind: PoolKind,
        _url: &str,
        _srv: &Arc<Mutex<Self::Server>>,
        _port: u16,
        _monitor: &mut dyn Monitor,
        _notes: &mut Vec<String>,
    ) -> impl Future<Output = Self::Prep> + Send {
        async { Self::Prep::default() }
    }

    /// Injects a fault only this backend has (fired at `fire`); returns
    /// when the server was back.
    fn fault(
        scenario: &Scenario,
        srv: &Arc<Mutex<Self::Server>>,
        port: u16,
        fire: Instant,
        prep: Self::Prep,
        notes: &mut Vec<String>,
    ) -> impl Future<Output = Option<Instant>> + Send;
}

/// Unwraps a kit call, naming it in the panic.
pub(crate) fn kit<T>(what: &str, r: pool_testkit::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("test kit: {what}: {e}"))
}

/// Runs a blocking kit call on a server shared with the fault code.
pub(crate) async fn with<S: Send + 'static, T: Send + 'static>(
    srv: &Arc<Mutex<S>>,
    f: impl FnOnce(&mut S) -> T + Send + 'static,
) -> T {
    let srv = srv.clone();
    blocking(move || f(&mut srv.lock().unwrap_or_else(|e| e.into_inner()))).await
}

/// Runs a blocking call (a server's start or stop) off the runtime's
/// threads; its panic is the caller's.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}
