//! Waiting until a server is really ready.
//!
//! A backend that starts before its database must not crash, and must not
//! start serving before the database answers. [`wait_ready`] checks, in order
//! and on every attempt:
//!
//! 1. **DNS**: the host name resolves (in a compose network a name that does
//!    not resolve is usually a typo or a service on another network);
//! 2. **TCP**: the port accepts a connection;
//! 3. **protocol**: the backend's [`Probe::check`] (an authenticated
//!    `SELECT 1`, or `AUTH` + `PING`).
//!
//! Failures are classified once, by the backend: fatal ones (wrong password,
//! unknown database) end the wait at once; transient ones (no such name yet,
//! refused, `57P03`, `-LOADING`, timeouts) are retried with the shared
//! [`RetryPolicy`] until the deadline. Every failed attempt is logged to
//! `tracing` with its stage and a diagnosis.

use crate::backoff::RetryPolicy;
use crate::classify::ErrorClass;
use serde::Serialize;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The layer at which an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Name resolution.
    Dns,
    /// TCP connect.
    Tcp,
    /// The TLS handshake (certificates, client authentication).
    Tls,
    /// The server's protocol: handshake, startup, readiness.
    Protocol,
    /// Authentication.
    Auth,
    /// The readiness query or command.
    Query,
}

impl Stage {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dns => "dns",
            Stage::Tcp => "tcp",
            Stage::Tls => "tls",
            Stage::Protocol => "protocol",
            Stage::Auth => "auth",
            Stage::Query => "query",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one readiness attempt failed, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// Where it failed.
    pub stage: Stage,
    /// What it means (fatal or worth waiting for).
    pub class: ErrorClass,
    /// What happened (redacted).
    pub message: String,
    /// What usually causes it, and what to check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Failure {
    /// A failure without a hint.
    pub fn new(stage: Stage, class: ErrorClass, message: impl Into<String>) -> Self {
        Failure {
            stage,
            class,
            message: crate::redact::redact_url(&message.into()),
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.stage, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// A host and port to resolve and connect to before the protocol check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP literal.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// A future returned by a [`Resolve`] implementation.
pub type ResolveFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>>;

/// Name resolution, replaceable so tests can simulate a name that appears
/// late (as a compose service does) or never.
pub trait Resolve: Send + Sync + fmt::Debug {
    /// Resolves `host:port` to addresses.
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> ResolveFuture<'a>;
}

/// The system resolver (`getaddrinfo` through tokio).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> ResolveFuture<'a> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// A backend's readiness check.
pub trait Probe: Send + Sync {
    /// The target, redacted, for messages.
    fn target(&self) -> String;

    /// TCP endpoints to check before the protocol (empty for Unix sockets).
    fn endpoints(&self) -> Vec<Endpoint>;

    /// One protocol-level readiness check.
    fn check(&self) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// How long and how to wait.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// Overall deadline; `None` waits forever.
    pub deadline: Option<Duration>,
    /// Backoff between attempts.
    pub retry: RetryPolicy,
    /// Bound on each stage of one attempt.
    pub attempt_timeout: Duration,
    /// Name resolution.
    pub resolver: Arc<dyn Resolve>,
    /// Make a single attempt (compose healthchecks).
    pub once: bool,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            deadline: Some(Duration::from_secs(60)),
            retry: RetryPolicy::default(),
            attempt_timeout: Duration::from_secs(5),
            resolver: Arc::new(SystemResolver),
            once: false,
        }
    }
}

/// The target answered.
#[derive(Debug, Clone, Serialize)]
pub struct Ready {
    /// Attempts made, the successful one included.
    pub attempts: u32,
    /// Time from the start of the wait.
    pub waited_ms: u64,
}

/// The wait ended without the target becoming ready.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WaitError {
    /// An error waiting cannot fix.
    #[error("{target}: fatal error, not retrying: {failure}")]
    Fatal {
        /// The target, redacted.
        target: String,
        /// What failed.
        failure: Failure,
        /// Attempts made.
        attempts: u32,
    },
    /// The deadline passed (or the single attempt of `once` failed).
    #[error("{target}: not ready after {attempts} attempt(s) in {:.1}s; last error: {last}", *.waited_ms as f64 / 1000.0)]
    NotReady {
        /// The target, redacted.
        target: String,
        /// The last failure.
        last: Failure,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        waited_ms: u64,
    },
}

/// The hint for a name that does not resolve.
pub const DNS_HINT: &str = "the name does not resolve. In docker-compose or Kubernetes this usually means \
the service name is misspelled, the service is not on the same network as this container, \
or its container has not started yet (Docker's resolver at 127.0.0.11 only knows running containers)";

/// One DNS + TCP + protocol attempt; `limit` bounds the whole attempt (the
/// stages share it), so an attempt never runs past the wait's deadline.
/// With several endpoints (a multi-host URL), the first one that accepts
/// TCP lets the attempt go on; if none does, the first host's failure is
/// reported.
pub async fn attempt<P: Probe>(
    probe: &P,
    resolver: &dyn Resolve,
    limit: Duration,
) -> Result<(), Failure> {
    let deadline = Instant::now() + limit;
    // Several hosts are tried in order, as the drivers do: one that
    // resolves and accepts TCP is enough to go on to the protocol check.
    let mut failure = None;
    for ep in probe.endpoints() {
        match check_endpoint(&ep, resolver, left(deadline)).await {
            Ok(_) => {
                failure = None;
                break;
            }
            Err(f) => failure = failure.or(Some(f)),
        }
    }
    if let Some(f) = failure {
        return Err(f);
    }
    match tokio::time::timeout(left(deadline), probe.check()).await {
        Ok(result) => result,
        Err(_) => Err(Failure::new(
            Stage::Protocol,
            ErrorClass::Timeout,
            format!(
                "no answer within {:.1}s (server frozen, overloaded, or a network that drops packets)",
                limit.as_secs_f64()
            ),
        )),
    }
}

