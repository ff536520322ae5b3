//! The demo's settings: the two pools' settings and the size of the run.

use pool_core::{PoolSettings, SettingsError};

/// Everything the demo reads from the environment.
pub struct Options {
    /// Tasks per pool.
    pub tasks: usize,
    /// Length of the run.
    pub seconds: u64,
    /// `DEMO_TLS`: private servers speak TLS only, and the pools verify
    /// them (chain and host name) against a throwaway CA.
    pub tls: bool,
    /// PostgreSQL pool settings (`DB_*`, `DATABASE_URL`).
    pub pg: PoolSettings,
    /// Redis pool settings (`REDIS_*`, `REDIS_URL`).
    pub redis: PoolSettings,
}

impl Options {
    /// Reads and validates the environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Ok(Options {
            tasks: whole("DEMO_TASKS", 32, 1, 10_000)? as usize,
            seconds: whole("DEMO_SECONDS", 12, 3, 86_400)?,
            tls: flag("DEMO_TLS")?,
            pg: pool_postgres::settings_from_env()?,
            redis: pool_redis::settings_from_env()?,
        })
    }
}

fn whole(variable: &str, default: u64, min: u64, max: u64) -> Result<u64, SettingsError> {
    let Ok(value) = std::env::var(variable) else {
        return Ok(default);
    };
    match value.trim().parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(SettingsError::Invalid {
            variable: variable.to_string(),
            value,
            expected: format!("a whole number from {min} to {max}"),
        }),
    }
}

fn flag(variable: &str) -> Result<bool, SettingsError> {
    let Ok(value) = std::env::var(variable) else {
        return Ok(false);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "off" => Ok(false),
        "1" | "true" | "yes" | "on" => Ok(true),
        _ => Err(SettingsError::Invalid {
            variable: variable.to_string(),
            value,
            expected: "1/true/yes/on or 0/false/no/off".into(),
        }),
    }
}
