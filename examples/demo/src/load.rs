//! The load on one pool, and the restart of its private server.

use crate::Origin;
use pool_contract::Backend;
use pool_core::redact::SecretUrl;
use pool_core::tls::Sourced;
use pool_core::{Pool, PoolSettings, PoolStatus, SettingsError};
use pool_testkit::TestCerts;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Why the demo could not run.
#[derive(Debug)]
pub enum Failure {
    /// A bad setting (exit status 2).
    Settings(SettingsError),
    /// Anything else (exit status 1).
    Run(String),
}

impl From<SettingsError> for Failure {
    fn from(e: SettingsError) -> Self {
        Failure::Settings(e)
    }
}

/// A pool to load, and the server behind it.
pub struct Target<B: Backend> {
    /// Display name.
    pub name: &'static str,
    /// The pool under load.
    pub pool: Pool<B::M>,
    origin: Origin<B>,
    restart_at: Duration,
}

impl<B: Backend> Target<B> {
    /// Builds the pool from `settings`; without a URL, starts a private
    /// server first (with `certs`: TLS only, verified against their CA).
    /// The private server is restarted `restart_at` seconds into the run.
    pub fn prepare(
        name: &'static str,
        mut settings: PoolSettings,
        restart_at: u64,
        certs: Option<&TestCerts>,
    ) -> Result<Self, Failure> {
        let origin = match settings.url {
            Some(_) => Origin::External,
            None => {
                let server = std::panic::catch_unwind(|| match certs {
                    Some(c) => B::start_tls(c),
                    None => B::start(),
                })
                .map_err(|_| {
                    Failure::Run(format!("cannot start a private {name} server (see above)"))
                })?;
                let url = match certs {
                    Some(c) => {
                        settings.tls.root_cert = Some(Sourced::new(
                            c.ca().display().to_string(),
                            "DEMO_TLS (the private servers' CA)",
                        ));
                        B::tls_url(&server)
                    }
                    None => B::url(&server),
                };
                settings.url = Some(SecretUrl::new(url));
                Origin::Private {
                    server,
                    tls: certs.is_some(),
                }
            }
        };
        let pool = B::try_build(settings)?;
        Ok(Target {
            name,
            pool,
            origin,
            restart_at: Duration::from_secs(restart_at),
        })
    }

    /// Where the server comes from, for the banner.
    pub fn origin(&self) -> &'static str {
        match self.origin {
            Origin::External => "from the environment: not restarted",
            Origin::Private { tls: false, .. } => "private throwaway server: restarted mid-run",
            Origin::Private { tls: true, .. } => {
                "private throwaway server over TLS, verified (chain and host name): restarted mid-run"
            }
        }
    }
}

/// Operations and errors so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Successful checkouts with their round trip.
    pub ok: u64,
    /// Failed ones (checkout or round trip).
    pub errors: u64,
}

impl std::ops::Sub for &Totals {
    type Output = Totals;

    fn sub(self, rhs: &Totals) -> Totals {
        Totals {
            ok: self.ok - rhs.ok,
            errors: self.errors - rhs.errors,
        }
    }
}

// Restart progress, shown in the live table (0: nothing yet).
const RESTARTING: u8 = 1;
const RESTARTED: u8 = 2;

#[derive(Default)]
struct Shared {
    ok: AtomicU64,
    errors: AtomicU64,
    /// Operations that outlived `pool_timeout` plus slack.
    hung: AtomicU64,
    phase: AtomicU8,
    /// When the restarted server accepted connections again.
    back_at: Mutex<Option<Instant>>,
    /// First success after that.
    recovered_at: Mutex<Option<Instant>>,
    /// Distinct error messages, first few.
    samples: Mutex<Vec<String>>,
}

/// The restart task: how long the server was down, and the server.
type Restart<B> = JoinHandle<Result<(Duration, <B as Backend>::Server), String>>;

/// A running load.
pub struct Load<B: Backend> {
    name: &'static str,
    pool: Pool<B::M>,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    restart: Option<Restart<B>>,
}

/// What one pool went through.
#[derive(Debug)]
pub struct Summary {
    /// Display name.
    pub name: &'static str,
    /// Totals.
    pub totals: Totals,
    /// Operations that hung past their bound (must be 0).
    pub hung: u64,
    /// How long the server was down, if restarted.
    pub down_for: Option<Duration>,
    /// From the server being back to the first success.
    pub recovered_after: Option<Duration>,
    /// The first distinct errors callers saw.
    pub samples: Vec<String>,
    /// The pool at the end.
    pub status: PoolStatus,
    /// Tasks that panicked (must be 0).
    pub panicked: usize,
}

