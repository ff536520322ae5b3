//! Opening and validating Redis connections.

use bb8_redis::redis::io::tcp::{socket2::TcpKeepalive, TcpSettings};
use bb8_redis::redis::{
    self, aio::MultiplexedConnection, AsyncConnectionConfig, ClientTlsConfig, ConnectionAddr,
    ConnectionInfo, IntoConnectionInfo, ProtocolVersion, RedisConnectionInfo, RedisError,
    TlsCertificates,
};
use pool_core::tcp::TcpOptions;
use pool_core::url::HostAddr;
use pool_core::{
    Backend, ConnUrl, ErrorClass, Manager, PoolSettings, ResetOnReturn, Returned, SettingsError,
};

use crate::conn::{CommandTimeout, RedisConn};

/// Makes multiplexed connections through redis-rs's own connection config
/// (`REDIS_CONNECT_TIMEOUT` as its connection timeout, no response timeout
/// of its own: [`RedisConn`] applies `REDIS_COMMAND_TIMEOUT` per command)
/// and pings them.
pub struct RedisManager {
    client: redis::Client,
    config: AsyncConnectionConfig,
    command_timeout: CommandTimeout,
    info: ConnectionInfo,
    target: String,
    /// `REDIS_CONNECT_INIT_COMMANDS`, split into commands and arguments.
    init_commands: Vec<Vec<String>>,
    /// Code run on every new connection, after `init_commands`.
    init_hook: Option<InitHook>,
    /// `REDIS_POOL_RESET_ON_RETURN`.
    reset: ResetOnReturn,
    /// The database connections are in: the URL's, or the last `SELECT` of
    /// the init commands.
    db: i64,
}

/// Code run on every new connection before its first use (see
/// [`RedisManager::with_init_hook`]).
pub type InitHook = std::sync::Arc<
    dyn for<'a> Fn(
            &'a mut MultiplexedConnection,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(), RedisError>> + Send + 'a>,
        > + Send
        + Sync,
>;

/// `SELECT 2; CLIENT SETNAME api` as commands and their arguments
/// (`;`-separated commands, whitespace-separated arguments).
fn init_commands(text: Option<&str>) -> Vec<Vec<String>> {
    text.unwrap_or_default()
        .split(';')
        .map(|c| c.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|c| !c.is_empty())
        .collect()
}

impl std::fmt::Debug for RedisManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisManager")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl RedisManager {
    /// Builds a manager from settings: parses `REDIS_URL`, applies TCP
    /// keepalive and `tcp_user_timeout`, `REDIS_CONNECT_TIMEOUT` and
    /// `REDIS_COMMAND_TIMEOUT`.
    pub fn new(settings: &PoolSettings) -> Result<Self, SettingsError> {
        let info = connection_info(settings)?;
        let target = target_of(&info);
        let client = redis::Client::open(info.clone()).map_err(|e| SettingsError::InvalidUrl {
            variable: settings.url_var.clone(),
            url: settings
                .url
                .as_ref()
                .map(|u| u.redacted())
                .unwrap_or_default(),
            reason: pool_core::redact::redact_url(&e.to_string()),
        })?;
        let init_commands = init_commands(settings.connect_init.as_deref());
        let db = init_commands
            .iter()
            .rev()
            .find(|c| c[0].eq_ignore_ascii_case("SELECT"))
            .and_then(|c| c.get(1)?.parse().ok())
            .unwrap_or(info.redis_settings().db());
        // The pool bounds each attempt by `connect_timeout` too; redis-rs's
        // own 1 s default would cut a longer one short.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(None);
        Ok(RedisManager {
            client,
            config,
            command_timeout: CommandTimeout {
                timeout: settings.command_timeout,
                variable: command_timeout_var(settings).into(),
            },
            info,
            target,
            init_commands,
            init_hook: None,
            reset: settings.reset_on_return,
            db,
        })
    }

    /// The configured `REDIS_COMMAND_TIMEOUT` (`None`: no limit).
    pub fn command_timeout(&self) -> Option<std::time::Duration> {
        self.command_timeout.timeout
    }

    /// Runs `hook` on every new connection before its first use, after
    /// `REDIS_CONNECT_INIT_COMMANDS`. It runs inside `connect_timeout`; an
    /// error fails the connect attempt and is classified like any other.
    pub fn with_init_hook(mut self, hook: InitHook) -> Self {
        self.init_hook = Some(hook);
        self
    }

    /// The parsed connection info (holds the password: do not print it).
    pub fn connection_info(&self) -> &ConnectionInfo {
        &self.info
    }
}

