//! The PostgreSQL startup wait: DNS, TCP, then an authenticated `SELECT 1`.

use crate::manager::{pg_config, pg_tls, target_of};
use crate::tls::{Negotiated, PgTls};
use pool_core::startup::{self, Endpoint, Failure, Probe, Ready, Stage, WaitError, WaitOptions};
use pool_core::{ErrorClass, PoolSettings, SettingsError};
use tokio_postgres::config::Host;
use tokio_postgres::Config;

/// Checks that a PostgreSQL server accepts an authenticated query.
#[derive(Clone)]
pub struct PgProbe {
    config: Config,
    tls: PgTls,
    target: String,
}

impl std::fmt::Debug for PgProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgProbe")
            .field("target", &self.target)
            .finish()
    }
}

impl PgProbe {
    /// A probe for the URL in `settings`.
    pub fn new(settings: &PoolSettings) -> Result<Self, SettingsError> {
        let config = pg_config(settings)?;
        Ok(Self::from_config(config, pg_tls(settings)?))
    }

    /// A probe for a `tokio_postgres` configuration and a TLS setup.
    pub fn from_config(config: Config, tls: PgTls) -> Self {
        let target = target_of(&config);
        PgProbe {
            config,
            tls,
            target,
        }
    }

    /// The TLS setup.
    pub fn tls(&self) -> &PgTls {
        &self.tls
    }

    /// The `tokio_postgres` configuration (it holds the password: do not
    /// print it; use [`Probe::target`]).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Waits until the server is ready (see [`pool_core::startup`]).
    pub async fn wait(&self, opts: &WaitOptions) -> Result<Ready, WaitError> {
        startup::wait_ready(self, opts).await
    }

    /// Connects and runs `SELECT 1`; returns the connected client for
    /// further checks (the doctor reads `max_connections` with it).
    pub async fn connect(&self) -> Result<tokio_postgres::Client, Failure> {
        self.connect_negotiated().await.map(|(c, _)| c)
    }

    /// Like [`connect`](Self::connect), also saying whether TLS was used.
    pub async fn connect_negotiated(
        &self,
    ) -> Result<(tokio_postgres::Client, Negotiated), Failure> {
        let (client, _task, negotiated) = self
            .tls
            .connect(&self.config)
            .await
            .map_err(|e| failure(&e))?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| failure(&e))?;
        Ok((client, negotiated))
    }
}

impl Probe for PgProbe {
    fn target(&self) -> String {
        self.target.clone()
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        let ports = self.config.get_ports();
        self.config
            .get_hosts()
            .iter()
            .enumerate()
            .filter_map(|(i, h)| match h {
                Host::Tcp(host) => Some(Endpoint {
                    host: host.clone(),
                    port: ports.get(i).or(ports.first()).copied().unwrap_or(5432),
                }),
                Host::Unix(_) => None,
            })
            .collect()
    }

    async fn check(&self) -> Result<(), Failure> {
        self.connect().await.map(|_| ())
    }
}

/// Turns a connect or query error into a diagnosis.
pub fn failure(e: &tokio_postgres::Error) -> Failure {
    let class = crate::classify(e);
    let message = crate::classify::error_message(e);
    let code = e.code().map(|c| c.code()).unwrap_or("");
    // The message carries the TLS hint already (see `pool_core::error::chain`).
    if pool_core::tls::diagnose(e).is_some() {
        return Failure::new(Stage::Tls, class, message);
    }
    match code {
        "28P01" | "28000" => Failure::new(Stage::Auth, class, message)
            .with_hint("wrong user or password: check the credentials in the URL; waiting will not fix this"),
        "3D000" => Failure::new(Stage::Auth, class, message)
            .with_hint("the database does not exist: create it or fix the name in the URL"),
        "57P03" => Failure::new(Stage::Protocol, class, message).with_hint(
            "the server is up but not accepting connections yet (starting up, in recovery, a standby with hot_standby=off, or shutting down)",
        ),
        "53300" => Failure::new(Stage::Protocol, class, message).with_hint(
            "max_connections is reached: lower pool sizes (replicas x (DB_POOL_SIZE + DB_MAX_OVERFLOW)) or put PgBouncer in front",
        ),
        _ if class == ErrorClass::Fatal => Failure::new(Stage::Auth, class, message),
        _ if class == ErrorClass::Query => Failure::new(Stage::Query, class, message),
        _ => Failure::new(Stage::Protocol, class, message),
    }
}
