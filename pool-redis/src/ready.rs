//! The Redis startup wait: DNS, TCP, then `AUTH` (when the URL has
//! credentials) and `PING`.

use crate::manager::{connection_info, target_of};
use bb8_redis::redis::{
    self, aio::MultiplexedConnection, ConnectionAddr, ConnectionInfo, RedisError,
};
use pool_core::startup::{self, Endpoint, Failure, Probe, Ready, Stage, WaitError, WaitOptions};
use pool_core::tls::{Sourced, SslMode, TlsOptions, TlsSettings};
use pool_core::{ErrorClass, PoolSettings, SettingsError};

/// Checks that a Redis server authenticates and answers `PING`.
#[derive(Clone)]
pub struct RedisProbe {
    info: ConnectionInfo,
    target: String,
    /// The TLS files and the variable of the URL, for [`Self::tls_options`].
    tls: TlsSettings,
    url_var: String,
}

impl std::fmt::Debug for RedisProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisProbe")
            .field("target", &self.target)
            .finish()
    }
}

impl RedisProbe {
    /// A probe for the URL in `settings`.
    pub fn new(settings: &PoolSettings) -> Result<Self, SettingsError> {
        let mut probe = Self::from_info(connection_info(settings)?);
        probe.tls = settings.tls.clone();
        probe.url_var = match settings.url_var.as_str() {
            "" => crate::URL_VAR.to_string(),
            v => v.to_string(),
        };
        Ok(probe)
    }

    /// A probe for parsed connection info.
    pub fn from_info(info: ConnectionInfo) -> Self {
        let target = target_of(&info);
        RedisProbe {
            info,
            target,
            tls: TlsSettings::default(),
            url_var: crate::URL_VAR.to_string(),
        }
    }

    /// What a `rediss://` connection checks, as [`TlsOptions`] (for a
    /// handshake of one's own, such as `wait-for-db doctor`'s): `None` for
    /// plaintext; with `#insecure` nothing is verified (as `require`);
    /// otherwise the chain and the host name (as `verify-full`) against
    /// `REDIS_TLS_CA_FILE`, or the OS roots when it is not set — what
    /// redis-rs does. Reads the files.
    pub fn tls_options(&self) -> Result<Option<TlsOptions>, SettingsError> {
        let ConnectionAddr::TcpTls { insecure, .. } = self.info.addr() else {
            return Ok(None);
        };
        let mut settings = self.tls.clone();
        let (mode, origin) = if *insecure {
            (SslMode::Require, format!("#insecure in {}", self.url_var))
        } else {
            (
                SslMode::VerifyFull,
                format!("rediss:// in {}", self.url_var),
            )
        };
        settings.mode = Some(Sourced::new(mode.as_str(), origin));
        if *insecure {
            // redis-rs verifies nothing then, a CA file or not.
            settings.root_cert = None;
        } else if settings.root_cert.is_none() {
            settings.root_cert = Some(Sourced::new("system", "the OS roots (rediss:// default)"));
        }
        settings.load(mode).map(Some)
    }

    /// Waits until the server is ready (see [`pool_core::startup`]).
    pub async fn wait(&self, opts: &WaitOptions) -> Result<Ready, WaitError> {
        startup::wait_ready(self, opts).await
    }

    /// Connects (authenticating) and sends `PING`; returns the connection
    /// for further checks.
    pub async fn connect(&self) -> Result<MultiplexedConnection, Failure> {
        let client = redis::Client::open(self.info.clone()).map_err(|e| failure(&e))?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| failure(&e))?;
        let pong: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| failure(&e))?;
        if pong != "PONG" {
            return Err(Failure::new(
                Stage::Query,
                ErrorClass::Unavailable,
                format!("PING answered {pong:?} instead of PONG"),
            ));
        }
        Ok(conn)
    }
}

impl Probe for RedisProbe {
    fn target(&self) -> String {
        self.target.clone()
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        match self.info.addr() {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                vec![Endpoint {
                    host: host.clone(),
                    port: *port,
                }]
            }
            _ => Vec::new(),
        }
    }

    async fn check(&self) -> Result<(), Failure> {
        self.connect().await.map(|_| ())
    }
}

/// Turns a Redis error into a diagnosis.
pub fn failure(e: &RedisError) -> Failure {
    let class = crate::classify(e);
    // Server errors as redis-cli shows them (`MASTERDOWN Link with MASTER
    // is down ...`), so the code a person greps for is in the message.
    let message = crate::classify::error_message(e);
    // The message carries the TLS hint already (see `error_message`).
    if crate::classify::tls_problem(e).is_some() {
        return Failure::new(Stage::Tls, class, message);
    }
    if crate::classify::is_db_out_of_range(e) {
        return Failure::new(Stage::Auth, class, message).with_hint(
            "the database index in the URL (redis://HOST/N) is beyond the server's `databases` setting (16 by default); waiting will not fix this",
        );
    }
    if crate::classify::is_not_redis(e) {
        return Failure::new(Stage::Protocol, class, message);
    }
    match e.code() {
        Some("WRONGPASS") => Failure::new(Stage::Auth, class, message)
            .with_hint("wrong user or password in the URL; waiting will not fix this"),
        Some("NOAUTH") => Failure::new(Stage::Auth, class, message)
            .with_hint("the server requires a password: put it in the URL (redis://:PASSWORD@host:6379/0)"),
        Some("LOADING") => Failure::new(Stage::Protocol, class, message)
            .with_hint("the server is loading its dataset into memory; it answers once loaded"),
        Some("MASTERDOWN") => Failure::new(Stage::Protocol, class, message).with_hint(
            "this is a replica whose link to its master is down (replica-serve-stale-data no); it answers once the master is back",
        ),
        // redis-rs reports a rejected AUTH (`-WRONGPASS`, or `-ERR invalid
        // password` before Redis 6) as this kind, without the server's code.
        _ if e.kind() == redis::ErrorKind::AuthenticationFailed => Failure::new(
            Stage::Auth,
            class,
            format!("{message} (the server rejected AUTH: WRONGPASS)"),
        )
        .with_hint("wrong user or password in the URL, or the ACL user is disabled; waiting will not fix this"),
        _ if class == ErrorClass::Fatal => Failure::new(Stage::Auth, class, message),
        _ if class == ErrorClass::Query => Failure::new(Stage::Query, class, message),
        _ => Failure::new(Stage::Protocol, class, message),
    }
}