/// The variable of the command timeout, after the URL variable's prefix
/// (`REDIS_URL` -> `REDIS_COMMAND_TIMEOUT`, `CACHE_URL` ->
/// `CACHE_COMMAND_TIMEOUT`).
fn command_timeout_var(settings: &PoolSettings) -> String {
    let prefix = settings
        .url_var
        .strip_suffix("URL")
        .filter(|p| !p.is_empty())
        .unwrap_or(crate::ENV_PREFIX);
    format!("{prefix}COMMAND_TIMEOUT")
}

/// Parses the URL in `settings` with the one grammar ([`pool_core::url`])
/// and applies the TCP settings.
pub fn connection_info(settings: &PoolSettings) -> Result<ConnectionInfo, SettingsError> {
    let url = settings.require_url()?;
    let invalid = |reason: String| SettingsError::InvalidUrl {
        variable: match settings.url_var.as_str() {
            "" => crate::URL_VAR.to_string(),
            v => v.to_string(),
        },
        url: url.redacted(),
        reason,
    };
    let parsed =
        ConnUrl::parse_for(Backend::Redis, url.expose()).map_err(|e| invalid(e.to_string()))?;
    let info = info_from(&parsed).map_err(invalid)?;
    let info = with_tls(info, settings)?;
    let mut tcp = TcpSettings::default().set_nodelay(true);
    let options = TcpOptions::from_settings(settings);
    if let Some(k) = options.keepalive {
        tcp = tcp.set_keepalive(
            TcpKeepalive::new()
                .with_time(k.idle)
                .with_interval(k.interval)
                .with_retries(k.retries),
        );
    }
    if let Some(t) = options.user_timeout {
        tcp = tcp.set_user_timeout(t);
    }
    Ok(info.set_tcp_settings(tcp))
}

/// redis-rs connection info from a parsed URL: the address through
/// redis-rs (which knows whether TLS is built in), the credentials,
/// database and protocol through its setters.
pub fn info_from(url: &ConnUrl) -> Result<ConnectionInfo, String> {
    let host = url.hosts.first().ok_or("no host given")?;
    let addr = match &host.addr {
        HostAddr::Unix(path) => ConnectionAddr::Unix(path.clone()).into_connection_info(),
        HostAddr::Tcp(name) => {
            let name = if name.contains(':') {
                format!("[{name}]")
            } else {
                name.clone()
            };
            let fragment = url
                .fragment
                .as_deref()
                .map(|f| format!("#{f}"))
                .unwrap_or_default();
            format!("{}://{name}:{}/{fragment}", url.scheme(), host.port).into_connection_info()
        }
    }
    .map_err(|e| {
        format!(
            "{} ({})",
            e.category(),
            e.detail().unwrap_or("does not parse")
        )
    })?;
    let mut redis = RedisConnectionInfo::default().set_db(url.redis_db());
    if let Some(user) = &url.user {
        redis = redis.set_username(user);
    }
    if let Some(password) = &url.password {
        let text = password
            .expose_str()
            .ok_or("the password is not valid UTF-8 (redis-rs sends text)")?;
        redis = redis.set_password(text);
    }
    if matches!(url.param("protocol"), Some("3" | "resp3")) {
        redis = redis.set_protocol(ProtocolVersion::RESP3);
    }
    Ok(addr.set_redis_settings(redis))
}

