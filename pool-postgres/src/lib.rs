//! A resilient PostgreSQL pool.
//!
//! Connections are made by `deadpool-postgres`'s manager (a
//! `tokio-postgres` client with its connection task and a prepared-statement
//! cache); the pool around them is `pool-core`'s engine, so the PostgreSQL
//! and Redis pools keep one contract: SQLAlchemy-style sizing, FIFO-fair
//! checkout, validation skipped inside a bypass window, broken connections
//! evicted, retries during an outage, and `pool_timeout` bounding it all.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = pool_postgres::pool_from_env()?;       // DB_* and DATABASE_URL
//! let mut conn = pool.get().await?;
//! let rows = conn.query("SELECT 1", &[]).await;
//! let rows = conn.observe(rows)?;                  // a dead connection is not returned
//! # let _ = rows; Ok(()) }
//! ```
//!
//! - [`classify`](fn@classify): the one classifier of `tokio_postgres` errors.
//! - [`manager`]: connecting and validating.
//! - [`tls`]: libpq's `sslmode` semantics on `tokio-postgres-rustls`.
//! - [`ready`]: the startup wait (DNS, TCP, authenticated `SELECT 1`).
//! - [`health`]: the health probe (`SELECT 1` through the pool, see
//!   `PgPool::health`).

#![warn(missing_docs)]

pub mod classify;
pub mod health;
pub mod manager;
pub mod ready;
pub mod tls;
pub mod wire;

pub use classify::classify;
pub use manager::{PgConn, PgManager};
pub use pool_core::redact::SecretUrl;
pub use pool_core::settings::{Overflow, SettingsBuilder};
pub use pool_core::{PoolError, PoolSettings, RetryPolicy, SettingsError};
pub use ready::PgProbe;

/// A PostgreSQL pool.
pub type PgPool = pool_core::Pool<PgManager>;
/// A checked-out PostgreSQL connection; dereferences to [`PgConn`], which
/// dereferences to [`deadpool_postgres::ClientWrapper`] (a
/// `tokio_postgres::Client` with `prepare_cached`).
pub type PgConnection = pool_core::Pooled<PgManager>;

/// The environment prefix of the default pool.
pub const ENV_PREFIX: &str = "DB_";
/// The variable holding the default pool's URL.
pub const URL_VAR: &str = "DATABASE_URL";

/// Reads `DB_*` settings and `DATABASE_URL` from the environment.
pub fn settings_from_env() -> Result<PoolSettings, SettingsError> {
    PoolSettings::from_env(ENV_PREFIX, URL_VAR)
}

/// A settings builder for this backend: its defaults, pool named
/// `db`, errors naming [`URL_VAR`]. Only this crate is needed:
///
/// ```no_run
/// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// let settings = pool_postgres::settings_builder()
///     .url("postgres://app:secret@db/app")
///     .pool_size(8)
///     .max_overflow(pool_postgres::Overflow::Limited(4))
///     .pool_timeout(Duration::from_secs(5))
///     .build()?;
/// let pool = pool_postgres::build_pool(settings)?;
/// # let _ = pool; Ok(()) }
/// ```
pub fn settings_builder() -> SettingsBuilder {
    PoolSettings::builder().name("db").url_var(URL_VAR)
}

/// Builds a pool from settings; checks the URL, opens nothing yet.
/// Settings made without a URL variable (`PoolSettings::new`) name
/// [`URL_VAR`] in their errors.
pub fn build_pool(mut settings: PoolSettings) -> Result<PgPool, SettingsError> {
    if settings.url_var.is_empty() {
        settings.url_var = URL_VAR.into();
    }
    let manager = PgManager::new(&settings)?;
    Ok(PgPool::new(manager, settings))
}

/// Reads settings from the environment and builds the pool.
pub fn pool_from_env() -> Result<PgPool, SettingsError> {
    build_pool(settings_from_env()?)
}
