//! The pools the driver loads: ours (through a [`Backend`]) and the raw
//! pools we compare with, `deadpool-postgres` and `bb8-redis`, configured
//! as the issue says (max size 8; deadpool with `RecyclingMethod::Fast` and
//! only a wait timeout; bb8 with its defaults and `connection_timeout` =
//! `pool_timeout`).

use super::driver::{OpFuture, OpResult, Snapshot, Target};
use crate::backend::Backend;
use bb8_redis::redis;
use deadpool_postgres::{ManagerConfig, RecyclingMethod, Runtime, Timeouts};
use pool_core::{Pool, PoolCounters};
use std::marker::PhantomData;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

/// `application_name` of the raw deadpool pool's sessions (ours use
/// `pool-postgres/<pool name>`), so the monitor counts only the pool's.
pub const RAW_PG_APP: &str = "raw-deadpool";

/// Our pool, on any backend.
pub struct Ours<B: Backend> {
    pool: Pool<B::M>,
    mark_on_timeout: bool,
    _b: PhantomData<fn() -> B>,
}

impl<B: Backend> std::fmt::Debug for Ours<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ours").field("pool", &self.pool).finish()
    }
}

impl<B: Backend> Ours<B> {
    /// Wraps a pool.
    pub fn new(pool: Pool<B::M>) -> Self {
        Ours {
            pool,
            mark_on_timeout: true,
            _b: PhantomData,
        }
    }

    /// A caller that, when its own bound on a round trip runs out, just
    /// drops the connection (the future holding it is cancelled) instead
    /// of marking it broken: the common `timeout(d, async { ... })`
    /// pattern.
    pub fn dropping_on_timeout(pool: Pool<B::M>) -> Self {
        Ours {
            pool,
            mark_on_timeout: false,
            _b: PhantomData,
        }
    }

    /// The pool.
    pub fn pool(&self) -> &Pool<B::M> {
        &self.pool
    }
}

impl<B: Backend> Target for Ours<B> {
    fn name(&self) -> &'static str {
        if self.mark_on_timeout {
            "ours"
        } else {
            "ours, caller drops on timeout"
        }
    }

    fn op(&self, query_timeout: Duration) -> OpFuture {
        let pool = self.pool.clone();
        let mark_on_timeout = self.mark_on_timeout;
        Box::pin(async move {
            let mut conn = match pool.get().await {
                Ok(c) => c,
                Err(e) => return OpResult::CheckoutFailed(e.to_string()),
            };
            let checked_out = Instant::now();
            match tokio::time::timeout(query_timeout, B::round_trip(&mut conn)).await {
                Ok(Ok(())) => OpResult::Ok { checked_out },
                // `round_trip` observed the error: a dead connection is
                // already marked broken.
                Ok(Err(error)) => OpResult::RoundTripFailed { checked_out, error },
                Err(_) => {
                    // Our own bound ran out: the connection's state is
                    // unknown (a reply may still come), so it must not be
                    // reused, and the pool's other idle connections are
                    // suspect too. This is what the pool's docs ask of a
                    // caller that bounds a query itself.
                    if mark_on_timeout {
                        conn.mark_broken();
                        pool.note_disconnect();
                    }
                    OpResult::RoundTripFailed {
                        checked_out,
                        error: format!(
                            "round trip timed out after {:.2}s (caller's bound)",
                            query_timeout.as_secs_f64()
                        ),
                    }
                }
            }
        })
    }

    fn snapshot(&self) -> Snapshot {
        let s = self.pool.status();
        Snapshot {
            open: s.open,
            in_use: s.in_use,
            waiting: s.waiting,
        }
    }

    fn counters(&self) -> Option<PoolCounters> {
        Some(self.pool.status().counters)
    }

    fn max_size(&self) -> u32 {
        self.pool.settings().max_size().unwrap_or(u32::MAX)
    }

    fn pool_size(&self) -> u32 {
        self.pool.settings().pool_size
    }
}

/// Raw `deadpool-postgres`: max size 8 (or as given), `RecyclingMethod::Fast`,
/// `Timeouts { wait: Some(pool_timeout), create: None, recycle: None }`,
/// tokio-postgres's defaults otherwise (no connect timeout).
pub struct RawDeadpool {
    pool: deadpool_postgres::Pool,
}