/// Applies `REDIS_TLS_CA_FILE`, `REDIS_TLS_CERT_FILE` and
/// `REDIS_TLS_KEY_FILE` (by prefix) to a `rediss://` URL: a private CA
/// replaces the OS roots, a client certificate is presented when the server
/// asks (mTLS). They are an error with a `redis://` URL. `#insecure`
/// (redis-rs: no verification at all) is accepted with a warning, every
/// time a pool or probe is built.
fn with_tls(
    info: ConnectionInfo,
    settings: &PoolSettings,
) -> Result<ConnectionInfo, SettingsError> {
    let t = &settings.tls;
    let given = t.root_cert.as_ref().or(t.cert.as_ref()).or(t.key.as_ref());
    let ConnectionAddr::TcpTls {
        insecure,
        host,
        port,
        ..
    } = info.addr()
    else {
        return match given {
            Some(s) => Err(SettingsError::Invalid {
                variable: s.origin.clone(),
                value: s.value.clone(),
                expected: format!(
                    "to be unset, or a rediss:// URL in {} (TLS files apply to TLS connections only)",
                    settings.url_var
                ),
            }),
            None => Ok(info),
        };
    };
    pool_core::tls::install_crypto_provider();
    if *insecure {
        tracing::warn!(
            target = %format!("rediss://{host}:{port}"),
            variable = %settings.url_var,
            "TLS certificate verification is OFF (#insecure in the URL): the connection is encrypted but anyone on the path can impersonate the server"
        );
    }
    if given.is_none() {
        return Ok(info);
    }
    let opts = t.load(pool_core::tls::SslMode::Require)?;
    let certs = TlsCertificates {
        client_tls: opts.client_pem().map(|(cert, key)| ClientTlsConfig {
            client_cert: cert.to_vec(),
            client_key: key.to_vec(),
        }),
        // `system` (no file): redis-rs's default, the OS roots.
        root_cert: opts.root_pem().map(<[u8]>::to_vec),
    };
    let client = bb8_redis::redis::Client::build_with_tls(info, certs).map_err(|e| {
        SettingsError::Invalid {
            variable: given.map(|s| s.origin.clone()).unwrap_or_default(),
            value: given.map(|s| s.value.clone()).unwrap_or_default(),
            // redis-rs's parse errors name the PEM problem, never its content.
            expected: format!(
                "usable TLS files ({})",
                e.detail().unwrap_or("rejected by redis-rs")
            ),
        }
    })?;
    Ok(client.get_connection_info().clone())
}

/// `redis://[user@]host:port/db`, never with the password.
pub fn target_of(info: &ConnectionInfo) -> String {
    let r = info.redis_settings();
    let user = r.username().map(|u| format!("{u}@")).unwrap_or_default();
    let addr = match info.addr() {
        ConnectionAddr::Tcp(host, port) => format!("redis://{user}{host}:{port}"),
        ConnectionAddr::TcpTls { host, port, .. } => format!("rediss://{user}{host}:{port}"),
        ConnectionAddr::Unix(path) => format!("redis+unix://{}", path.display()),
        _ => "redis://?".to_string(),
    };
    format!("{addr}/{}", r.db())
}

impl RedisManager {
    /// Runs the init commands on a connection.
    async fn run_init(&self, conn: &mut MultiplexedConnection) -> Result<(), RedisError> {
        for command in &self.init_commands {
            let mut cmd = bb8_redis::redis::cmd(&command[0]);
            cmd.arg(&command[1..]);
            cmd.query_async::<bb8_redis::redis::Value>(conn).await?;
        }
        Ok(())
    }

