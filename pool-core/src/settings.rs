//! Pool settings with SQLAlchemy `QueuePool` semantics, read from the
//! environment.
//!
//! Every variable carries a prefix so that one application can run several
//! pools (`DB_`, `REPLICA_`, `REDIS_`). With the prefix `DB_`:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DB_POOL_SIZE` | 5 | connections kept open in the pool |
//! | `DB_MAX_OVERFLOW` | 10 | extra connections under load, closed when returned to a full pool; `-1` = no limit |
//! | `DB_POOL_TIMEOUT` | 30 | seconds a checkout may take in all (waiting, connecting, validating) |
//! | `DB_POOL_RECYCLE` | -1 | seconds after which a connection is replaced at checkout; `-1` = never |
//! | `DB_POOL_PRE_PING` | true | validate a connection before handing it out |
//! | `DB_POOL_PRE_PING_WINDOW` | 0.5 | seconds after a successful use during which no ping is needed |
//! | `DB_POOL_VALIDATION_TIMEOUT` | 2 | seconds a validation ping may take |
//! | `DB_CONNECT_TIMEOUT` | 5 | seconds one connection attempt may take |
//! | `DB_TCP_KEEPALIVE` | 30 | seconds of idleness before TCP keepalive probes; `0` = off |
//! | `DB_TCP_USER_TIMEOUT` | 15 | seconds unacknowledged data may wait before the kernel drops the connection; `0` = off |
//! | `DB_RETRY_INITIAL_DELAY` | 0.05 | first backoff sleep (upper bound) between connect attempts |
//! | `DB_RETRY_MAX_DELAY` | 1 | longest backoff sleep, jitter included |
//! | `DB_SLOW_CHECKOUT` | 1 | seconds after which a checkout is logged as slow |
//! | `DB_POOL_NAME` | `db` | name used in logs, metrics and errors |
//!
//! The URL comes from a variable named by the backend (`DATABASE_URL`,
//! `REDIS_URL`), or `<PREFIX>URL` for other prefixes.
//!
//! Values are checked once, when loading; a bad one is a [`SettingsError`]
//! naming the variable and the value.

use crate::error::SettingsError;
use crate::redact::SecretUrl;
use crate::RetryPolicy;
use config::{Config, Environment, File, FileFormat};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Validated settings of one pool.
#[derive(Debug, Clone, Serialize)]
pub struct PoolSettings {
    /// Name used in logs, metrics and errors.
    pub name: String,
    /// Where to connect (redacted whenever shown).
    pub url: Option<SecretUrl>,
    /// The variable the URL came from, for error messages.
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
    /// Idle time before TCP keepalive probes; `None` = off.
    #[serde(with = "secs::option")]
    pub tcp_keepalive: Option<Duration>,
    /// `TCP_USER_TIMEOUT`: how long unacknowledged data may wait before the
    /// kernel gives the connection up; `None` = off.
    #[serde(with = "secs::option")]
    pub tcp_user_timeout: Option<Duration>,
    /// Backoff between connect attempts.
    pub retry: RetryPolicy,
    /// Checkouts slower than this are logged as warnings.
    #[serde(with = "secs")]
    pub slow_checkout: Duration,
}

impl PoolSettings {
    /// Defaults for a pool named `name`, with no URL.
    pub fn new(name: impl Into<String>) -> Self {
        PoolSettings {
            name: name.into(),
            url: None,
            url_var: "DATABASE_URL".into(),
            pool_size: 5,
            max_overflow: Overflow::Limited(10),
            pool_timeout: Duration::from_secs(30),
            pool_recycle: None,
            pre_ping: true,
            pre_ping_window: Duration::from_millis(500),
            validation_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(5),
            tcp_keepalive: Some(Duration::from_secs(30)),
            tcp_user_timeout: Some(Duration::from_secs(15)),
            retry: RetryPolicy::default(),
            slow_checkout: Duration::from_secs(1),
        }
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
            variable: self.url_var.clone(),
        })
    }

    /// Reads settings from the process environment.
    pub fn from_env(prefix: &str, url_var: &str) -> Result<Self, SettingsError> {
        SettingsSource::new(prefix, url_var).load()
    }
}

/// Where settings come from: environment variables with a prefix, optionally
/// over a TOML file (the environment wins).
#[derive(Debug, Clone)]
pub struct SettingsSource {
    prefix: String,
    url_var: String,
    file: Option<PathBuf>,
    vars: Option<HashMap<String, String>>,
}

