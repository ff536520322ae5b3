//! Pool settings with SQLAlchemy `QueuePool` semantics, read from the
//! environment (optionally over a TOML file) or built in code.
//!
//! Every variable carries a prefix so that one application can run several
//! pools (`DB_`, `REPLICA_`, `REDIS_`). The variables, their defaults,
//! parsers and doc lines are one table, [`vars::VARS`]; the reference in
//! `docs/configuration.md` is generated from it and kept in step by a test.
//!
//! The URL comes from a variable named by the backend (`DATABASE_URL`,
//! `REDIS_URL`); `<PREFIX>URL` (`DB_URL`) is read when that one is unset
//! (the backend's variable wins when both are set), and an error names the
//! variable that held the value.
//!
//! Values are checked once, when loading; a bad one is a [`SettingsError`]
//! naming the variable and the value. Every number is bounded
//! ([`value::MAX_CONNECTIONS`], durations from 1 ms to a year).
//!
//! The `config` crate reads the optional TOML file; the environment is read
//! by [`env`](mod@env), because `config`'s `Environment` panics on any non-UTF-8
//! variable and maps `DB_URL` silently.

pub mod builder;
pub mod env;
pub mod value;
pub mod vars;

pub use builder::SettingsBuilder;

use crate::error::SettingsError;
use crate::redact::SecretUrl;
use crate::RetryPolicy;
use config::{Config, File, FileFormat};
use serde::Serialize;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;
use value::Value;
use vars::{env_name, VARS};

/// Serde helpers writing durations as float seconds, as they are configured.
pub(crate) mod secs {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub mod option {
        use serde::Serializer;
        use std::time::Duration;

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_f64(d.as_secs_f64()),
                None => s.serialize_none(),
            }
        }
    }
}

/// How many connections the pool may open beyond `pool_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// At most this many extra connections (SQLAlchemy `max_overflow >= 0`).
    Limited(u32),
    /// No limit (SQLAlchemy `max_overflow = -1`); checkouts never wait for a
    /// free slot.
    Unlimited,
}

/// What the pool does to a connection a caller hands back, before anyone
/// else may have it (SQLAlchemy's `reset_on_return`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetOnReturn {
    /// Undo what the caller left behind, with a round trip only when it
    /// left something: PostgreSQL rolls back a transaction left open or
    /// aborted; Redis discards an open `MULTI`, unwatches a `WATCH` and
    /// selects the configured database again.
    Rollback,
    /// Reset the whole session every time: PostgreSQL `DISCARD ALL` (after
    /// a rollback when needed); Redis `RESET`, then the configured `SELECT`,
    /// `AUTH` and `CLIENT SETNAME` again.
    Discard,
    /// Leave the session as the caller left it. A request still in flight
    /// is still ended before anyone else gets the connection.
    None,
}

