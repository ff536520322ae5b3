//! Turning a URL into a readiness probe.
//!
//! URLs are read by the pools' one grammar ([`pool_core::url`]):
//! `postgres://`, `postgresql://` and libpq `key=value` strings become a
//! [`PgProbe`] (authenticated `SELECT 1`), `redis://`, `rediss://`,
//! `unix://` and `redis+unix://` a [`RedisProbe`] (`AUTH` + `PING`), and
//! `tcp://HOST:PORT` (or a bare `HOST:PORT`) a [`TcpProbe`] (DNS + connect).
//! Parsing errors never show a password.

use pool_core::redact::{redact_url, SecretUrl};
use pool_core::startup::{Endpoint, Failure, Probe, Ready, WaitError, WaitOptions};
use pool_core::tls::{Sourced, TlsSettings};
use pool_core::{Backend, ConnUrl, PoolSettings, SettingsError};
use pool_postgres::PgProbe;
use pool_redis::RedisProbe;
use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// Where a target came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The n-th positional argument (1-based).
    Arg(usize),
    /// An environment variable.
    Env(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Arg(n) => write!(f, "TARGET #{n}"),
            Source::Env(var) => write!(f, "${var}"),
        }
    }
}

/// A URL that cannot become a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    /// Where it came from.
    pub source: Source,
    /// The URL, redacted.
    pub url: String,
    /// Why it is rejected.
    pub reason: String,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} '{}': {}", self.source, self.url, self.reason)
    }
}

impl std::error::Error for TargetError {}

/// The kind of service behind a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// PostgreSQL.
    Postgres,
    /// Redis.
    Redis,
    /// A plain TCP port.
    Tcp,
}

/// A service to wait for.
#[derive(Debug, Clone)]
pub enum Target {
    /// PostgreSQL: authenticated `SELECT 1`.
    Postgres(PgProbe),
    /// Redis: `AUTH` + `PING`.
    Redis(RedisProbe),
    /// DNS + TCP connect only.
    Tcp(TcpProbe),
}

impl Target {
    /// Parses `url`; `attempt_timeout` bounds the driver's own connect.
    /// No TLS files (see [`Target::parse_tls`]).
    #[cfg(test)]
    pub fn parse(
        url: &str,
        source: Source,
        attempt_timeout: Duration,
    ) -> Result<Self, TargetError> {
        Self::parse_tls(url, source, attempt_timeout, &TlsInputs::default())
    }

    /// Parses `url` with the TLS settings of its scheme's prefix (`DB_`
    /// for PostgreSQL, `REDIS_` for Redis) from `tls`.
    pub fn parse_tls(
        url: &str,
        source: Source,
        attempt_timeout: Duration,
        tls: &TlsInputs,
    ) -> Result<Self, TargetError> {
        let invalid = |reason: String| TargetError {
            source: source.clone(),
            url: redact_url(url),
            reason: redact_url(&reason),
        };
        let trimmed = url.trim();
        if trimmed.is_empty() {
            return Err(invalid("empty URL".into()));
        }
        let scheme = trimmed
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("tcp") => return TcpProbe::parse(trimmed).map(Target::Tcp).map_err(invalid),
            // `HOST:PORT`, as wait-for-it takes it (a libpq `key=value`
            // string has an `=`).
            None if !trimmed.contains('=') => {
                return TcpProbe::parse(&format!("tcp://{trimmed}"))
                    .map(Target::Tcp)
                    .map_err(invalid)
            }
            _ => {}
        }
        // Everything else goes through the pools' one URL grammar.
        let parsed = ConnUrl::parse(trimmed)
            .map_err(|e| invalid(format!("{e}; or tcp://HOST:PORT for a plain port")))?;
        let mut settings = settings(trimmed, &source, attempt_timeout);
        settings.tls = match parsed.backend {
            Backend::Postgres => tls.postgres.clone(),
            // TLS files make sense for rediss:// only (an error otherwise).
            Backend::Redis if parsed.tls => tls.redis.clone(),
            Backend::Redis => TlsSettings::default(),
        };
        match parsed.backend {
            Backend::Postgres => PgProbe::new(&settings)
                .map(Target::Postgres)
                .map_err(|e| invalid(settings_reason(e))),
            Backend::Redis => RedisProbe::new(&settings)
                .map(Target::Redis)
                .map_err(|e| invalid(settings_reason(e))),
        }
    }

    /// The kind of service.
    pub fn kind(&self) -> Kind {
        match self {
            Target::Postgres(_) => Kind::Postgres,
            Target::Redis(_) => Kind::Redis,
            Target::Tcp(_) => Kind::Tcp,
        }
    }

    /// The target, redacted.
    pub fn describe(&self) -> String {
        match self {
            Target::Postgres(p) => p.target(),
            Target::Redis(p) => p.target(),
            Target::Tcp(p) => p.target(),
        }
    }

    /// The TCP endpoints checked before the protocol.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        match self {
            Target::Postgres(p) => p.endpoints(),
            Target::Redis(p) => p.endpoints(),
            Target::Tcp(p) => p.endpoints(),
        }
    }

    /// Waits until the target is ready (see [`pool_core::startup`]).
    pub async fn wait(&self, opts: &WaitOptions) -> Result<Ready, WaitError> {
        match self {
            Target::Postgres(p) => pool_core::startup::wait_ready(p, opts).await,
            Target::Redis(p) => pool_core::startup::wait_ready(p, opts).await,
            Target::Tcp(p) => pool_core::startup::wait_ready(p, opts).await,
        }
    }
}

