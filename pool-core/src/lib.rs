//! Backend-neutral parts of the pool layer.
//!
//! `pool-core` holds every rule that PostgreSQL and Redis pools share, so that
//! each rule lives in exactly one place:
//!
//! - [`settings`]: SQLAlchemy `QueuePool` semantics (`pool_size`,
//!   `max_overflow`, `pool_timeout`, `pool_recycle`) plus what a resilient
//!   pool needs (pre-ping, validation and connect timeouts, TCP keepalive),
//!   read from `DB_*`-style environment variables with the `config` crate.
//! - [`pool`]: the pool engine: fair (FIFO) admission, overflow that closes on
//!   return, validation before checkout, broken-connection eviction, connect
//!   retries with backoff, all bounded by `pool_timeout`.
//! - [`classify`]: the error classes every backend maps its errors into.
//! - [`backoff`]: the one retry policy (exponential with jitter, on `backon`).
//! - [`startup`]: waiting until a server is really ready (DNS, TCP, protocol).
//! - [`status`]: serde-serializable pool snapshots and counters.
//! - [`health`]: health probes through the pool and the one up/degraded/down
//!   rule.
//! - [`metrics`]: pool metrics through the `metrics` facade (the
//!   application picks the exporter).
//! - [`url`]: the one grammar of connection URLs (PostgreSQL URLs and
//!   `key=value` strings, Redis URLs and Unix sockets).
//! - [`redact`]: keeping passwords out of every message.
//! - [`tcp`]: the TCP keepalive and `TCP_USER_TIMEOUT` both backends set.
//! - `testing` (tests and the `test-support` feature): a scriptable fake
//!   manager for deterministic engine tests.
//! - [`tls`]: libpq's `sslmode` semantics, certificate files, the rustls
//!   configuration and the diagnosis of handshake failures.
//!
//! A backend crate implements [`Manager`] (connect, ping, classify) and gets
//! the whole contract.

#![warn(missing_docs)]
// The engine's module docs link its private modules (`admission`, `policy`,
// ...) for readers of the source; `cargo doc --document-private-items`
// resolves them.
#![allow(rustdoc::private_intra_doc_links)]

pub mod backoff;
pub mod classify;
pub mod error;
pub mod health;
pub mod metrics;
pub mod pool;
pub mod redact;
pub mod secret_file;
pub mod settings;
pub mod startup;
pub mod status;
pub mod tcp;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod tls;
pub mod url;

pub use backoff::RetryPolicy;
pub use classify::ErrorClass;
pub use error::{PoolError, SettingsError};
pub use health::{HealthCheck, HealthReport, HealthStatus};
pub use pool::{Manager, Pool, Pooled, Returned};
pub use settings::{PoolSettings, ResetOnReturn};
pub use status::{CloseReason, PoolCounters, PoolStatus};
pub use url::{Backend, ConnUrl, Secret, UrlError};
