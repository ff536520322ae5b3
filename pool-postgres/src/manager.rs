//! Opening and validating PostgreSQL connections.

use deadpool::managed::Manager as _;
use deadpool_postgres::{ClientWrapper, ManagerConfig, RecyclingMethod};
use pool_core::tcp::TcpOptions;
use pool_core::url::HostAddr;
use pool_core::{
    Backend, ConnUrl, ErrorClass, Manager, PoolSettings, ResetOnReturn, Returned, SettingsError,
};
use std::cell::RefCell;
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::config::Host;
use tokio_postgres::Config;

use crate::tls::{Link, PgTls, PoolConnect};

tokio::task_local! {
    /// Hands the link of the connection being made from the connect hook
    /// (inside deadpool-postgres's `create`) to [`PgManager::connect`].
    pub(crate) static LINK: RefCell<Option<Link>>;
}

/// How long a reset waits for the answer of a request thought in flight
/// before it sends a cancel request: the answer of a request just answered
/// may still be on its way through the socket.
const ANSWER_GRACE: Duration = Duration::from_millis(10);

/// A pooled PostgreSQL connection: deadpool-postgres's client (it
/// dereferences to it: `query`, `prepare_cached`, `transaction`, ...) and
/// what the pool watches of its protocol ([`crate::wire`]).
pub struct PgConn {
    client: ClientWrapper,
    link: Link,
}

impl PgConn {
    /// The transaction status of the server's last `ReadyForQuery`: `b'I'`
    /// idle, `b'T'` in a transaction block, `b'E'` in a failed one.
    pub fn transaction_status(&self) -> u8 {
        self.link.wire.status()
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> u64 {
        self.link.wire.in_flight()
    }

    /// The client (also reached through `Deref`).
    pub fn client(&mut self) -> &mut ClientWrapper {
        &mut self.client
    }
}

impl std::ops::Deref for PgConn {
    type Target = ClientWrapper;

    fn deref(&self) -> &ClientWrapper {
        &self.client
    }
}

impl std::ops::DerefMut for PgConn {
    fn deref_mut(&mut self) -> &mut ClientWrapper {
        &mut self.client
    }
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn")
            .field("transaction_status", &char::from(self.transaction_status()))
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

/// Makes connections with `deadpool-postgres`'s manager and validates them
/// with an empty query (one round trip, no parsing, no plan).
pub struct PgManager {
    inner: deadpool_postgres::Manager,
    config: Config,
    tls: PgTls,
    target: String,
    /// `DB_CONNECT_INIT_SQL`, run on every new connection.
    init_sql: Option<String>,
    /// Code run on every new connection, after `init_sql`.
    init_hook: Option<InitHook>,
    /// `DB_POOL_RESET_ON_RETURN`.
    reset: ResetOnReturn,
}

/// Code run on every new connection before its first use (see
/// [`PgManager::with_init_hook`]).
pub type InitHook = std::sync::Arc<
    dyn for<'a> Fn(
            &'a mut ClientWrapper,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'a>,
        > + Send
        + Sync,
>;

impl std::fmt::Debug for PgManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgManager")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PgManager {
    /// Builds a manager from settings: parses the URL and applies connect
    /// timeout, TCP keepalive, `tcp_user_timeout` and an `application_name`
    /// naming the pool (so operators can tell its sessions apart); reads
    /// the TLS files (see [`crate::tls`]).
    pub fn new(settings: &PoolSettings) -> Result<Self, SettingsError> {
        let config = pg_config(settings)?;
        let tls = pg_tls(settings)?;
        let target = target_of(&config);
        let inner = deadpool_postgres::Manager::from_connect(
            config.clone(),
            PoolConnect(tls.clone()),
            ManagerConfig {
                // Validation is pool-core's job (with a bypass window);
                // the manager only connects.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Ok(PgManager {
            inner,
            config,
            tls,
            target,
            init_sql: settings.connect_init.clone(),
            init_hook: None,
            reset: settings.reset_on_return,
        })
    }

    /// How connections use TLS.
    pub fn tls(&self) -> &PgTls {
        &self.tls
    }

    /// Runs `hook` on every new connection before its first use, after
    /// `DB_CONNECT_INIT_SQL` (SQLAlchemy's `connect` event). It runs inside
    /// `connect_timeout`; an error fails the connect attempt and is
    /// classified like any other (a `Query` error retries, `Fatal` stops).
    pub fn with_init_hook(mut self, hook: InitHook) -> Self {
        self.init_hook = Some(hook);
        self
    }

