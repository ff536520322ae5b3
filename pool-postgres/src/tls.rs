//! TLS for PostgreSQL: libpq's `sslmode` semantics on top of
//! `tokio-postgres-rustls`.
//!
//! The connector crate is `tokio-postgres-rustls` 0.14 (rustls 0.23, the
//! crate deadpool-postgres documents, maintained, with working
//! `tls-server-end-point` channel binding for SCRAM-SHA-256-PLUS); the
//! `-improved` fork needs Rust 1.88, above our MSRV. What it verifies is
//! the rustls configuration we hand it, built by [`pool_core::tls`] from
//! the mode; how the mode decides between TLS and plaintext is here,
//! because tokio-postgres knows only disable / prefer / require:
//!
//! | sslmode | what happens |
//! |---|---|
//! | `disable` | plaintext |
//! | `allow` | plaintext; if the server refuses that login (SQLSTATE 28000/28P01, e.g. a `hostssl`-only `pg_hba.conf`), again over TLS |
//! | `prefer` (default) | TLS if the server accepts the request; plaintext only if it **refuses TLS** (logged at info); a failed handshake is an error, never a fallback |
//! | `require` | TLS or an error; the certificate is not verified (with a root certificate configured: as `verify-ca`, like libpq) |
//! | `verify-ca` | TLS; the chain must lead to `sslrootcert` |
//! | `verify-full` | TLS; chain and host name |

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pool_core::tls::{SslMode, TlsOptions};
use pool_core::SettingsError;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres::tls::{MakeTlsConnect, NoTls, TlsConnect};
use tokio_postgres::{Client, Config, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

type Inner = <MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect;

/// How PostgreSQL connections use TLS (built once per pool or probe).
#[derive(Clone)]
pub struct PgTls {
    opts: Arc<TlsOptions>,
    connector: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for PgTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTls").field("opts", &self.opts).finish()
    }
}

/// What one connect negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Whether the connection is encrypted.
    pub tls: bool,
}

impl PgTls {
    /// TLS per `opts` (reads nothing; files were read by
    /// [`pool_core::tls::TlsSettings::load`]).
    pub fn new(opts: TlsOptions) -> Result<PgTls, SettingsError> {
        let connector = match opts.mode {
            SslMode::Disable => None,
            _ => Some(MakeRustlsConnect::new(pool_core::tls::client_config(
                &opts,
            )?)),
        };
        Ok(PgTls {
            opts: Arc::new(opts),
            connector,
        })
    }

    /// The TLS options in use.
    pub fn options(&self) -> &TlsOptions {
        &self.opts
    }

    /// The mode.
    pub fn mode(&self) -> SslMode {
        self.opts.mode
    }

    /// Connects per the mode (see the module docs) and spawns the
    /// connection task.
    pub async fn connect(
        &self,
        config: &Config,
    ) -> Result<(Client, JoinHandle<()>, Negotiated), tokio_postgres::Error> {
        let mut config = config.clone();
        let Some(connector) = &self.connector else {
            config.ssl_mode(DriverSslMode::Disable);
            return plain(&config).await;
        };
        match self.opts.mode {
            SslMode::Disable => {
                config.ssl_mode(DriverSslMode::Disable);
                plain(&config).await
            }
            SslMode::Allow => {
                config.ssl_mode(DriverSslMode::Disable);
                match plain(&config).await {
                    Err(e) if refused_login(&e) => {
                        tracing::info!(
                            error = %crate::classify::error_message(&e),
                            "the server refused a plaintext login (sslmode=allow): trying TLS"
                        );
                        config.ssl_mode(DriverSslMode::Require);
                        encrypted(&config, connector).await
                    }
                    other => other,
                }
            }
            SslMode::Prefer => {
                config.ssl_mode(DriverSslMode::Prefer);
                let got = encrypted(&config, connector).await?;
                if !got.2.tls {
                    tracing::info!(
                        "the server refused TLS (sslmode=prefer): connected without encryption"
                    );
                }
                Ok(got)
            }
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                config.ssl_mode(DriverSslMode::Require);
                encrypted(&config, connector).await
            }
        }
    }
}

fn refused_login(e: &tokio_postgres::Error) -> bool {
    matches!(e.code().map(|c| c.code()), Some("28000" | "28P01"))
}

fn spawn<S, T>(conn: tokio_postgres::Connection<S, T>) -> JoinHandle<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "PostgreSQL connection ended with an error");
        }
    })
}

async fn plain(
    config: &Config,
) -> Result<(Client, JoinHandle<()>, Negotiated), tokio_postgres::Error> {
    let (client, conn) = config.connect(NoTls).await?;
    Ok((client, spawn(conn), Negotiated { tls: false }))
}

async fn encrypted(
    config: &Config,
    connector: &MakeRustlsConnect,
) -> Result<(Client, JoinHandle<()>, Negotiated), tokio_postgres::Error> {
    let used = Arc::new(AtomicBool::new(false));
    let tracked = Tracked {
        inner: connector.clone(),
        used: used.clone(),
    };
    let (client, conn) = config.connect(tracked).await?;
    let tls = used.load(Ordering::Acquire);
    Ok((client, spawn(conn), Negotiated { tls }))
}

/// The connector, noting whether the server accepted TLS (tokio-postgres
/// calls `connect` only after the server answered the SSL request with
/// `S`).
#[derive(Clone)]
struct Tracked {
    inner: MakeRustlsConnect,
    used: Arc<AtomicBool>,
}

impl MakeTlsConnect<Socket> for Tracked {
    type Stream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;
    type TlsConnect = TrackedConnect;
    type Error = Infallible;

    fn make_tls_connect(&mut self, domain: &str) -> Result<TrackedConnect, Infallible> {
        let inner = <MakeRustlsConnect as MakeTlsConnect<Socket>>::make_tls_connect(
            &mut self.inner,
            domain,
        )?;
        Ok(TrackedConnect {
            inner,
            used: self.used.clone(),
        })
    }
}

struct TrackedConnect {
    inner: Inner,
    used: Arc<AtomicBool>,
}

impl TlsConnect<Socket> for TrackedConnect {
    type Stream = <Inner as TlsConnect<Socket>>::Stream;
    type Error = <Inner as TlsConnect<Socket>>::Error;
    type Future = <Inner as TlsConnect<Socket>>::Future;

    fn connect(self, stream: Socket) -> Self::Future {
        self.used.store(true, Ordering::Release);
        self.inner.connect(stream)
    }
}

/// deadpool-postgres's connect hook: every pooled connection goes through
/// [`PgTls::connect`].
pub(crate) struct PoolConnect(pub(crate) PgTls);

impl deadpool_postgres::Connect for PoolConnect {
    fn connect(
        &self,
        pg_config: &Config,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<(Client, JoinHandle<()>), tokio_postgres::Error>>
                + Send
                + '_,
        >,
    > {
        let config = pg_config.clone();
        Box::pin(async move {
            let (client, handle, _) = self.0.connect(&config).await?;
            Ok((client, handle))
        })
    }
}
