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

use pool_core::tls::{DirectTlsRefused, SslMode, TlsOptions};
use pool_core::SettingsError;
use tokio::task::JoinHandle;
use tokio_postgres::config::{Host, SslMode as DriverSslMode, SslNegotiation};
use tokio_postgres::tls::{MakeTlsConnect, NoTls, TlsConnect};
use tokio_postgres::{Client, Config, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

type Inner = <MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect;

/// The ALPN protocol every TLS connection offers, as libpq 17 does:
/// PostgreSQL 17 requires it for direct TLS (`sslnegotiation=direct`);
/// older servers ignore it.
pub const ALPN: &[u8] = b"postgresql";

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
            _ => {
                let mut config = pool_core::tls::client_config(&opts)?;
                config.alpn_protocols = vec![ALPN.to_vec()];
                Some(MakeRustlsConnect::new(config))
            }
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

    /// The rustls connector the connections use (`None` for `disable`),
    /// for a raw pool that should speak TLS exactly as ours does (the
    /// benches).
    pub fn rustls_connector(&self) -> Option<&MakeRustlsConnect> {
        self.connector.as_ref()
    }

    /// Connects per the mode (see the module docs) and spawns the
    /// connection task.
    pub async fn connect(
        &self,
        config: &Config,
    ) -> Result<(Client, JoinHandle<()>, Negotiated), tokio_postgres::Error> {
        self.by_mode(
            config,
            |config, connector| async move {
                match connector {
                    None => plain(&config).await,
                    Some(c) => encrypted(&config, c).await,
                }
            },
            |got| got.2,
        )
        .await
    }

    /// libpq's `sslmode`, in one place for every way of connecting: `open`
    /// makes one attempt (without TLS when given no connector) with the
    /// driver's mode set on the config; `negotiated` reads from its result
    /// whether TLS was used.
    async fn by_mode<'a, T, F, Fut>(
        &'a self,
        config: &Config,
        open: F,
        negotiated: impl Fn(&T) -> Negotiated,
    ) -> Result<T, tokio_postgres::Error>
    where
        F: Fn(Config, Option<&'a MakeRustlsConnect>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let mut config = config.clone();
        let Some(connector) = &self.connector else {
            config.ssl_mode(DriverSslMode::Disable);
            return open(config, None).await;
        };
        match self.opts.mode {
            SslMode::Disable => {
                config.ssl_mode(DriverSslMode::Disable);
                open(config, None).await
            }
            SslMode::Allow => {
                config.ssl_mode(DriverSslMode::Disable);
                match open(config.clone(), None).await {
                    Err(e) if refused_login(&e) => {
                        tracing::info!(
                            error = %crate::classify::error_message(&e),
                            "the server refused a plaintext login (sslmode=allow): trying TLS"
                        );
                        config.ssl_mode(DriverSslMode::Require);
                        open(config, Some(connector)).await
                    }
                    other => other,
                }
            }
            SslMode::Prefer => {
                config.ssl_mode(DriverSslMode::Prefer);
                let got = open(config, Some(connector)).await?;
                if !negotiated(&got).tls {
                    tracing::info!(
                        "the server refused TLS (sslmode=prefer): connected without encryption"
                    );
                }
                Ok(got)
            }
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                config.ssl_mode(DriverSslMode::Require);
                open(config, Some(connector)).await
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
        direct: config.get_ssl_negotiation() == SslNegotiation::Direct,
    };
    let (client, conn) = config.connect(tracked).await?;
    let tls = used.load(Ordering::Acquire);
    Ok((client, spawn(conn), Negotiated { tls }))
}

/// The connector, noting whether the server accepted TLS (tokio-postgres
/// calls `connect` only after the server answered the SSL request with
/// `S`), and naming the cause when a server hangs up on a direct TLS
/// handshake ([`DirectTlsRefused`]).
#[derive(Clone)]
struct Tracked {
    inner: MakeRustlsConnect,
    used: Arc<AtomicBool>,
    direct: bool,
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
            direct: self.direct,
        })
    }
}

struct TrackedConnect {
    inner: Inner,
    used: Arc<AtomicBool>,
    direct: bool,
}

type Stream = <Inner as TlsConnect<Socket>>::Stream;