impl ResetOnReturn {
    /// The names, as configured.
    pub const NAMES: [&'static str; 3] = ["rollback", "discard", "none"];

    /// Parses a configured name (case-insensitive).
    pub fn parse(text: &str) -> Option<ResetOnReturn> {
        match text.trim().to_ascii_lowercase().as_str() {
            "rollback" => Some(ResetOnReturn::Rollback),
            "discard" => Some(ResetOnReturn::Discard),
            "none" => Some(ResetOnReturn::None),
            _ => None,
        }
    }
}

/// Validated settings of one pool.
#[derive(Debug, Clone, Serialize)]
pub struct PoolSettings {
    /// Name used in logs, metrics and errors.
    pub name: String,
    /// Where to connect (redacted whenever shown).
    pub url: Option<SecretUrl>,
    /// The variable the URL came from, for error messages; empty for
    /// settings built in code (the backend fills in its own variable).
    pub url_var: String,
    /// Connections kept open.
    pub pool_size: u32,
    /// Extra connections allowed under load.
    pub max_overflow: Overflow,
    /// Bound on a whole checkout.
    #[serde(with = "secs")]
    pub pool_timeout: Duration,
    /// Age after which a connection is replaced at checkout.
    #[serde(with = "secs::option")]
    pub pool_recycle: Option<Duration>,
    /// Validate connections before handing them out.
    pub pre_ping: bool,
    /// A connection used successfully within this window is not pinged.
    #[serde(with = "secs")]
    pub pre_ping_window: Duration,
    /// Bound on one validation ping.
    #[serde(with = "secs")]
    pub validation_timeout: Duration,
    /// Bound on one connection attempt.
    #[serde(with = "secs")]
    pub connect_timeout: Duration,
    /// Redis: bound on the wait for each command's answer (a blocking
    /// command's own timeout is added); `None` = no limit.
    #[serde(with = "secs::option")]
    pub command_timeout: Option<Duration>,
    /// Idle time before TCP keepalive probes; `None` = off.
    #[serde(with = "secs::option")]
    pub tcp_keepalive: Option<Duration>,
    /// `TCP_USER_TIMEOUT`: how long unacknowledged data may wait before the
    /// kernel gives the connection up; `None` = off.
    #[serde(with = "secs::option")]
    pub tcp_user_timeout: Option<Duration>,
    /// Backoff between connect attempts.
    pub retry: RetryPolicy,
    /// While the server is down (the last connect attempt failed), a
    /// checkout that needs a new connection fails at once with
    /// [`PoolError::Unavailable`](crate::PoolError::Unavailable) instead of
    /// retrying until `pool_timeout`; the pool tries again after the shared
    /// backoff (PgBouncer's `server_login_retry`).
    pub fail_fast: bool,
    /// Checkouts slower than this are logged as warnings.
    #[serde(with = "secs")]
    pub slow_checkout: Duration,
    /// TLS as configured by variables (`DB_SSLMODE`, `DB_SSLROOTCERT`,
    /// `REDIS_TLS_CA_FILE`, ...); each backend merges its URL's own
    /// parameters in (see [`crate::tls`]).
    pub tls: crate::tls::TlsSettings,
    /// Connections kept open and idle by the housekeeper (HikariCP
    /// `minimumIdle`, pgxpool `MinIdleConns`); never above `pool_size`.
    pub min_idle: u32,
    /// Idle connections above `min_idle` unused for longer are closed by the
    /// housekeeper (HikariCP `idleTimeout`, pgxpool `MaxConnIdleTime`).
    #[serde(with = "secs::option")]
    pub idle_timeout: Option<Duration>,
    /// Idle connections unused for this long are pinged by the housekeeper
    /// (HikariCP `keepaliveTime`, pgxpool `HealthCheckPeriod`).
    #[serde(with = "secs::option")]
    pub keepalive: Option<Duration>,
    /// A connection checked out for longer is reported once as a possible
    /// leak (HikariCP `leakDetectionThreshold`).
    #[serde(with = "secs::option")]
    pub leak_threshold: Option<Duration>,
    /// The longest time between two housekeeping runs (HikariCP's
    /// housekeeper runs every 30 s). The housekeeper runs at least four
    /// times per shortest upkeep period (idle timeout, keepalive, leak
    /// threshold, `pool_recycle`), whichever is more often. Code only; no
    /// variable.
    #[serde(with = "secs")]
    pub housekeeping_period: Duration,
    /// Run on every new connection before its first use
    /// (`DB_CONNECT_INIT_SQL`: SQL statements; `REDIS_CONNECT_INIT_COMMANDS`:
    /// Redis commands; both `;`-separated).
    pub connect_init: Option<String>,
    /// What happens to a returned connection before its next use.
    pub reset_on_return: ResetOnReturn,
}

impl PoolSettings {
    /// Defaults (the `default` column of the variable table) for a pool
    /// named `name`, with no URL.
    pub fn new(name: impl Into<String>) -> Self {
        let mut s = PoolSettings {
            name: name.into(),
            url: None,
            url_var: String::new(),
            pool_size: 0,
            max_overflow: Overflow::Unlimited,
            pool_timeout: Duration::ZERO,
            pool_recycle: None,
            pre_ping: false,
            pre_ping_window: Duration::ZERO,
            validation_timeout: Duration::ZERO,
            connect_timeout: Duration::ZERO,
            command_timeout: None,
            tcp_keepalive: None,
            tcp_user_timeout: None,
            retry: RetryPolicy::default(),
            fail_fast: false,
            slow_checkout: Duration::ZERO,
            tls: crate::tls::TlsSettings::default(),
            min_idle: 0,
            idle_timeout: None,
            keepalive: None,
            leak_threshold: None,
            housekeeping_period: Duration::from_secs(30),
            connect_init: None,
            reset_on_return: ResetOnReturn::Rollback,
        };
        for var in VARS.iter().filter(|v| !v.default.is_empty()) {
            let default = Value {
                origin: var.key.into(),
                text: var.default.into(),
            };
            // Every default parses: `defaults_parse` tests it.
            let _ = (var.apply)(&mut s, &default);
        }
        s
    }

    /// A builder starting from the defaults (see [`SettingsBuilder`]).
    pub fn builder() -> SettingsBuilder {
        SettingsBuilder::new("db")
    }