    /// `RESET`, then what the connection was configured with: `AUTH` (or
    /// `HELLO 3 AUTH` on RESP3, since `RESET` goes back to RESP2), the
    /// URL's `SELECT`, then the init commands (`CLIENT SETNAME`, ...).
    async fn reset_session(&self, conn: &mut MultiplexedConnection) -> Result<(), RedisError> {
        use bb8_redis::redis::{cmd, Value};
        cmd("RESET").query_async::<Value>(&mut *conn).await?;
        let r = self.info.redis_settings();
        let resp3 = r.protocol() == ProtocolVersion::RESP3;
        if resp3 {
            let mut hello = cmd("HELLO");
            hello.arg(3);
            if let Some(pw) = r.password() {
                hello
                    .arg("AUTH")
                    .arg(r.username().unwrap_or("default"))
                    .arg(pw);
            }
            hello.query_async::<Value>(&mut *conn).await?;
        } else if let Some(pw) = r.password() {
            let mut auth = cmd("AUTH");
            if let Some(user) = r.username() {
                auth.arg(user);
            }
            auth.arg(pw).query_async::<Value>(&mut *conn).await?;
        }
        if r.db() != 0 {
            cmd("SELECT")
                .arg(r.db())
                .query_async::<Value>(&mut *conn)
                .await?;
        }
        self.run_init(conn).await
    }
}

impl Manager for RedisManager {
    type Connection = RedisConn;
    type Error = RedisError;

    async fn connect(&self) -> Result<RedisConn, RedisError> {
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let mut conn = RedisConn::new(conn, self.db, self.command_timeout.clone());
        // Redis accepts connections while it loads its dataset and answers
        // every command with -LOADING; a PING proves the new connection
        // is usable before anyone gets it.
        self.ping(&mut conn).await?;
        Ok(conn)
    }

    async fn after_connect(&self, conn: &mut RedisConn) -> Result<(), RedisError> {
        self.run_init(&mut conn.inner).await?;
        if let Some(hook) = &self.init_hook {
            hook(&mut conn.inner).await?;
        }
        Ok(())
    }

    async fn ping(&self, conn: &mut RedisConn) -> Result<(), RedisError> {
        let pong: String = redis::cmd("PING").query_async(conn).await?;
        match pong.as_str() {
            "PONG" => Ok(()),
            _ => Err((
                redis::ErrorKind::UnexpectedReturnType,
                "PING did not answer PONG",
            )
                .into()),
        }
    }

    /// Free: what the caller left is what [`RedisConn`] noted as the
    /// commands passed. A request still in flight (a dropped `BLPOP`) would
    /// hold up every later command on the multiplexed connection: closed.
    fn on_return(&self, conn: &mut RedisConn) -> Returned {
        if conn.in_flight > 0 {
            return Returned::Close;
        }
        match self.reset {
            ResetOnReturn::None => Returned::Clean,
            ResetOnReturn::Rollback if conn.left.is_clean() => Returned::Clean,
            _ => Returned::Reset,
        }
    }

    /// `rollback`: `DISCARD` an open `MULTI`, `UNWATCH`, `SELECT` the
    /// configured database, as needed. `discard`: `RESET`, then the
    /// configured `AUTH`, `SELECT` and init commands.
    async fn reset(&self, conn: &mut RedisConn, how: Returned) -> Result<Returned, RedisError> {
        use bb8_redis::redis::{cmd, Value};
        let _ = how;
        let left = conn.left;
        let inner = &mut conn.inner;
        if self.reset == ResetOnReturn::Discard {
            self.reset_session(inner).await?;
        } else {
            if left.multi {
                match cmd("DISCARD").query_async::<Value>(&mut *inner).await {
                    // Not in a MULTI after all (it failed): fine.
                    Err(e)
                        if e.kind()
                            == bb8_redis::redis::ErrorKind::Server(
                                bb8_redis::redis::ServerErrorKind::ResponseError,
                            ) => {}
                    other => {
                        other?;
                    }
                }
            }
            if left.watch && !left.multi {
                cmd("UNWATCH").query_async::<Value>(&mut *inner).await?;
            }
            if left.db {
                cmd("SELECT")
                    .arg(self.db)
                    .query_async::<Value>(&mut *inner)
                    .await?;
            }
        }
        conn.left = Default::default();
        Ok(Returned::Reset)
    }