/// Time left before `deadline`.
fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Resolves and connects to one endpoint.
pub async fn check_endpoint(
    ep: &Endpoint,
    resolver: &dyn Resolve,
    limit: Duration,
) -> Result<Vec<SocketAddr>, Failure> {
    let deadline = Instant::now() + limit;
    let addrs = resolve(ep, resolver, limit).await?;
    let mut last = None;
    for addr in &addrs {
        match tokio::time::timeout(left(deadline), tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => return Ok(addrs),
            Ok(Err(e)) => last = Some(tcp_failure(ep, *addr, &e)),
            Err(_) => {
                last = Some(
                    Failure::new(
                        Stage::Tcp,
                        ErrorClass::Timeout,
                        format!(
                            "connect to {}:{} ({addr}) timed out after {:.1}s",
                            ep.host,
                            ep.port,
                            limit.as_secs_f64()
                        ),
                    )
                    .with_hint(
                        "a firewall or a cut network drops the packets, or the host is down",
                    ),
                )
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        Failure::new(
            Stage::Dns,
            ErrorClass::Unavailable,
            format!("{} resolved to no address", ep.host),
        )
    }))
}

/// Resolves one endpoint, classifying failures.
pub async fn resolve(
    ep: &Endpoint,
    resolver: &dyn Resolve,
    limit: Duration,
) -> Result<Vec<SocketAddr>, Failure> {
    match tokio::time::timeout(limit, resolver.resolve(&ep.host, ep.port)).await {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(Failure::new(
            Stage::Dns,
            ErrorClass::Unavailable,
            format!("'{}' resolved to no address", ep.host),
        )
        .with_hint(DNS_HINT)),
        Ok(Err(e)) => Err(Failure::new(
            Stage::Dns,
            ErrorClass::Unavailable,
            format!("'{}' does not resolve ({e})", ep.host),
        )
        .with_hint(DNS_HINT)),
        Err(_) => Err(Failure::new(
            Stage::Dns,
            ErrorClass::Timeout,
            format!(
                "resolving '{}' timed out after {:.1}s",
                ep.host,
                limit.as_secs_f64()
            ),
        )
        .with_hint("the DNS server does not answer; check /etc/resolv.conf")),
    }
}

fn tcp_failure(ep: &Endpoint, addr: SocketAddr, e: &io::Error) -> Failure {
    let f = Failure::new(
        Stage::Tcp,
        ErrorClass::Unavailable,
        format!("connect to {}:{} ({addr}) failed: {e}", ep.host, ep.port),
    );
    match e.kind() {
        io::ErrorKind::ConnectionRefused => f.with_hint(
            "nothing listens on that port yet: the server is still starting, or the port is wrong \
             (inside a compose network use the container port, not the published one)",
        ),
        _ => f.with_hint("the host is unreachable: check the network between the containers"),
    }
}

/// Waits until `probe` succeeds, a fatal error occurs, or the deadline passes.
pub async fn wait_ready<P: Probe>(probe: &P, opts: &WaitOptions) -> Result<Ready, WaitError> {
    let start = Instant::now();
    let target = probe.target();
    let mut delays = opts.retry.delays();
    let mut attempts = 0u32;
    let mut last: Option<Failure> = None;
    loop {
        let remaining = opts.deadline.map(|d| d.saturating_sub(start.elapsed()));
        if remaining == Some(Duration::ZERO) {
            if let Some(last) = last {
                return Err(not_ready(target, last, attempts, start, "deadline passed"));
            }
        }
        attempts += 1;
        let limit = remaining
            .map_or(opts.attempt_timeout, |r| r.min(opts.attempt_timeout))
            .max(Duration::from_millis(1));
        let failure = match attempt(probe, opts.resolver.as_ref(), limit).await {
            Ok(()) => {
                let waited_ms = start.elapsed().as_millis() as u64;
                tracing::info!(target_url = %target, attempts, waited_ms, "ready");
                return Ok(Ready {
                    attempts,
                    waited_ms,
                });
            }
            Err(f) => f,
        };
        if failure.class.is_fatal() {
            tracing::error!(target_url = %target, attempt = attempts, stage = %failure.stage, "fatal, not retrying: {failure}");
            return Err(WaitError::Fatal {
                target,
                failure,
                attempts,
            });
        }
        if opts.once {
            return Err(not_ready(
                target,
                failure,
                attempts,
                start,
                "single attempt",
            ));
        }
        let delay = delays.next().unwrap_or(opts.retry.max);
        let sleep = match opts.deadline {
            Some(d) => delay.min(d.saturating_sub(start.elapsed())),
            None => delay,
        };
        tracing::warn!(
            target_url = %target,
            attempt = attempts,
            stage = %failure.stage,
            retry_in_ms = sleep.as_millis() as u64,
            "not ready: {failure}"
        );
        tokio::time::sleep(sleep).await;
        last = Some(failure);
    }
}

fn not_ready(target: String, last: Failure, attempts: u32, start: Instant, why: &str) -> WaitError {
    let waited_ms = start.elapsed().as_millis() as u64;
    tracing::warn!(target_url = %target, attempts, waited_ms, stage = %last.stage, "not ready ({why}): {last}");
    WaitError::NotReady {
        target,
        last,
        attempts,
        waited_ms,
    }
}