/// Setting keys as written in a file and, upper-cased after the prefix, in
/// the environment.
const KEYS: &[&str] = &[
    "pool_name",
    "pool_size",
    "max_overflow",
    "pool_timeout",
    "pool_recycle",
    "pool_pre_ping",
    "pool_pre_ping_window",
    "pool_validation_timeout",
    "connect_timeout",
    "tcp_keepalive",
    "tcp_user_timeout",
    "retry_initial_delay",
    "retry_max_delay",
    "slow_checkout",
    "url",
];

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
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.vars = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    fn env_name(&self, key: &str) -> String {
        if key == "url" {
            self.url_var.clone()
        } else {
            format!("{}{}", self.prefix, key.to_ascii_uppercase())
        }
    }

    /// Loads and validates.
    pub fn load(&self) -> Result<PoolSettings, SettingsError> {
        let vars: HashMap<String, String> = match &self.vars {
            Some(v) => v.clone(),
            None => std::env::vars().collect(),
        };
        let prefix_stem = self.prefix.trim_end_matches('_');
        let mut builder = Config::builder();
        if let Some(path) = &self.file {
            builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml));
        }
        let mut env_map = vars.clone();
        // The URL variable does not carry the prefix; expose it as `url`.
        env_map.remove(&self.env_name("url"));
        builder = builder.add_source(
            Environment::with_prefix(prefix_stem)
                .prefix_separator("_")
                .source(Some(env_map)),
        );
        // The URL variable, or a file named by `{url_var}_FILE` (a secret).
        let url_from_env = crate::secret_file::lookup(&self.url_var, |k| vars.get(k).cloned())?;
        if let Some(url) = &url_from_env {
            builder = builder
                .set_override("url", url.clone())
                .map_err(|e| SettingsError::Source(e.to_string()))?;
        }
        let cfg = builder
            .build()
            .map_err(|e| SettingsError::Source(redact_config_error(&e)))?;

        let raw = |key: &str| -> Result<Option<Raw>, SettingsError> {
            match cfg.get::<String>(key) {
                Ok(v) => {
                    let env_name = self.env_name(key);
                    let from_env =
                        vars.contains_key(&env_name) || (key == "url" && url_from_env.is_some());
                    let origin = if from_env {
                        env_name
                    } else {
                        match &self.file {
                            Some(f) => format!("{key} in {}", f.display()),
                            None => env_name,
                        }
                    };
                    Ok(Some(Raw { origin, value: v }))
                }
                Err(config::ConfigError::NotFound(_)) => Ok(None),
                Err(e) => Err(SettingsError::Source(redact_config_error(&e))),
            }
        };

        for (name, _) in vars.iter() {
            if let Some(rest) = name.strip_prefix(&self.prefix) {
                let key = rest.to_ascii_lowercase();
                let looks_like_ours = ["pool_", "max_", "connect_", "tcp_", "retry_", "slow_"]
                    .iter()
                    .any(|p| key.starts_with(p));
                if looks_like_ours && !KEYS.contains(&key.as_str()) {
                    tracing::warn!(variable = %name, "unknown pool setting ignored (typo?)");
                }
            }
        }

        let mut s = PoolSettings::new(prefix_stem.to_ascii_lowercase());
        s.url_var = self.url_var.clone();
        if let Some(r) = raw("pool_name")? {
            let name = r.value.trim().to_string();
            if name.is_empty() {
                return Err(r.invalid("a non-empty name"));
            }
            s.name = name;
        }
        if let Some(r) = raw("url")? {
            if r.value.trim().is_empty() {
                return Err(SettingsError::Missing { variable: r.origin });
            }
            s.url = Some(SecretUrl::new(r.value.trim()));
        }
        if let Some(r) = raw("pool_size")? {
            s.pool_size = r.whole(1)?;
        }
        if let Some(r) = raw("max_overflow")? {
            let v: i64 = r
                .value
                .trim()
                .parse()
                .map_err(|_| r.invalid("a whole number >= 0, or -1 for no limit"))?;
            s.max_overflow = match v {
                -1 => Overflow::Unlimited,
                0.. if v <= i64::from(u32::MAX) => Overflow::Limited(v as u32),
                _ => return Err(r.invalid("a whole number >= 0, or -1 for no limit")),
            };
        }
        if let Some(r) = raw("pool_timeout")? {
            s.pool_timeout = r.seconds_positive()?;
        }
        if let Some(r) = raw("pool_recycle")? {
            s.pool_recycle = r.seconds_or_off(-1.0, "seconds > 0, or -1 to never recycle")?;
        }
        if let Some(r) = raw("pool_pre_ping")? {
            s.pre_ping = r.boolean()?;
        }
        if let Some(r) = raw("pool_pre_ping_window")? {
            s.pre_ping_window = r.seconds_non_negative()?;
        }
        if let Some(r) = raw("pool_validation_timeout")? {
            s.validation_timeout = r.seconds_positive()?;
        }
        if let Some(r) = raw("connect_timeout")? {
            s.connect_timeout = r.seconds_positive()?;
        }
        if let Some(r) = raw("tcp_keepalive")? {
            s.tcp_keepalive = r.seconds_or_off(0.0, "seconds > 0, or 0 to turn keepalive off")?;
        }
        if let Some(r) = raw("tcp_user_timeout")? {
            s.tcp_user_timeout = r.seconds_or_off(0.0, "seconds > 0, or 0 to turn it off")?;
        }
        if let Some(r) = raw("retry_initial_delay")? {
            s.retry.initial = r.seconds_positive()?;
        }
        if let Some(r) = raw("retry_max_delay")? {
            s.retry.max = r.seconds_positive()?;
            if s.retry.max < s.retry.initial {
                return Err(r.invalid(&format!(
                    "at least {} ({}), the first delay",
                    self.env_name("retry_initial_delay"),
                    s.retry.initial.as_secs_f64()
                )));
            }
        }
        if let Some(r) = raw("slow_checkout")? {
            s.slow_checkout = r.seconds_positive()?;
        }
        Ok(s)
    }
}