impl std::fmt::Debug for RawDeadpool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawDeadpool")
            .field("status", &self.pool.status())
            .finish()
    }
}

impl RawDeadpool {
    /// Builds the pool; opens nothing yet.
    pub fn new(url: &str, max_size: usize, pool_timeout: Duration) -> Self {
        let mut config = tokio_postgres::Config::from_str(url).expect("valid postgres URL");
        config.application_name(RAW_PG_APP);
        let manager = deadpool_postgres::Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(max_size)
            .timeouts(Timeouts {
                wait: Some(pool_timeout),
                create: None,
                recycle: None,
            })
            .runtime(Runtime::Tokio1)
            .build()
            .expect("deadpool builds");
        RawDeadpool { pool }
    }
}

impl Target for RawDeadpool {
    fn name(&self) -> &'static str {
        "deadpool-postgres"
    }

    fn op(&self, query_timeout: Duration) -> OpFuture {
        let pool = self.pool.clone();
        Box::pin(async move {
            let client = match pool.get().await {
                Ok(c) => c,
                Err(e) => return OpResult::CheckoutFailed(e.to_string()),
            };
            let checked_out = Instant::now();
            match tokio::time::timeout(query_timeout, client.simple_query("SELECT 1")).await {
                Ok(Ok(_)) => OpResult::Ok { checked_out },
                Ok(Err(e)) => OpResult::RoundTripFailed {
                    checked_out,
                    error: pool_core::error::chain(&e),
                },
                // As a deadpool user would: the object goes back on drop.
                Err(_) => OpResult::RoundTripFailed {
                    checked_out,
                    error: format!(
                        "round trip timed out after {:.2}s (caller's bound)",
                        query_timeout.as_secs_f64()
                    ),
                },
            }
        })
    }

    fn snapshot(&self) -> Snapshot {
        let s = self.pool.status();
        Snapshot {
            open: s.size as u32,
            in_use: s.size.saturating_sub(s.available) as u32,
            waiting: s.waiting as u32,
        }
    }

    fn max_size(&self) -> u32 {
        self.pool.status().max_size as u32
    }

    fn pool_size(&self) -> u32 {
        self.max_size()
    }
}

/// Raw `bb8-redis`: bb8's defaults (checkout `PING`, no minimum idle) with
/// max size 8 (or as given) and `connection_timeout` = `pool_timeout`.
pub struct RawBb8 {
    pool: bb8::Pool<bb8_redis::RedisConnectionManager>,
    max: u32,
}

impl std::fmt::Debug for RawBb8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawBb8").finish_non_exhaustive()
    }
}

impl RawBb8 {
    /// Builds the pool; opens nothing yet.
    pub fn new(url: &str, max_size: u32, pool_timeout: Duration) -> Self {
        let manager = bb8_redis::RedisConnectionManager::new(url).expect("valid redis URL");
        let pool = bb8::Pool::builder()
            .max_size(max_size)
            .connection_timeout(pool_timeout)
            .build_unchecked(manager);
        RawBb8 {
            pool,
            max: max_size,
        }
    }
}

impl Target for RawBb8 {
    fn name(&self) -> &'static str {
        "bb8-redis"
    }

    fn op(&self, query_timeout: Duration) -> OpFuture {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = match pool.get().await {
                Ok(c) => c,
                Err(e) => return OpResult::CheckoutFailed(e.to_string()),
            };
            let checked_out = Instant::now();
            let cmd = redis::cmd("PING");
            let ping = cmd.query_async::<String>(&mut *conn);
            match tokio::time::timeout(query_timeout, ping).await {
                Ok(Ok(_)) => OpResult::Ok { checked_out },
                Ok(Err(e)) => OpResult::RoundTripFailed {
                    checked_out,
                    error: e.to_string(),
                },
                Err(_) => OpResult::RoundTripFailed {
                    checked_out,
                    error: format!(
                        "round trip timed out after {:.2}s (caller's bound)",
                        query_timeout.as_secs_f64()
                    ),
                },
            }
        })
    }

    fn snapshot(&self) -> Snapshot {
        let s = self.pool.state();
        Snapshot {
            open: s.connections,
            in_use: s.connections.saturating_sub(s.idle_connections),
            waiting: 0,
        }
    }

    fn max_size(&self) -> u32 {
        self.max
    }

    fn pool_size(&self) -> u32 {
        self.max_size()
    }
}