impl TlsConnect<Socket> for TrackedConnect {
    type Stream = Stream;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, Self::Error>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        self.used.store(true, Ordering::Release);
        let direct = self.direct;
        let handshake = self.inner.connect(stream);
        Box::pin(async move { handshake.await.map_err(|e| direct_named(direct, e)) })
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
            let (client, handle, _, link) = self.0.connect_watched(&config).await?;
            // Handed to `PgManager::connect` (outside it, no one asks).
            let _ = crate::manager::LINK.try_with(|l| *l.borrow_mut() = Some(link));
            Ok((client, handle))
        })
    }
}

/// Where a pooled connection's socket goes, to send it a cancel request.
#[derive(Debug, Clone)]
pub(crate) enum Peer {
    Tcp(std::net::SocketAddr),
    #[cfg(unix)]
    Unix(std::path::PathBuf),
}

/// A pooled connection's link: its watched protocol, where its socket goes
/// and how it negotiated TLS (for a cancel request).
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub(crate) wire: Arc<crate::wire::Wire>,
    pub(crate) peer: Peer,
    /// The driver's TLS mode for this connection (a cancel request uses the
    /// same).
    pub(crate) ssl_mode: DriverSslMode,
    /// The host name, for TLS verification of a cancel request.
    pub(crate) hostname: String,
}

/// The socket the pool opens itself (TCP or Unix).
#[derive(Debug)]
pub(crate) enum Sock {
    Tcp(tokio::net::TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
    /// A socket that could not be opened: its first read or write fails
    /// with the error, so that tokio-postgres turns it into its own error
    /// type (it has no public constructor).
    Failed(Option<std::io::Error>),
}

macro_rules! each_sock {
    ($self:ident, $s:ident => $e:expr, $failed:expr) => {
        match $self.get_mut() {
            Sock::Tcp($s) => {
                let $s = Pin::new($s);
                $e
            }
            #[cfg(unix)]
            Sock::Unix($s) => {
                let $s = Pin::new($s);
                $e
            }
            Sock::Failed(e) => $failed(e),
        }
    };
}

fn failed<T>(e: &mut Option<std::io::Error>) -> std::task::Poll<std::io::Result<T>> {
    std::task::Poll::Ready(Err(e
        .take()
        .unwrap_or_else(|| std::io::ErrorKind::NotConnected.into())))
}

impl tokio::io::AsyncRead for Sock {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        each_sock!(self, s => s.poll_read(cx, buf), failed)
    }
}

impl tokio::io::AsyncWrite for Sock {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        each_sock!(self, s => s.poll_write(cx, buf), failed)
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        each_sock!(self, s => s.poll_flush(cx), failed)
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        each_sock!(self, s => s.poll_shutdown(cx), failed)
    }
}

/// An I/O error as a `tokio_postgres::Error` (kind and text kept, so the
/// classifier reads it as before).
async fn io_error(e: std::io::Error) -> tokio_postgres::Error {
    let mut config = Config::new();
    config.ssl_mode(DriverSslMode::Disable).user("x");
    match config.connect_raw(Sock::Failed(Some(e)), NoTls).await {
        Err(e) => e,
        Ok(_) => unreachable!("a failed socket cannot connect"),
    }
}

/// Opens a socket to `peer` as tokio-postgres would: bounded by
/// `connect_timeout`, `TCP_NODELAY`, keepalive and `TCP_USER_TIMEOUT`.
async fn open(config: &Config, peer: &Peer) -> std::io::Result<Sock> {
    let bounded = |f| async move {
        match config.get_connect_timeout() {
            Some(t) => tokio::time::timeout(*t, f).await.unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connection timed out",
                ))
            }),
            None => f.await,
        }
    };
    match peer {
        Peer::Tcp(addr) => {
            let s = {
                let addr = *addr;
                bounded(Box::pin(async move {
                    tokio::net::TcpStream::connect(addr).await.map(Sock::Tcp)
                }) as SockFut)
            }
            .await?;
            let Sock::Tcp(tcp) = &s else { unreachable!() };
            tcp.set_nodelay(true)?;
            let sock = socket2::SockRef::from(tcp);
            #[cfg(target_os = "linux")]
            if let Some(t) = config.get_tcp_user_timeout() {
                sock.set_tcp_user_timeout(Some(*t))?;
            }
            if config.get_keepalives() {
                let mut k = socket2::TcpKeepalive::new().with_time(config.get_keepalives_idle());
                if let Some(i) = config.get_keepalives_interval() {
                    k = k.with_interval(i);
                }
                if let Some(r) = config.get_keepalives_retries() {
                    k = k.with_retries(r);
                }
                sock.set_tcp_keepalive(&k)?;
            }
            Ok(s)
        }
        #[cfg(unix)]
        Peer::Unix(path) => {
            let path = path.clone();
            bounded(Box::pin(
                async move { tokio::net::UnixStream::connect(path).await.map(Sock::Unix) },
            ) as SockFut)
            .await
        }
    }
}