    /// deadpool-postgres's registry of the statement caches of the
    /// connections this manager opened (each entry is removed when the pool
    /// lets its connection go).
    pub fn statement_caches(&self) -> &deadpool_postgres::StatementCaches {
        &self.inner.statement_caches
    }

    /// The `tokio_postgres` configuration in use (it holds the password: do
    /// not print it; use [`Manager::target`]).
    pub fn config(&self) -> &Config {
        &self.config
    }
}

/// The TLS setup of `settings` (`sslmode` defaults to `prefer`, as libpq).
/// URL parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) and
/// the `DB_SSL*` variables are merged; they must agree.
pub fn pg_tls(settings: &PoolSettings) -> Result<PgTls, SettingsError> {
    let parsed = settings
        .url
        .as_ref()
        .and_then(|u| ConnUrl::parse_for(Backend::Postgres, u.expose()).ok());
    let url_var = url_variable(settings);
    let tls = settings
        .tls
        .with_url_params(&url_var, |k| parsed.as_ref()?.param(k))?;
    let opts = tls.load(pool_core::tls::SslMode::Prefer)?;
    // Direct TLS has no plaintext fallback: libpq refuses weaker modes
    // with it, and so do we (tokio-postgres would ignore it under
    // `disable` and fail every connect under `prefer`).
    let direct = parsed.as_ref().and_then(|p| p.param("sslnegotiation"));
    if direct == Some("direct") && !opts.mode.at_least_require() {
        return Err(SettingsError::Invalid {
            variable: format!("sslnegotiation in {url_var}"),
            value: "direct".into(),
            expected: format!(
                "sslmode=require, verify-ca or verify-full with it (sslmode is {}{}): direct TLS never falls back to plaintext",
                opts.mode,
                match opts.mode_origin.as_str() {
                    "default" => " by default".to_string(),
                    origin => format!(" from {origin}"),
                }
            ),
        });
    }
    PgTls::new(opts)
}

/// Parses the URL in `settings` with the one grammar ([`pool_core::url`])
/// and applies the connection settings.
pub fn pg_config(settings: &PoolSettings) -> Result<Config, SettingsError> {
    let url = settings.require_url()?;
    let invalid = |reason: String| SettingsError::InvalidUrl {
        variable: url_variable(settings),
        url: url.redacted(),
        reason,
    };
    let parsed =
        ConnUrl::parse_for(Backend::Postgres, url.expose()).map_err(|e| invalid(e.to_string()))?;
    let mut config = config_from(&parsed).map_err(invalid)?;
    if config.get_user().is_none_or(str::is_empty) {
        return Err(invalid(
            "no user given (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE)".into(),
        ));
    }
    config.connect_timeout(settings.connect_timeout);
    let tcp = TcpOptions::from_settings(settings);
    match tcp.keepalive {
        Some(k) => config
            .keepalives(true)
            .keepalives_idle(k.idle)
            .keepalives_interval(k.interval)
            .keepalives_retries(k.retries),
        None => config.keepalives(false),
    };
    if let Some(t) = tcp.user_timeout {
        config.tcp_user_timeout(t);
    }
    if config.get_application_name().is_none() {
        config.application_name(format!("pool-postgres/{}", settings.name));
    }
    Ok(config)
}

/// The variable to name in errors (settings built in code name ours).
fn url_variable(settings: &PoolSettings) -> String {
    match settings.url_var.as_str() {
        "" => crate::URL_VAR.to_string(),
        v => v.to_string(),
    }
}

/// A `tokio_postgres` configuration from a parsed URL. The options
/// (checked by the grammar's table) go through tokio-postgres's own
/// `key=value` parser; hosts, ports and credentials through its setters, so
/// a password or socket path may be any bytes.
pub fn config_from(url: &ConnUrl) -> Result<Config, String> {
    if let Some((key, _)) = url.secret_params.first() {
        return Err(format!("option '{key}' is not supported by tokio-postgres"));
    }
    // The TLS parameters are ours (see `pg_tls`); tokio-postgres knows
    // only some of them.
    let options: Vec<String> = url
        .params
        .iter()
        .filter(|(k, _)| !pool_core::tls::URL_PARAMS.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect();
    let mut config = Config::from_str(&options.join(" "))
        .map_err(|e| pool_core::redact::redact_url(&e.to_string()))?;
    for host in &url.hosts {
        match &host.addr {
            HostAddr::Tcp(name) => config.host(name),
            HostAddr::Unix(path) => config.host_path(path),
        };
        config.port(host.port);
    }
    if let Some(user) = &url.user {
        config.user(user);
    }
    if let Some(password) = &url.password {
        config.password(password.expose());
    }
    if let Some(db) = &url.dbname {
        config.dbname(db);
    }
    Ok(config)
}

/// The port of the `i`-th host: its own, else the one port given for all
/// (libpq's rule), else 5432.
pub(crate) fn port_of(config: &Config, i: usize) -> u16 {
    config
        .get_ports()
        .get(i)
        .or_else(|| config.get_ports().first())
        .copied()
        .unwrap_or(5432)
}

/// `postgres://user@host:port/db`, never with the password.
pub fn target_of(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let port = port_of(config, i);
            match h {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    format!(
        "postgres://{}@{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

impl Manager for PgManager {
    type Connection = PgConn;
    type Error = tokio_postgres::Error;

    async fn connect(&self) -> Result<PgConn, tokio_postgres::Error> {
        LINK.scope(RefCell::new(None), async {
            let client = self.inner.create().await?;
            let link = LINK
                .with(|l| l.borrow_mut().take())
                .expect("the connect hook hands over its link");
            Ok(PgConn { client, link })
        })
        .await
    }

    async fn ping(&self, conn: &mut PgConn) -> Result<(), tokio_postgres::Error> {
        conn.simple_query("").await.map(|_| ())
    }

    async fn after_connect(&self, conn: &mut PgConn) -> Result<(), tokio_postgres::Error> {
        if let Some(sql) = &self.init_sql {
            conn.batch_execute(sql).await?;
        }
        if let Some(hook) = &self.init_hook {
            hook(&mut conn.client).await?;
        }
        Ok(())
    }

    /// Free: the transaction status and the requests in flight are read
    /// from the protocol as it passed ([`crate::wire`]).
    fn on_return(&self, conn: &mut PgConn) -> Returned {
        let wire = &conn.link.wire;
        if wire.in_flight() > 0 {
            return Returned::Cancel;
        }
        match (self.reset, wire.status()) {
            (ResetOnReturn::None, _) | (ResetOnReturn::Rollback, b'I') => Returned::Clean,
            _ => Returned::Reset,
        }
    }

    /// A request in flight: after a short grace for an answer already on
    /// its way, a cancel request (over a new socket, same TLS mode), then
    /// the wait for its `ReadyForQuery`. Then, per `reset_on_return`:
    /// `ROLLBACK` when a transaction is open or failed; `DISCARD ALL`
    /// (after a `ROLLBACK` when needed), with the client's statement and
    /// type caches cleared since the server dropped its prepared statements.
    async fn reset(
        &self,
        conn: &mut PgConn,
        how: Returned,
    ) -> Result<Returned, tokio_postgres::Error> {
        let _ = how;
        let wire = conn.link.wire.clone();
        let mut did = Returned::Clean;
        if wire.in_flight() > 0
            && tokio::time::timeout(ANSWER_GRACE, wire.settled())
                .await
                .is_err()
        {
            self.tls
                .cancel(&conn.client, &conn.link, &self.config)
                .await?;
            wire.settled().await;
            did = Returned::Cancel;
        }
        let open = wire.status() != b'I';
        let reset = match self.reset {
            ResetOnReturn::None => false,
            ResetOnReturn::Rollback => open,
            ResetOnReturn::Discard => true,
        };
        if reset && open {
            conn.client.simple_query("ROLLBACK").await?;
        }
        if self.reset == ResetOnReturn::Discard {
            conn.client.simple_query("DISCARD ALL").await?;
            conn.client.statement_cache.clear();
            conn.client.clear_type_cache();
        }
        if reset && did == Returned::Clean {
            did = Returned::Reset;
        }
        Ok(did)
    }

    fn on_close(&self, conn: &mut PgConn) {
        // deadpool-postgres registers every connection's statement cache in
        // the manager; only `detach` removes the entry.
        self.inner.detach(&mut conn.client);
    }

    fn is_closed(&self, conn: &PgConn) -> bool {
        conn.client.is_closed()
    }

    fn classify(&self, error: &tokio_postgres::Error) -> ErrorClass {
        crate::classify(error)
    }

    fn error_message(&self, error: &tokio_postgres::Error) -> String {
        crate::classify::error_message(error)
    }

    fn target(&self) -> String {
        self.target.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pool_core::settings::SettingsSource;
    use std::time::Duration;

    fn settings(url: &str) -> PoolSettings {
        SettingsSource::new("DB_", "DATABASE_URL")
            .vars([("DATABASE_URL", url)])
            .load()
            .unwrap()
    }

    #[test]
    fn bad_urls_name_the_variable_and_hide_the_password() {
        for url in [
            "postgres://app:hunter2@db:notaport/app",
            "postgres://app:hunter2@/app",
            "mysql://app:hunter2@db/app",
            "host=db port=x password=hunter2",
        ] {
            let err = PgManager::new(&settings(url)).expect_err(url).to_string();
            assert!(err.contains("DATABASE_URL"), "{url}: {err}");
            assert!(!err.contains("hunter2"), "{url}: {err}");
        }
    }

    #[test]
    fn target_and_debug_hide_the_password() {
        let m = PgManager::new(&settings("postgres://app:hunter2@db:6543/app")).unwrap();
        assert_eq!(m.target(), "postgres://app@db:6543/app");
        assert!(!format!("{m:?}").contains("hunter2"));
        assert_eq!(m.config().get_application_name(), Some("pool-postgres/db"));
    }

    #[test]
    fn tcp_options_reach_the_config() {
        let url = "postgres://app@db/app";
        let c = pg_config(&settings(url)).unwrap();
        assert!(c.get_keepalives());
        assert_eq!(c.get_keepalives_idle(), Duration::from_secs(30));
        assert_eq!(c.get_keepalives_interval(), Some(Duration::from_secs(10)));
        assert_eq!(c.get_keepalives_retries(), Some(3));
        assert_eq!(c.get_tcp_user_timeout(), Some(&Duration::from_secs(15)));

        let mut off = settings(url);
        off.tcp_keepalive = None;
        off.tcp_user_timeout = None;
        let c = pg_config(&off).unwrap();
        assert!(!c.get_keepalives());
        assert_eq!(c.get_tcp_user_timeout(), None);
    }

    #[test]
    fn missing_url_names_the_variable() {
        let s = SettingsSource::new("DB_", "DATABASE_URL")
            .vars(Vec::<(String, String)>::new())
            .load()
            .unwrap();
        let err = PgManager::new(&s).unwrap_err().to_string();
        assert_eq!(err, "DATABASE_URL is not set");
    }

    #[test]
    fn every_url_form_configures_the_driver() {
        let m = PgManager::new(&settings(
            "host = db1,db2 port=5433,5434 user=app password='a b\\'c' dbname=x target_session_attrs=read-write",
        ))
        .unwrap();
        let c = m.config();
        assert_eq!(
            c.get_hosts(),
            [Host::Tcp("db1".into()), Host::Tcp("db2".into())]
        );
        assert_eq!(c.get_ports(), [5433, 5434]);
        assert_eq!(c.get_password(), Some(&b"a b'c"[..]));
        assert_eq!(m.target(), "postgres://app@db1:5433,db2:5434/x");
        let m = PgManager::new(&settings(
            "postgres://app:p@ss:w/rd%Q?#x@127.0.0.1:58001/postgres",
        ))
        .unwrap();
        assert_eq!(m.config().get_password(), Some(&b"p@ss:w/rd%Q?#x"[..]));
        assert_eq!(m.config().get_hosts(), [Host::Tcp("127.0.0.1".into())]);
        let m = PgManager::new(&settings("postgresql://app@%2Frun%2Fpg:5433/app")).unwrap();
        assert_eq!(m.config().get_hosts(), [Host::Unix("/run/pg".into())]);
    }

    #[test]
    fn a_bad_option_is_named() {
        let err = PgManager::new(&settings(
            "postgres://app:hunter2@db/app?sslmode=verify-ful",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("'sslmode'") && err.contains("verify-ful"),
            "{err}"
        );
        // verify-full is known, and needs a root certificate.
        let err = PgManager::new(&settings(
            "postgres://app:hunter2@db/app?sslmode=verify-full",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("sslmode in DATABASE_URL") && err.contains("sslrootcert"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let s = PoolSettings::new("x");
        let err = crate::build_pool(s).unwrap_err().to_string();
        assert_eq!(err, "DATABASE_URL is not set");
    }

    /// The sample errors in docs/configuration.md are what the code prints.
    #[test]
    fn the_documented_errors_are_the_real_ones() {
        let doc = include_str!("../../docs/configuration.md");
        let load = |var: &str, value: &str| {
            SettingsSource::new("DB_", "DATABASE_URL")
                .vars([(var, value)])
                .load()
                .and_then(|s| PgManager::new(&s))
                .unwrap_err()
                .to_string()
        };
        for err in [
            load("DB_POOL_SIZE", "abc"),
            load("DB_POOL_TIMEOUT", "1e-12"),
            load("DATABASE_URL", "postgres://app:pw@db:badport/app"),
            load("DATABASE_URL", "postgres://app:pw@db/app?sslmod=require"),
        ] {
            assert!(
                doc.contains(&format!("\n{err}\n")),
                "not in docs/configuration.md:\n{err}"
            );
        }
    }
}
