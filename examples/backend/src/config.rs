//! Configuration from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | — (required) | PostgreSQL URL |
//! | `REDIS_URL` | — (required) | Redis URL |
//! | `DB_*`, `REDIS_*` | see `pool_core::settings` | pool settings (`DB_POOL_SIZE`, `REDIS_POOL_TIMEOUT`, ...) |
//! | `PORT` | 8080 | HTTP port (`0` picks a free one; the log says which) |
//! | `BIND_ADDRESS` | `0.0.0.0` | address to listen on |
//! | `HEALTH_TIMEOUT` | 2 | seconds one health probe may take (checkout included) |
//! | `CACHE_TIMEOUT` | 0.5 | seconds a request waits for a Redis connection before skipping the cache |
//! | `STARTUP_TIMEOUT` | 60 | seconds to wait for both servers at startup |
//! | `SHUTDOWN_TIMEOUT` | 25 | seconds in-flight requests get after SIGTERM/SIGINT |
//!
//! A bad value is an error naming the variable and the value (never a
//! password); `main` prints it and exits with status 2.

use pool_core::{PoolSettings, SettingsError};
use std::net::IpAddr;
use std::time::Duration;

/// Everything the service reads at startup.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub bind: IpAddr,
    /// Port to listen on (`0`: any free port).
    pub port: u16,
    /// The PostgreSQL pool (`DATABASE_URL`, `DB_*`).
    pub pg: PoolSettings,
    /// The Redis pool (`REDIS_URL`, `REDIS_*`).
    pub redis: PoolSettings,
    /// Bound on one health probe.
    pub health_timeout: Duration,
    /// Bound on waiting for a Redis connection in request handlers.
    pub cache_timeout: Duration,
    /// Bound on the startup wait for both servers.
    pub startup_timeout: Duration,
    /// Time in-flight requests get after a shutdown signal.
    pub shutdown_timeout: Duration,
}

/// A setting is missing or wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A pool setting (`DB_*`, `REDIS_*`, the URLs).
    #[error(transparent)]
    Pool(#[from] SettingsError),
    /// One of the service's own variables.
    #[error("invalid setting {variable}={value:?}: expected {expected}")]
    Invalid {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What would be accepted.
        expected: &'static str,
    },
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        let get = |k: &str| std::env::var(k).ok();
        let pg = pool_postgres::settings_from_env()?;
        pg.require_url()?;
        let redis = pool_redis::settings_from_env()?;
        redis.require_url()?;
        Ok(Config {
            bind: parse(&get, "BIND_ADDRESS", "0.0.0.0", "an IP address")?,
            port: parse(&get, "PORT", "8080", "a port number (0-65535)")?,
            pg,
            redis,
            health_timeout: seconds(&get, "HEALTH_TIMEOUT", "2")?,
            cache_timeout: seconds(&get, "CACHE_TIMEOUT", "0.5")?,
            startup_timeout: seconds(&get, "STARTUP_TIMEOUT", "60")?,
            shutdown_timeout: seconds(&get, "SHUTDOWN_TIMEOUT", "25")?,
        })
    }
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: &str,
    expected: &'static str,
) -> Result<T, ConfigError> {
    let value = get(variable).unwrap_or_else(|| default.to_string());
    value.trim().parse().map_err(|_| ConfigError::Invalid {
        variable,
        value,
        expected,
    })
}

fn seconds(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: &str,
) -> Result<Duration, ConfigError> {
    const EXPECTED: &str = "a number of seconds > 0 (for example 2 or 0.5)";
    let secs: f64 = parse(get, variable, default, EXPECTED)?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(ConfigError::Invalid {
            variable,
            value: get(variable).unwrap_or_default(),
            expected: EXPECTED,
        });
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn own_variables_have_defaults_and_are_checked() {
        let get = lookup(&[]);
        assert_eq!(parse::<u16>(&get, "PORT", "8080", "").unwrap(), 8080);
        assert_eq!(
            seconds(&get, "HEALTH_TIMEOUT", "2").unwrap(),
            Duration::from_secs(2)
        );
        let get = lookup(&[("PORT", "http"), ("HEALTH_TIMEOUT", "-1")]);
        let err = parse::<u16>(&get, "PORT", "8080", "a port")
            .unwrap_err()
            .to_string();
        assert!(err.contains("PORT") && err.contains("http"), "{err}");
        let err = seconds(&get, "HEALTH_TIMEOUT", "2")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("HEALTH_TIMEOUT") && err.contains("-1"),
            "{err}"
        );
    }
}