type SockFut = Pin<Box<dyn Future<Output = std::io::Result<Sock>> + Send>>;

/// The addresses to try, in order (per `load_balance_hosts`), with the
/// host name each is verified against.
async fn peers(config: &Config) -> Result<Vec<(Peer, String)>, tokio_postgres::Error> {
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    let n = hosts.len().max(addrs.len());
    let mut order: Vec<usize> = (0..n).collect();
    let random =
        config.get_load_balance_hosts() == tokio_postgres::config::LoadBalanceHosts::Random;
    if random {
        fastrand::shuffle(&mut order);
    }
    let mut out = Vec::new();
    let mut last = None;
    for i in order {
        let port = crate::manager::port_of(config, i);
        let name = match hosts.get(i) {
            Some(Host::Tcp(h)) => h.clone(),
            _ => String::new(),
        };
        if let Some(ip) = addrs.get(i) {
            out.push((Peer::Tcp((*ip, port).into()), name));
            continue;
        }
        match hosts.get(i) {
            #[cfg(unix)]
            Some(Host::Unix(dir)) => {
                out.push((Peer::Unix(dir.join(format!(".s.PGSQL.{port}"))), name))
            }
            Some(Host::Tcp(h)) => match tokio::net::lookup_host((h.as_str(), port)).await {
                Ok(found) => {
                    let mut found: Vec<_> = found.collect();
                    if random {
                        fastrand::shuffle(&mut found);
                    }
                    out.extend(found.into_iter().map(|a| (Peer::Tcp(a), name.clone())));
                }
                Err(e) => last = Some(e),
            },
            _ => {}
        }
    }
    match (out.is_empty(), last) {
        (true, Some(e)) => Err(io_error(e).await),
        (true, None) => Err(io_error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no host to connect to",
        ))
        .await),
        _ => Ok(out),
    }
}

/// What one connect made: the client, its connection task and its link.
pub(crate) type Linked = (Client, JoinHandle<()>, Negotiated, Link);

impl PgTls {
    /// Connects per the mode, as [`PgTls::connect`], on a socket the pool
    /// opens itself and watches ([`crate::wire`]): above TLS when the
    /// connection is encrypted, on the socket when it is not.
    pub(crate) async fn connect_watched(
        &self,
        config: &Config,
    ) -> Result<Linked, tokio_postgres::Error> {
        self.by_mode(
            config,
            |config, connector| async move { watched(&config, connector).await },
            |got| got.2,
        )
        .await
    }

    /// Sends a cancel request for the request in flight on `client`, over a
    /// new socket to the same server, with the same TLS mode.
    pub(crate) async fn cancel(
        &self,
        client: &Client,
        link: &Link,
        config: &Config,
    ) -> Result<(), tokio_postgres::Error> {
        let token = client.cancel_token();
        let sock = match open(config, &link.peer).await {
            Ok(s) => s,
            Err(e) => return Err(io_error(e).await),
        };
        match (&self.connector, link.ssl_mode) {
            (Some(c), DriverSslMode::Prefer | DriverSslMode::Require) => {
                let tls = <MakeRustlsConnect as MakeTlsConnect<Sock>>::make_tls_connect(
                    &mut c.clone(),
                    &link.hostname,
                )
                .map_err(|e| match e {})?;
                token.cancel_query_raw(sock, tls).await
            }
            _ => token.cancel_query_raw(sock, NoTls).await,
        }
    }
}