    /// The most connections open at once, `None` when overflow is unlimited.
    pub fn max_size(&self) -> Option<u32> {
        match self.max_overflow {
            Overflow::Limited(n) => Some(self.pool_size.saturating_add(n)),
            Overflow::Unlimited => None,
        }
    }

    /// `max_overflow` as SQLAlchemy writes it (`-1` = unlimited).
    pub fn max_overflow_value(&self) -> i64 {
        match self.max_overflow {
            Overflow::Limited(n) => i64::from(n),
            Overflow::Unlimited => -1,
        }
    }

    /// The URL, or an error naming the variable that should hold it.
    pub fn require_url(&self) -> Result<&SecretUrl, SettingsError> {
        self.url.as_ref().ok_or_else(|| SettingsError::Missing {
            variable: match self.url_var.as_str() {
                "" => "the pool's URL (builder .url(...))".into(),
                var => var.to_string(),
            },
        })
    }

    /// How often the housekeeper runs, `None` when no upkeep feature is on
    /// (no `min_idle`, idle timeout, keepalive, leak threshold or
    /// `pool_recycle`): then no housekeeping task exists.
    pub fn upkeep_period(&self) -> Option<Duration> {
        let periods = [
            self.idle_timeout,
            self.keepalive,
            self.leak_threshold,
            self.pool_recycle,
        ];
        let shortest = periods.into_iter().flatten().min();
        if shortest.is_none() && self.min_idle == 0 {
            return None;
        }
        let mut period = self.housekeeping_period;
        if let Some(d) = shortest {
            period = period.min(d / 4);
        }
        Some(period.max(Duration::from_millis(10)))
    }

    /// Reads settings from the process environment.
    pub fn from_env(prefix: &str, url_var: &str) -> Result<Self, SettingsError> {
        SettingsSource::new(prefix, url_var).load()
    }
}

/// Checks what the parsers cannot see alone: bounds of values set in code,
/// and rules across settings. `name(key)` says where a setting came from.
pub(crate) fn validate(
    s: &PoolSettings,
    name: &dyn Fn(&str) -> String,
) -> Result<(), SettingsError> {
    use value::{count_in_bounds, duration_in_bounds};
    let invalid = |key: &str, value: String, expected: String| SettingsError::Invalid {
        variable: name(key),
        value,
        expected,
    };
    let secs = |d: &Duration| format!("{}", d.as_secs_f64());
    count_in_bounds(s.pool_size, 1)
        .map_err(|e| invalid("pool_size", s.pool_size.to_string(), e))?;
    if let Overflow::Limited(n) = s.max_overflow {
        count_in_bounds(n, 0).map_err(|e| invalid("max_overflow", n.to_string(), e))?;
    }
    let durations = [
        ("pool_timeout", Some(s.pool_timeout)),
        ("pool_recycle", s.pool_recycle),
        ("pool_validation_timeout", Some(s.validation_timeout)),
        ("connect_timeout", Some(s.connect_timeout)),
        ("command_timeout", s.command_timeout),
        ("tcp_keepalive", s.tcp_keepalive),
        ("tcp_user_timeout", s.tcp_user_timeout),
        ("retry_initial_delay", Some(s.retry.initial)),
        ("retry_max_delay", Some(s.retry.max)),
        ("slow_checkout", Some(s.slow_checkout)),
        ("pool_idle_timeout", s.idle_timeout),
        ("pool_keepalive", s.keepalive),
        ("pool_leak_threshold", s.leak_threshold),
        (
            "pool_pre_ping_window",
            Some(s.pre_ping_window).filter(|d| !d.is_zero()),
        ),
    ];
    for (key, d) in durations {
        if let Some(d) = d {
            duration_in_bounds(d).map_err(|e| invalid(key, secs(&d), e))?;
        }
    }
    if s.retry.max < s.retry.initial {
        return Err(invalid(
            "retry_max_delay",
            secs(&s.retry.max),
            format!(
                "at least {} ({}), the first delay",
                name("retry_initial_delay"),
                secs(&s.retry.initial)
            ),
        ));
    }
    if s.min_idle > s.pool_size {
        return Err(invalid(
            "pool_min_idle",
            s.min_idle.to_string(),
            format!(
                "a whole number from 0 to {} ({}, the pool size)",
                name("pool_size"),
                s.pool_size
            ),
        ));
    }
    if s.name.trim().is_empty() {
        return Err(invalid(
            "pool_name",
            s.name.clone(),
            "a non-empty name".into(),
        ));
    }
    Ok(())
}

/// Where settings come from: environment variables with a prefix, optionally
/// over a TOML file (the environment wins).
#[derive(Debug, Clone)]
pub struct SettingsSource {
    prefix: String,
    url_var: String,
    file: Option<PathBuf>,
    vars: Option<Vec<(OsString, OsString)>>,
}

impl SettingsSource {
    /// Settings under `prefix` (`"DB_"`, `"REDIS_"`; a missing trailing `_`
    /// is added) with the URL in `url_var`.
    pub fn new(prefix: &str, url_var: &str) -> Self {
        let mut prefix = prefix.to_ascii_uppercase();
        if !prefix.ends_with('_') {
            prefix.push('_');
        }
        SettingsSource {
            prefix,
            url_var: url_var.to_string(),
            file: None,
            vars: None,
        }
    }