/// config's errors can quote values; none of ours may quote a URL.
fn redact_config_error(e: &config::ConfigError) -> String {
    crate::redact::redact_url(&e.to_string())
}

/// One raw value and where it came from.
struct Raw {
    origin: String,
    value: String,
}

/// The longest duration we accept: a year. Longer values are typos.
const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

impl Raw {
    fn invalid(&self, expected: &str) -> SettingsError {
        SettingsError::Invalid {
            variable: self.origin.clone(),
            value: self.value.clone(),
            expected: expected.to_string(),
        }
    }

    fn whole(&self, min: u32) -> Result<u32, SettingsError> {
        let expected = format!("a whole number >= {min}");
        let v: u32 = self
            .value
            .trim()
            .parse()
            .map_err(|_| self.invalid(&expected))?;
        if v < min {
            return Err(self.invalid(&expected));
        }
        Ok(v)
    }

    fn float(&self, expected: &str) -> Result<f64, SettingsError> {
        let v: f64 = self
            .value
            .trim()
            .parse()
            .map_err(|_| self.invalid(expected))?;
        if !v.is_finite() || v > MAX_SECONDS {
            return Err(self.invalid(expected));
        }
        Ok(v)
    }

    fn seconds_positive(&self) -> Result<Duration, SettingsError> {
        let expected = "a number of seconds > 0 (for example 30 or 2.5)";
        let v = self.float(expected)?;
        if v <= 0.0 {
            return Err(self.invalid(expected));
        }
        Ok(Duration::from_secs_f64(v))
    }

    fn seconds_non_negative(&self) -> Result<Duration, SettingsError> {
        let expected = "a number of seconds >= 0 (for example 0.5)";
        let v = self.float(expected)?;
        if v < 0.0 {
            return Err(self.invalid(expected));
        }
        Ok(Duration::from_secs_f64(v))
    }

    fn seconds_or_off(&self, off: f64, expected: &str) -> Result<Option<Duration>, SettingsError> {
        let v = self.float(expected)?;
        if v == off {
            Ok(None)
        } else if v > 0.0 {
            Ok(Some(Duration::from_secs_f64(v)))
        } else {
            Err(self.invalid(expected))
        }
    }

    fn boolean(&self) -> Result<bool, SettingsError> {
        match self.value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(self.invalid("true or false")),
        }
    }
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
            ("DB_POOL_NAME", "primary"),
        ])
        .unwrap();
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
        ];
        for (var, value) in cases {
            let err = load(&[(var, value)]).expect_err(&format!("{var}={value} accepted"));
            let msg = err.to_string();
            assert!(msg.contains(var), "{var}={value}: {msg}");
            assert!(msg.contains(value.trim()), "{var}={value}: {msg}");
        }
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