/// One connect on watched sockets, trying each address in turn.
async fn watched(
    config: &Config,
    connector: Option<&MakeRustlsConnect>,
) -> Result<Linked, tokio_postgres::Error> {
    let mut last = None;
    for (peer, hostname) in peers(config).await? {
        match watched_once(config, connector, peer, hostname).await {
            Ok(got) => return Ok(got),
            // A refused login is the server's answer: no other host.
            Err(e) if e.code().is_some() && !refused_login(&e) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least one address"))
}

async fn watched_once(
    config: &Config,
    connector: Option<&MakeRustlsConnect>,
    peer: Peer,
    hostname: String,
) -> Result<Linked, tokio_postgres::Error> {
    let sock = match open(config, &peer).await {
        Ok(s) => s,
        Err(e) => return Err(io_error(e).await),
    };
    let wire = crate::wire::Wire::new();
    let ssl_mode = config.get_ssl_mode();
    let ssl_request = ssl_mode != DriverSslMode::Disable
        && config.get_ssl_negotiation() == tokio_postgres::config::SslNegotiation::Postgres;
    let stream = crate::wire::Watched::new(sock, wire.clone(), ssl_request);
    let link = Link {
        wire: wire.clone(),
        peer,
        ssl_mode,
        hostname: hostname.clone(),
    };
    let (client, handle, tls) = match connector {
        None => {
            let (client, conn) = config.connect_raw(stream, NoTls).await?;
            (client, spawn(conn), false)
        }
        Some(c) => {
            let used = Arc::new(AtomicBool::new(false));
            let tls = WatchTls {
                inner: <MakeRustlsConnect as MakeTlsConnect<crate::wire::Watched<Sock>>>::make_tls_connect(
                    &mut c.clone(),
                    &hostname,
                )
                .map_err(|e| match e {})?,
                wire,
                used: used.clone(),
                direct: config.get_ssl_negotiation() == SslNegotiation::Direct,
            };
            let (client, conn) = config.connect_raw(stream, tls).await?;
            (client, spawn(conn), used.load(Ordering::Acquire))
        }
    };
    if config.get_target_session_attrs() == tokio_postgres::config::TargetSessionAttrs::ReadWrite {
        let rows = client.simple_query("SHOW transaction_read_only").await?;
        let read_only = rows.iter().any(
            |m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("on")),
        );
        if read_only {
            return Err(io_error(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "database does not allow writes",
            ))
            .await);
        }
    }
    Ok((client, handle, Negotiated { tls }, link))
}

type WatchedInner = <MakeRustlsConnect as MakeTlsConnect<crate::wire::Watched<Sock>>>::TlsConnect;

/// TLS on a watched socket: the socket's watcher stops (it would see
/// ciphertext) and a new one watches above TLS. A server that hangs up on
/// a direct handshake is named ([`DirectTlsRefused`]).
struct WatchTls {
    inner: WatchedInner,
    wire: Arc<crate::wire::Wire>,
    used: Arc<AtomicBool>,
    direct: bool,
}

impl TlsConnect<crate::wire::Watched<Sock>> for WatchTls {
    type Stream =
        crate::wire::Watched<<WatchedInner as TlsConnect<crate::wire::Watched<Sock>>>::Stream>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Stream, Self::Error>> + Send>>;

    fn connect(self, mut stream: crate::wire::Watched<Sock>) -> Self::Future {
        self.used.store(true, Ordering::Release);
        stream.stop();
        let wire = self.wire;
        let direct = self.direct;
        let fut = self.inner.connect(stream);
        Box::pin(async move {
            match fut.await {
                Ok(s) => Ok(crate::wire::Watched::new(s, wire, false)),
                Err(e) => Err(direct_named(direct, e)),
            }
        })
    }
}

/// A handshake error, as [`DirectTlsRefused`] when a direct handshake was
/// hung up on.
fn direct_named(direct: bool, e: std::io::Error) -> Box<dyn std::error::Error + Send + Sync> {
    if direct && DirectTlsRefused::is_refusal(&e) {
        Box::new(DirectTlsRefused(e))
    } else {
        Box::new(e)
    }
}