    /// Also read a TOML file (keys without the prefix: `pool_size = 8`,
    /// `url = "..."`); environment variables override it.
    pub fn file(mut self, path: impl AsRef<Path>) -> Self {
        self.file = Some(path.as_ref().to_path_buf());
        self
    }

    /// Read these variables instead of the process environment (tests,
    /// embedding).
    pub fn vars<K: Into<String>, V: Into<String>>(
        self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.vars_os(
            vars.into_iter()
                .map(|(k, v)| (OsString::from(k.into()), OsString::from(v.into()))),
        )
    }

    /// Like [`SettingsSource::vars`], with values that need not be UTF-8.
    pub fn vars_os(mut self, vars: impl IntoIterator<Item = (OsString, OsString)>) -> Self {
        self.vars = Some(vars.into_iter().collect());
        self
    }

    /// `<PREFIX>URL`, read when the URL variable is unset.
    fn prefix_url_var(&self) -> String {
        env_name(&self.prefix, "url")
    }

    /// Loads and validates.
    pub fn load(&self) -> Result<PoolSettings, SettingsError> {
        let prefix_url = self.prefix_url_var();
        let url_file_var = format!("{}{}", self.url_var, crate::secret_file::FILE_SUFFIX);
        let wanted =
            |n: &str| n.starts_with(&self.prefix) || n == self.url_var || n == url_file_var;
        let env = match &self.vars {
            Some(v) => env::read(v.iter().cloned(), wanted)?,
            None => env::read(std::env::vars_os(), wanted)?,
        };
        self.warn_unknown(&env);
        let file = self.read_file()?;
        let lookup = |key: &str| -> Option<Value> {
            let var = env_name(&self.prefix, key);
            match (env.get(&var), file.get(key)) {
                (Some(text), _) => Some(Value {
                    origin: var,
                    text: text.clone(),
                }),
                (None, Some(text)) => Some(Value {
                    origin: format!(
                        "{key} in {}",
                        self.file.as_deref().unwrap_or(Path::new("")).display()
                    ),
                    text: text.clone(),
                }),
                (None, None) => None,
            }
        };

        let stem = self.prefix.trim_end_matches('_').to_ascii_lowercase();
        let mut s = PoolSettings::new(stem);
        for var in VARS {
            if let Some(value) = lookup(var.key) {
                (var.apply)(&mut s, &value)?;
            }
        }
        // The URL variable, or the file its `_FILE` variable names (a
        // secret), or `<PREFIX>URL`, or the file's `url`.
        let url = match crate::secret_file::lookup(&self.url_var, |k| env.get(k).cloned())? {
            Some(text) => Some(Value {
                origin: if env.contains_key(&self.url_var) {
                    self.url_var.clone()
                } else {
                    url_file_var.clone()
                },
                text,
            }),
            None => lookup("url"),
        };
        if let (Some(u), Some(other)) = (&url, env.get(&prefix_url)) {
            if u.origin != prefix_url && other.trim() != u.text.trim() {
                tracing::warn!(
                    used = %u.origin,
                    ignored = %prefix_url,
                    "two URL variables are set and differ; {} wins",
                    u.origin
                );
            }
        }
        s.url_var = self.url_var.clone();
        if let Some(u) = url {
            if u.text.trim().is_empty() {
                return Err(SettingsError::Missing { variable: u.origin });
            }
            s.url = Some(SecretUrl::new(u.text.trim()));
            s.url_var = u.origin;
        }
        validate(&s, &|key| env_name(&self.prefix, key))?;
        Ok(s)
    }