    fn is_closed(&self, conn: &RedisConn) -> bool {
        // redis-rs does not expose whether a multiplexed connection's
        // driver has stopped, but its errors say when the connection
        // dropped; `RedisConn` remembers (and a command timeout).
        conn.is_closed()
    }

    fn classify(&self, error: &RedisError) -> ErrorClass {
        crate::classify(error)
    }

    fn error_message(&self, error: &RedisError) -> String {
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

    fn settings(url: &str) -> PoolSettings {
        SettingsSource::new("REDIS_", "REDIS_URL")
            .vars([("REDIS_URL", url)])
            .load()
            .unwrap()
    }

    #[test]
    fn bad_urls_name_the_variable_and_hide_the_password() {
        for url in [
            "redis://:hunter2@cache:notaport/0",
            "http://:hunter2@cache/0",
            "redis://:hunter2@cache/notadb",
        ] {
            let err = RedisManager::new(&settings(url))
                .expect_err(url)
                .to_string();
            assert!(err.contains("REDIS_URL"), "{url}: {err}");
            assert!(!err.contains("hunter2"), "{url}: {err}");
        }
    }

    #[test]
    fn init_commands_are_split_into_commands_and_arguments() {
        assert_eq!(
            init_commands(Some(" SELECT 2 ;CLIENT SETNAME  api;; ")),
            vec![vec!["SELECT", "2"], vec!["CLIENT", "SETNAME", "api"]]
        );
        assert!(init_commands(None).is_empty());
    }

    #[test]
    fn target_hides_the_password() {
        let m = RedisManager::new(&settings("redis://bob:hunter2@cache:6380/2")).unwrap();
        assert_eq!(m.target(), "redis://bob@cache:6380/2");
        assert!(!format!("{m:?}").contains("hunter2"));
        let m = RedisManager::new(&settings("redis://:hunter2@cache")).unwrap();
        assert_eq!(m.target(), "redis://cache:6379/0");
    }

    #[test]
    fn settings_built_in_code_name_redis_url() {
        let mut s = PoolSettings::new("cache");
        let err = crate::build_pool(s.clone()).unwrap_err().to_string();
        assert_eq!(err, "REDIS_URL is not set");
        s.url = Some(pool_core::redact::SecretUrl::new(
            "redis://:hunter2@cache:x/0",
        ));
        let err = crate::build_pool(s).unwrap_err().to_string();
        assert!(
            err.contains("REDIS_URL") && !err.contains("DATABASE_URL"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let s = crate::settings_builder()
            .url("redis://cache/0?protocl=3")
            .build()
            .unwrap();
        let err = crate::build_pool(s).unwrap_err().to_string();
        assert!(
            err.contains("REDIS_URL") && err.contains("unknown option 'protocl'"),
            "{err}"
        );
    }

    #[test]
    fn every_url_form_connects_where_it_says() {
        let m =
            RedisManager::new(&settings("unix:///run/r.sock?db=3&pass=hunter2&user=bob")).unwrap();
        assert_eq!(m.info.addr(), &ConnectionAddr::Unix("/run/r.sock".into()));
        assert_eq!(m.info.redis_settings().db(), 3);
        assert_eq!(m.info.redis_settings().password(), Some("hunter2"));
        assert_eq!(m.info.redis_settings().username(), Some("bob"));
        let m = RedisManager::new(&settings("redis://bob:p%40ss@[::1]:7000/4?protocol=3")).unwrap();
        assert_eq!(m.info.addr(), &ConnectionAddr::Tcp("::1".into(), 7000));
        assert_eq!(m.info.redis_settings().password(), Some("p@ss"));
        assert_eq!(m.info.redis_settings().db(), 4);
        let m = RedisManager::new(&settings("redis://:raw@pw#x@cache")).unwrap();
        assert_eq!(m.info.redis_settings().password(), Some("raw@pw#x"));
        assert_eq!(m.target(), "redis://cache:6379/0");
    }
}