/// Settings carrying only the URL and the connect timeout: the probes take
/// their connection options from them.
fn settings(url: &str, source: &Source, attempt_timeout: Duration) -> PoolSettings {
    let mut s = PoolSettings::new("wait-for-db");
    s.url = Some(SecretUrl::new(url));
    s.url_var = source.to_string();
    s.connect_timeout = attempt_timeout;
    s
}

/// The TLS settings of each backend: the variables of its prefix, then
/// `--tls-ca`, `--tls-cert`, `--tls-key` over them.
#[derive(Debug, Clone, Default)]
pub struct TlsInputs {
    /// For PostgreSQL targets (`DB_SSLMODE`, `DB_SSLROOTCERT`,
    /// `DB_SSLCERT`, `DB_SSLKEY`).
    pub postgres: TlsSettings,
    /// For `rediss://` targets (`REDIS_TLS_CA_FILE`,
    /// `REDIS_TLS_CERT_FILE`, `REDIS_TLS_KEY_FILE`).
    pub redis: TlsSettings,
}

impl TlsInputs {
    /// Reads the variables from the process environment (a variable that
    /// is not UTF-8 is ignored here; the pools report it) and applies the
    /// flags.
    pub fn from_env(flags: &crate::cli::TlsArgs) -> TlsInputs {
        Self::from_lookup(flags, |name| {
            pool_core::settings::env::var(name).ok().flatten()
        })
    }

    /// Like [`from_env`](Self::from_env) with another source of variables.
    pub fn from_lookup(
        flags: &crate::cli::TlsArgs,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> TlsInputs {
        let get = |name: &str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| Sourced::new(v.trim(), name))
        };
        let flag = |value: &Option<String>, name: &str| {
            value.as_ref().map(|v| Sourced::new(v.trim(), name))
        };
        let mut postgres = TlsSettings {
            mode: get("DB_SSLMODE"),
            root_cert: get("DB_SSLROOTCERT"),
            cert: get("DB_SSLCERT"),
            key: get("DB_SSLKEY"),
        };
        let mut redis = TlsSettings {
            mode: None,
            root_cert: get("REDIS_TLS_CA_FILE"),
            cert: get("REDIS_TLS_CERT_FILE"),
            key: get("REDIS_TLS_KEY_FILE"),
        };
        for t in [&mut postgres, &mut redis] {
            if let Some(v) = flag(&flags.tls_ca, "--tls-ca") {
                t.root_cert = Some(v);
            }
            if let Some(v) = flag(&flags.tls_cert, "--tls-cert") {
                t.cert = Some(v);
            }
            if let Some(v) = flag(&flags.tls_key, "--tls-key") {
                t.key = Some(v);
            }
        }
        TlsInputs { postgres, redis }
    }
}

