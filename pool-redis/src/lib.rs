//! A resilient Redis pool with the same contract as the PostgreSQL one.
//!
//! Connections are redis-rs multiplexed connections opened with redis-rs's
//! own connection config ([`RedisManager`]) and wrapped in [`RedisConn`]
//! (the per-command `REDIS_COMMAND_TIMEOUT`, what a caller left behind);
//! the pool around them is `pool-core`'s engine. That fixes the
//! three measured weaknesses of bb8 alone: waiters are served in FIFO order
//! (bb8 lets returning connections be taken by tasks that did not wait), the
//! checkout `PING` is skipped inside the bypass window (bb8 pings on every
//! checkout, halving throughput), and a timed-out checkout reports the last
//! underlying error and the pool state (bb8 reports only "timed out").
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use pool_redis::redis::AsyncCommands;
//! let pool = pool_redis::pool_from_env()?;          // REDIS_* and REDIS_URL
//! let mut conn = pool.get().await?;
//! let r: Result<(), _> = conn.set("k", 1).await;
//! conn.observe(r)?;                                 // a dead connection is not returned
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod classify;
pub mod conn;
pub mod health;
pub mod manager;
pub mod ready;

pub use bb8_redis::redis;
pub use classify::classify;
pub use conn::RedisConn;
pub use manager::RedisManager;
pub use pool_core::redact::SecretUrl;
pub use pool_core::settings::{Overflow, SettingsBuilder};
pub use pool_core::{PoolError, PoolSettings, RetryPolicy, SettingsError};
pub use ready::RedisProbe;

/// A Redis pool.
pub type RedisPool = pool_core::Pool<RedisManager>;
/// A checked-out Redis connection; dereferences to [`RedisConn`] (send
/// commands through it), which dereferences to
/// [`redis::aio::MultiplexedConnection`].
pub type RedisConnection = pool_core::Pooled<RedisManager>;

/// The environment prefix of the default pool.
pub const ENV_PREFIX: &str = "REDIS_";
/// The variable holding the default pool's URL.
pub const URL_VAR: &str = "REDIS_URL";

/// Reads `REDIS_*` settings and `REDIS_URL` from the environment.
pub fn settings_from_env() -> Result<PoolSettings, SettingsError> {
    PoolSettings::from_env(ENV_PREFIX, URL_VAR)
}

/// A settings builder for this backend: its defaults, pool named
/// `redis`, errors naming [`URL_VAR`]. Only this crate is needed:
///
/// ```no_run
/// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// let settings = pool_redis::settings_builder()
///     .url("redis://:secret@cache:6379/0")
///     .pool_size(8)
///     .max_overflow(pool_redis::Overflow::Limited(4))
///     .pool_timeout(Duration::from_secs(5))
///     .build()?;
/// let pool = pool_redis::build_pool(settings)?;
/// # let _ = pool; Ok(()) }
/// ```
pub fn settings_builder() -> SettingsBuilder {
    PoolSettings::builder().name("redis").url_var(URL_VAR)
}

/// Builds a pool from settings; checks the URL, opens nothing yet.
/// Settings made without a URL variable (`PoolSettings::new`) name
/// [`URL_VAR`] in their errors.
pub fn build_pool(mut settings: PoolSettings) -> Result<RedisPool, SettingsError> {
    if settings.url_var.is_empty() {
        settings.url_var = URL_VAR.into();
    }
    let manager = RedisManager::new(&settings)?;
    Ok(RedisPool::new(manager, settings))
}

/// Reads settings from the environment and builds the pool.
pub fn pool_from_env() -> Result<RedisPool, SettingsError> {
    build_pool(settings_from_env()?)
}