    /// A variable that looks like a pool setting but is none is a typo.
    fn warn_unknown(&self, env: &HashMap<String, String>) {
        for name in env.keys() {
            let Some(rest) = name.strip_prefix(&self.prefix) else {
                continue;
            };
            let key = rest.to_ascii_lowercase();
            let looks_like_ours = [
                "pool_", "max_", "connect_", "tcp_", "retry_", "slow_", "ssl", "tls_",
            ]
            .iter()
            .any(|p| key.starts_with(p));
            if looks_like_ours && !VARS.iter().any(|v| v.key == key) {
                tracing::warn!(variable = %name, "unknown pool setting ignored (typo?)");
            }
        }
    }

    /// The file's values as text, keyed as in [`VARS`] (and `url`).
    fn read_file(&self) -> Result<HashMap<String, String>, SettingsError> {
        let Some(path) = &self.file else {
            return Ok(HashMap::new());
        };
        let cfg = Config::builder()
            .add_source(File::from(path.as_path()).format(FileFormat::Toml))
            .build()
            .map_err(|e| SettingsError::Source(redact_config_error(&e)))?;
        let mut out = HashMap::new();
        for key in VARS.iter().map(|v| v.key).chain(["url"]) {
            match cfg.get::<String>(key) {
                Ok(v) => {
                    out.insert(key.to_string(), v);
                }
                Err(config::ConfigError::NotFound(_)) => {}
                Err(e) => return Err(SettingsError::Source(redact_config_error(&e))),
            }
        }
        Ok(out)
    }
}

/// config's errors can quote values; none of ours may quote a URL.
fn redact_config_error(e: &config::ConfigError) -> String {
    crate::redact::redact_url(&e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<PoolSettings, SettingsError> {
        SettingsSource::new("DB_", "DATABASE_URL")
            .vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .load()
    }

    #[test]
    fn defaults_follow_sqlalchemy() {
        let s = load(&[]).unwrap();
        assert_eq!(s.pool_size, 5);
        assert_eq!(s.max_overflow, Overflow::Limited(10));
        assert_eq!(s.max_size(), Some(15));
        assert_eq!(s.pool_timeout, Duration::from_secs(30));
        assert_eq!(s.pool_recycle, None);
        assert!(s.pre_ping);
        assert_eq!(s.name, "db");
        assert!(s.url.is_none());
        let err = s.require_url().unwrap_err().to_string();
        assert!(err.contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn the_redis_command_timeout_is_off_by_default_and_named_in_errors() {
        let redis = |vars: &[(&str, &str)]| {
            SettingsSource::new("REDIS_", "REDIS_URL")
                .vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
                .load()
        };
        assert_eq!(redis(&[]).unwrap().command_timeout, None);
        let s = redis(&[("REDIS_COMMAND_TIMEOUT", "0.25")]).unwrap();
        assert_eq!(s.command_timeout, Some(Duration::from_millis(250)));
        let s = redis(&[("REDIS_COMMAND_TIMEOUT", "0")]).unwrap();
        assert_eq!(s.command_timeout, None);
        for bad in ["-3", "soon", "1e12"] {
            let err = redis(&[("REDIS_COMMAND_TIMEOUT", bad)])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("REDIS_COMMAND_TIMEOUT") && err.contains(bad),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn reads_every_variable() {
        let s = load(&[
            ("DATABASE_URL", "postgres://u:pw@h/db"),
            ("DB_POOL_SIZE", "8"),
            ("DB_MAX_OVERFLOW", "-1"),
            ("DB_POOL_TIMEOUT", "2.5"),
            ("DB_POOL_RECYCLE", "3600"),
            ("DB_POOL_PRE_PING", "off"),
            ("DB_POOL_PRE_PING_WINDOW", "0"),
            ("DB_POOL_VALIDATION_TIMEOUT", "1"),
            ("DB_CONNECT_TIMEOUT", "3"),
            ("DB_TCP_KEEPALIVE", "0"),
            ("DB_TCP_USER_TIMEOUT", "7"),
            ("DB_RETRY_INITIAL_DELAY", "0.1"),
            ("DB_RETRY_MAX_DELAY", "2"),
            ("DB_SLOW_CHECKOUT", "0.25"),
            ("DB_CONNECT_INIT_SQL", " SET search_path = app\n"),
            ("DB_POOL_NAME", "primary"),
        ])
        .unwrap();
        assert_eq!(s.connect_init.as_deref(), Some("SET search_path = app"));
        assert_eq!(s.url.as_ref().unwrap().expose(), "postgres://u:pw@h/db");
        assert_eq!(s.pool_size, 8);
        assert_eq!(s.max_overflow, Overflow::Unlimited);
        assert_eq!(s.max_size(), None);
        assert_eq!(s.max_overflow_value(), -1);
        assert_eq!(s.pool_timeout, Duration::from_millis(2500));
        assert_eq!(s.pool_recycle, Some(Duration::from_secs(3600)));
        assert!(!s.pre_ping);
        assert_eq!(s.pre_ping_window, Duration::ZERO);
        assert_eq!(s.validation_timeout, Duration::from_secs(1));
        assert_eq!(s.connect_timeout, Duration::from_secs(3));
        assert_eq!(s.tcp_keepalive, None);
        assert_eq!(s.tcp_user_timeout, Some(Duration::from_secs(7)));
        assert_eq!(s.retry.initial, Duration::from_millis(100));
        assert_eq!(s.retry.max, Duration::from_secs(2));
        assert_eq!(s.slow_checkout, Duration::from_millis(250));
        assert_eq!(s.name, "primary");
    }

    #[test]
    fn the_prefix_separates_pools() {
        let vars = [
            ("DB_POOL_SIZE", "3"),
            ("REPLICA_POOL_SIZE", "9"),
            ("REPLICA_URL", "postgres://r/db"),
        ];
        let db = SettingsSource::new("DB", "DATABASE_URL")
            .vars(vars)
            .load()
            .unwrap();
        let replica = SettingsSource::new("REPLICA_", "REPLICA_URL")
            .vars(vars)
            .load()
            .unwrap();
        assert_eq!(db.pool_size, 3);
        assert!(db.url.is_none());
        assert_eq!(replica.pool_size, 9);
        assert_eq!(replica.name, "replica");
        assert_eq!(replica.url.unwrap().expose(), "postgres://r/db");
    }

    #[test]
    fn every_bad_value_names_the_variable_and_the_value() {
        let cases = [
            ("DB_POOL_SIZE", "abc"),
            ("DB_POOL_SIZE", "0"),
            ("DB_POOL_SIZE", "-2"),
            ("DB_POOL_SIZE", "2.5"),
            ("DB_MAX_OVERFLOW", "-2"),
            ("DB_MAX_OVERFLOW", "many"),
            ("DB_POOL_TIMEOUT", "-3"),
            ("DB_POOL_TIMEOUT", "0"),
            ("DB_POOL_TIMEOUT", "NaN"),
            ("DB_POOL_TIMEOUT", "inf"),
            ("DB_POOL_TIMEOUT", "1e300"),
            ("DB_POOL_TIMEOUT", "30s"),
            ("DB_POOL_RECYCLE", "0"),
            ("DB_POOL_RECYCLE", "-5"),
            ("DB_POOL_PRE_PING", "maybe"),
            ("DB_POOL_PRE_PING_WINDOW", "-1"),
            ("DB_POOL_VALIDATION_TIMEOUT", "0"),
            ("DB_CONNECT_TIMEOUT", "soon"),
            ("DB_TCP_KEEPALIVE", "-1"),
            ("DB_TCP_USER_TIMEOUT", "x"),
            ("DB_RETRY_INITIAL_DELAY", "0"),
            ("DB_SLOW_CHECKOUT", "-1"),
            ("DB_POOL_NAME", " "),
            ("DB_POOL_MIN_IDLE", "-1"),
            ("DB_POOL_MIN_IDLE", "6"),
            ("DB_POOL_IDLE_TIMEOUT", "-1"),
            ("DB_POOL_KEEPALIVE", "soon"),
            ("DB_POOL_LEAK_THRESHOLD", "-2"),
        ];
        for (var, value) in cases {
            let err = load(&[(var, value)]).expect_err(&format!("{var}={value} accepted"));
            let msg = err.to_string();
            assert!(msg.contains(var), "{var}={value}: {msg}");
            assert!(msg.contains(value.trim()), "{var}={value}: {msg}");
        }
    }

    #[test]
    fn upkeep_settings_default_off_and_read_by_prefix() {
        let s = load(&[]).unwrap();
        assert_eq!(s.min_idle, 0);
        assert_eq!(s.idle_timeout, None);
        assert_eq!(s.keepalive, None);
        assert_eq!(s.leak_threshold, None);
        assert_eq!(s.upkeep_period(), None, "no housekeeper when all is off");
        let s = load(&[
            ("DB_POOL_SIZE", "4"),
            ("DB_POOL_MIN_IDLE", "2"),
            ("DB_POOL_IDLE_TIMEOUT", "600"),
            ("DB_POOL_KEEPALIVE", "120"),
            ("DB_POOL_LEAK_THRESHOLD", "8"),
        ])
        .unwrap();
        assert_eq!(s.min_idle, 2);
        assert_eq!(s.idle_timeout, Some(Duration::from_secs(600)));
        assert_eq!(s.keepalive, Some(Duration::from_secs(120)));
        assert_eq!(s.leak_threshold, Some(Duration::from_secs(8)));
        // A quarter of the shortest period (the leak threshold).
        assert_eq!(s.upkeep_period(), Some(Duration::from_secs(2)));
        let s = load(&[("DB_POOL_MIN_IDLE", "1"), ("DB_POOL_IDLE_TIMEOUT", "0")]).unwrap();
        assert_eq!(s.idle_timeout, None);
        assert_eq!(s.upkeep_period(), Some(Duration::from_secs(30)));
    }

    #[test]
    fn defaults_parse() {
        for var in VARS.iter().filter(|v| !v.default.is_empty()) {
            let mut s = PoolSettings::new("x");
            let v = Value {
                origin: var.key.into(),
                text: var.default.into(),
            };
            (var.apply)(&mut s, &v).unwrap_or_else(|e| panic!("{}: {e}", var.key));
        }
        validate(&PoolSettings::new("x"), &|k| k.to_string()).unwrap();
    }

    #[test]
    fn absurd_numbers_are_errors_not_aborts() {
        for (var, value) in [
            ("DB_POOL_SIZE", "4294967295"),
            ("DB_POOL_SIZE", "10001"),
            ("DB_MAX_OVERFLOW", "4294967295"),
            ("DB_MAX_OVERFLOW", "99999999999"),
            ("DB_POOL_TIMEOUT", "1e-12"),
            ("DB_POOL_TIMEOUT", "0.0001"),
            ("DB_POOL_TIMEOUT", "31536001"),
            ("DB_CONNECT_TIMEOUT", "-inf"),
            ("DB_POOL_RECYCLE", "1e-9"),
            ("DB_TCP_KEEPALIVE", "1e308"),
            ("DB_POOL_PRE_PING_WINDOW", "1e-7"),
            ("DB_SLOW_CHECKOUT", "NaN"),
        ] {
            let err = load(&[(var, value)]).expect_err(&format!("{var}={value} accepted"));
            let msg = err.to_string();
            assert!(msg.contains(var) && msg.contains(value), "{msg}");
            assert!(
                msg.contains("10000") || msg.contains("0.001"),
                "bound not said: {msg}"
            );
        }
        let s = load(&[("DB_POOL_SIZE", "10000"), ("DB_POOL_TIMEOUT", "0.001")]).unwrap();
        assert_eq!(s.pool_size, 10_000);
        assert_eq!(s.pool_timeout, Duration::from_millis(1));
    }

    #[test]
    fn db_url_is_read_when_database_url_is_unset_and_named_in_errors() {
        let s = load(&[("DB_URL", "postgres://u@h/db")]).unwrap();
        assert_eq!(s.url.unwrap().expose(), "postgres://u@h/db");
        assert_eq!(s.url_var, "DB_URL");
        let s = load(&[
            ("DB_URL", "postgres://u@a/db"),
            ("DATABASE_URL", "postgres://u@b/db"),
        ])
        .unwrap();
        assert_eq!(s.url.unwrap().expose(), "postgres://u@b/db");
        assert_eq!(s.url_var, "DATABASE_URL");
        let err = load(&[("DB_URL", " ")]).unwrap_err().to_string();
        assert_eq!(err, "DB_URL is not set");
    }

    #[test]
    fn non_utf8_variables() {
        use std::os::unix::ffi::OsStringExt;
        let bad = |s: &[u8]| OsString::from_vec(s.to_vec());
        // Unrelated ones are ignored, whatever their bytes.
        let s = SettingsSource::new("DB_", "DATABASE_URL")
            .vars_os([
                (
                    OsString::from("UNRELATED_SECRET"),
                    bad(b"Sekrit-\xff-Value"),
                ),
                (bad(b"NAME\xff"), OsString::from("x")),
                (OsString::from("DB_POOL_SIZE"), OsString::from("3")),
            ])
            .load()
            .unwrap();
        assert_eq!(s.pool_size, 3);
        // One we read is an error naming it, redacted.
        let err = SettingsSource::new("DB_", "DATABASE_URL")
            .vars_os([(
                OsString::from("DATABASE_URL"),
                bad(b"postgres://app:Zq1\xffZq2@db/app"),
            )])
            .load()
            .unwrap_err();
        let msg = format!("{err} {err:?}");
        assert!(msg.contains("DATABASE_URL is not valid UTF-8"), "{msg}");
        assert!(msg.contains("postgres://app:***@db/app"), "{msg}");
        assert!(!msg.contains("Zq"), "{msg}");
        let err = SettingsSource::new("DB_", "DATABASE_URL")
            .vars_os([(OsString::from("DB_POOL_SIZE"), bad(b"5\xff"))])
            .load()
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("DB_POOL_SIZE is not valid UTF-8"),
            "{err}"
        );
    }

    #[test]
    fn the_builder_checks_the_same_bounds() {
        let s = PoolSettings::builder()
            .url("redis://:pw@cache/0")
            .url_var("REDIS_URL")
            .pool_size(3)
            .max_overflow(Overflow::Unlimited)
            .pool_timeout(Duration::from_millis(1500))
            .build()
            .unwrap();
        assert_eq!(s.pool_size, 3);
        assert_eq!(s.url_var, "REDIS_URL");
        for b in [
            PoolSettings::builder().pool_size(0),
            PoolSettings::builder().pool_size(u32::MAX),
            PoolSettings::builder().max_overflow(Overflow::Limited(u32::MAX)),
            PoolSettings::builder().pool_timeout(Duration::from_nanos(1)),
            PoolSettings::builder().connect_timeout(Duration::MAX),
            PoolSettings::builder().pool_recycle(Some(Duration::ZERO)),
            PoolSettings::builder().name(" "),
        ] {
            let err = b.build().unwrap_err().to_string();
            assert!(err.contains("(set in code)"), "{err}");
        }
        let err = PoolSettings::builder()
            .build()
            .unwrap()
            .require_url()
            .unwrap_err();
        assert!(!err.to_string().contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn max_delay_below_initial_is_rejected() {
        let err = load(&[("DB_RETRY_INITIAL_DELAY", "2"), ("DB_RETRY_MAX_DELAY", "1")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("DB_RETRY_MAX_DELAY") && err.contains("DB_RETRY_INITIAL_DELAY"),
            "{err}"
        );
    }

    #[test]
    fn the_password_never_shows() {
        let s = load(&[("DATABASE_URL", "postgres://app:hunter2@db/app")]).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!serde_json::to_string(&s).unwrap().contains("hunter2"));
        let err = load(&[
            ("DATABASE_URL", "postgres://app:hunter2@db/app"),
            ("DB_POOL_SIZE", "x"),
        ])
        .unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert!(!format!("{err:?}").contains("hunter2"));
    }

    #[test]
    fn the_environment_overrides_a_file() {
        let dir = std::env::temp_dir().join(format!("pool-core-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.toml");
        std::fs::write(
            &path,
            "pool_size = 7\npool_timeout = 4.5\nmax_overflow = 0\nurl = \"postgres://file/db\"\n",
        )
        .unwrap();
        let s = SettingsSource::new("DB_", "DATABASE_URL")
            .file(&path)
            .vars([("DB_POOL_SIZE", "2")])
            .load()
            .unwrap();
        assert_eq!(s.pool_size, 2);
        assert_eq!(s.pool_timeout, Duration::from_millis(4500));
        assert_eq!(s.max_overflow, Overflow::Limited(0));
        assert_eq!(s.url.as_ref().unwrap().expose(), "postgres://file/db");

        std::fs::write(&path, "pool_size = -4\n").unwrap();
        let err = SettingsSource::new("DB_", "DATABASE_URL")
            .file(&path)
            .vars(Vec::<(String, String)>::new())
            .load()
            .unwrap_err()
            .to_string();
        assert!(err.contains("pool_size in") && err.contains("-4"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_url_can_come_from_a_secret_file() {
        let dir = std::env::temp_dir().join(format!("pool-core-url-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("database_url");
        std::fs::write(&path, "postgres://app:Sekrit-9@db/app\n").unwrap();
        let s = SettingsSource::new("DB_", "DATABASE_URL")
            .vars([("DATABASE_URL_FILE", path.to_str().unwrap())])
            .load()
            .unwrap();
        assert_eq!(
            s.url.as_ref().unwrap().expose(),
            "postgres://app:Sekrit-9@db/app"
        );
        let err = SettingsSource::new("DB_", "DATABASE_URL")
            .vars([("DATABASE_URL_FILE", dir.join("nope").to_str().unwrap())])
            .load()
            .unwrap_err()
            .to_string();
        assert!(err.contains("DATABASE_URL_FILE"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