fn settings_reason(e: SettingsError) -> String {
    match e {
        SettingsError::InvalidUrl { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// Reads the targets without TLS files (see [`from_args_or_env_tls`]).
#[cfg(test)]
pub fn from_args_or_env(
    args: &[String],
    lookup: impl Fn(&str) -> Result<Option<String>, SettingsError>,
    attempt_timeout: Duration,
) -> Result<Vec<Target>, TargetError> {
    from_args_or_env_tls(args, lookup, attempt_timeout, &TlsInputs::default())
}

/// Reads the targets: the arguments, or else `DATABASE_URL` and `REDIS_URL`.
/// `lookup` reads a variable (the process environment in the binary); a
/// variable that is not UTF-8 is an error naming it.
pub fn from_args_or_env_tls(
    args: &[String],
    lookup: impl Fn(&str) -> Result<Option<String>, SettingsError>,
    attempt_timeout: Duration,
    tls: &TlsInputs,
) -> Result<Vec<Target>, TargetError> {
    if !args.is_empty() {
        return args
            .iter()
            .enumerate()
            .map(|(i, url)| Target::parse_tls(url, Source::Arg(i + 1), attempt_timeout, tls))
            .collect();
    }
    let mut targets = Vec::new();
    for var in [pool_postgres::URL_VAR, pool_redis::URL_VAR] {
        let value = lookup(var).map_err(|e| match e {
            SettingsError::NotUtf8 { value, .. } => TargetError {
                source: Source::Env(var),
                url: value,
                reason: "not valid UTF-8 (bad bytes shown as \u{FFFD}); set it to UTF-8 text"
                    .into(),
            },
            other => TargetError {
                source: Source::Env(var),
                url: String::new(),
                reason: other.to_string(),
            },
        })?;
        if let Some(url) = value.filter(|u| !u.trim().is_empty()) {
            targets.push(Target::parse_tls(
                &url,
                Source::Env(var),
                attempt_timeout,
                tls,
            )?);
        }
    }
    Ok(targets)
}

/// DNS + TCP connect to one `host:port`: for services without a protocol
/// check (or whose protocol this tool does not speak).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpProbe {
    endpoint: Endpoint,
}

impl TcpProbe {
    /// Parses `tcp://HOST:PORT` (IPv6 literals in brackets).
    pub fn parse(url: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{e}"))?;
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err("no host given (tcp://HOST:PORT)".into()),
        };
        let port = parsed
            .port()
            .ok_or_else(|| "no port given (tcp://HOST:PORT)".to_string())?;
        if port == 0 {
            return Err("port 0 is not a port to connect to".into());
        }
        if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
            return Err("a tcp:// target is only HOST:PORT (no path or query)".into());
        }
        Ok(TcpProbe {
            endpoint: Endpoint { host, port },
        })
    }
}

impl Probe for TcpProbe {
    fn target(&self) -> String {
        let host = &self.endpoint.host;
        if host.contains(':') {
            format!("tcp://[{host}]:{}", self.endpoint.port)
        } else {
            format!("tcp://{host}:{}", self.endpoint.port)
        }
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        vec![self.endpoint.clone()]
    }

    async fn check(&self) -> Result<(), Failure> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    fn parse(url: &str) -> Result<Target, TargetError> {
        Target::parse(url, Source::Arg(1), T)
    }

    #[test]
    fn schemes_pick_the_probe() {
        assert_eq!(
            parse("postgres://u:pw@db:5433/app").unwrap().kind(),
            Kind::Postgres
        );
        assert_eq!(
            parse("postgresql://u@db/app").unwrap().kind(),
            Kind::Postgres
        );
        assert_eq!(
            parse("redis://:pw@cache:6380/1").unwrap().kind(),
            Kind::Redis
        );
        assert_eq!(parse("tcp://mq:5672").unwrap().kind(), Kind::Tcp);
        assert_eq!(parse("mq:5672").unwrap().kind(), Kind::Tcp);
        assert_eq!(
            parse("tcp://[::1]:80").unwrap().describe(),
            "tcp://[::1]:80"
        );
    }

    #[test]
    fn targets_are_described_without_passwords() {
        let t = parse("postgres://app:hunter2@db:5433/app").unwrap();
        assert_eq!(t.describe(), "postgres://app@db:5433/app");
        assert_eq!(
            t.endpoints(),
            [Endpoint {
                host: "db".into(),
                port: 5433
            }]
        );
        let t = parse("redis://:hunter2@cache/0").unwrap();
        assert!(!t.describe().contains("hunter2"));
    }

    #[test]
    fn bad_urls_are_rejected_without_the_password() {
        for url in [
            "http://u:hunter2@db/app",
            "postgres://u:hunter2@db:notaport/app",
            "redis://:hunter2@cache:notaport/0",
            "tcp://db",
            "tcp://db:5432/path",
            "",
        ] {
            let err = parse(url).expect_err(url).to_string();
            assert!(err.contains("TARGET #1"), "{url}: {err}");
            assert!(!err.contains("hunter2"), "{url}: {err}");
        }
    }

    #[test]
    fn environment_fallback_reads_both_variables() {
        let env = |var: &str| {
            Ok(match var {
                "DATABASE_URL" => Some("postgres://u@db/app".to_string()),
                "REDIS_URL" => Some("redis://cache".to_string()),
                _ => None,
            })
        };
        let targets = from_args_or_env(&[], env, T).unwrap();
        let kinds: Vec<Kind> = targets.iter().map(Target::kind).collect();
        assert_eq!(kinds, [Kind::Postgres, Kind::Redis]);
        assert!(from_args_or_env(&[], |_| Ok(None), T).unwrap().is_empty());
        let err = from_args_or_env(&[], |_| Ok(Some("nope://x".into())), T).unwrap_err();
        assert!(err.to_string().contains("$DATABASE_URL"), "{err}");
    }
}