impl<B: Backend> Load<B> {
    /// Starts `tasks` tasks looping checkout + round trip until `until`,
    /// and the restart of a private server.
    pub fn start(target: Target<B>, tasks: usize, until: Instant) -> Self {
        let shared = Arc::new(Shared::default());
        let bound = target.pool.settings().pool_timeout + Duration::from_secs(5);
        let tasks = (0..tasks)
            .map(|_| {
                let (pool, shared) = (target.pool.clone(), shared.clone());
                tokio::spawn(async move {
                    while Instant::now() < until {
                        let op = async {
                            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                            B::round_trip(&mut conn).await
                        };
                        match tokio::time::timeout(bound, op).await {
                            Ok(Ok(())) => shared.succeeded(),
                            Ok(Err(e)) => shared.failed(e),
                            Err(_) => {
                                shared.hung.fetch_add(1, Relaxed);
                                shared.failed("operation hung".into());
                            }
                        }
                    }
                })
            })
            .collect();
        let restart = match target.origin {
            Origin::External => None,
            Origin::Private { server, .. } => {
                let shared = shared.clone();
                let at = tokio::time::Instant::now() + target.restart_at;
                Some(tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    shared.phase.store(RESTARTING, Relaxed);
                    let begun = Instant::now();
                    let (server, down_for) = tokio::task::spawn_blocking(move || {
                        let mut server = server;
                        B::restart(&mut server);
                        (server, begun.elapsed())
                    })
                    .await
                    .map_err(|e| format!("restart failed: {e}"))?;
                    *lock(&shared.back_at) = Some(Instant::now());
                    shared.phase.store(RESTARTED, Relaxed);
                    Ok((down_for, server))
                }))
            }
        };
        Load {
            name: target.name,
            pool: target.pool,
            shared,
            tasks,
            restart,
        }
    }

    /// Totals so far.
    pub fn totals(&self) -> Totals {
        Totals {
            ok: self.shared.ok.load(Relaxed),
            errors: self.shared.errors.load(Relaxed),
        }
    }

    /// The pool now.
    pub fn status(&self) -> PoolStatus {
        self.pool.status()
    }

    /// The restart phase, for the live table.
    pub fn event(&self) -> &'static str {
        match self.shared.phase.load(Relaxed) {
            RESTARTING => "restarting",
            RESTARTED if lock(&self.shared.recovered_at).is_none() => "back up, recovering",
            RESTARTED => "recovered",
            _ => "",
        }
    }

    /// Waits for the tasks and the restart; the private server is dropped
    /// (stopped and removed) here.
    pub async fn finish(self) -> Result<Summary, String> {
        let mut panicked = 0;
        for t in self.tasks {
            if t.await.is_err() {
                panicked += 1;
            }
        }
        let down_for = match self.restart {
            Some(handle) => {
                let (down_for, server) = handle.await.map_err(|e| e.to_string())??;
                drop(server);
                Some(down_for)
            }
            None => None,
        };
        let back = *lock(&self.shared.back_at);
        let recovered = *lock(&self.shared.recovered_at);
        Ok(Summary {
            name: self.name,
            totals: Totals {
                ok: self.shared.ok.load(Relaxed),
                errors: self.shared.errors.load(Relaxed),
            },
            hung: self.shared.hung.load(Relaxed),
            down_for,
            recovered_after: back
                .zip(recovered)
                .map(|(b, r)| r.saturating_duration_since(b)),
            samples: lock(&self.shared.samples).clone(),
            status: self.pool.status(),
            panicked,
        })
    }
}

impl Shared {
    fn succeeded(&self) {
        self.ok.fetch_add(1, Relaxed);
        if self.phase.load(Relaxed) == RESTARTED {
            let mut recovered = lock(&self.recovered_at);
            if recovered.is_none() {
                *recovered = Some(Instant::now());
            }
        }
    }

    fn failed(&self, message: String) {
        self.errors.fetch_add(1, Relaxed);
        let mut samples = lock(&self.samples);
        if samples.len() < 3 && !samples.contains(&message) {
            samples.push(message);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
