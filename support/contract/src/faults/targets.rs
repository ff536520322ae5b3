//! The pools the driver loads: ours (through a [`Backend`]) and the raw
//! pools we compare with, `deadpool-postgres` and `bb8-redis`, configured
//! as the issue says (max size 8; deadpool with `RecyclingMethod::Fast` and
//! only a wait timeout; bb8 with its defaults and `connection_timeout` =
//! `pool_timeout`).

use super::driver::{OpFuture, OpResult, Snapshot, Target};
use crate::backend::Backend;
use bb8_redis::{redis, RedisConnectionManager};
use deadpool_postgres::{ManagerConfig, RecyclingMethod, Runtime, Timeouts};
use pool_core::{Pool, PoolCounters};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

/// `application_name` of the raw deadpool pool's sessions (ours use
/// `pool-postgres/<pool name>`), so the monitor counts only the pool's.
pub const RAW_PG_APP: &str = "raw-deadpool";

/// One round trip on a checked-out connection, borrowed for its length.
type RoundTrip<'c> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'c>>;

/// An op as every target runs it: `checkout`, then one `round_trip` on the
/// connection, bounded by the caller's `query_timeout`. When that bound
/// runs out, `on_timeout` gets the connection (still checked out) before
/// it is dropped.
async fn checkout_and_round_trip<C, E: std::fmt::Display>(
    checkout: impl Future<Output = Result<C, E>>,
    query_timeout: Duration,
    round_trip: impl for<'c> FnOnce(&'c mut C) -> RoundTrip<'c>,
    on_timeout: impl FnOnce(&mut C),
) -> OpResult {
    let mut conn = match checkout.await {
        Ok(c) => c,
        Err(e) => return OpResult::CheckoutFailed(e.to_string()),
    };
    let checked_out = Instant::now();
    match tokio::time::timeout(query_timeout, round_trip(&mut conn)).await {
        Ok(Ok(())) => OpResult::Ok { checked_out },
        Ok(Err(error)) => OpResult::RoundTripFailed { checked_out, error },
        Err(_) => {
            on_timeout(&mut conn);
            OpResult::RoundTripFailed {
                checked_out,
                error: format!(
                    "round trip timed out after {:.2}s (caller's bound)",
                    query_timeout.as_secs_f64()
                ),
            }
        }
    }
}

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
            checkout_and_round_trip(
                pool.get(),
                query_timeout,
                // `round_trip` observes the error: a dead connection is
                // already marked broken.
                |conn| Box::pin(B::round_trip(conn)),
                |conn| {
                    // Our own bound ran out: the connection's state is
                    // unknown (a reply may still come), so it must not be
                    // reused, and the pool's other idle connections are
                    // suspect too. This is what the pool's docs ask of a
                    // caller that bounds a query itself.
                    if mark_on_timeout {
                        conn.mark_broken();
                        pool.note_disconnect();
                    }
                },
            )
            .await
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

/// A pool of another library, as its users call it: what differs
/// between them; [`Raw`] loads any of them the same way.
pub trait RawPool: Clone + Send + Sync + 'static {
    /// Short name for tables.
    const NAME: &'static str;
    /// A checked-out connection (owned, so that the op holds it).
    type Conn: Send;
    /// One checkout, bounded by the pool's own wait timeout.
    fn checkout(&self) -> impl Future<Output = Result<Self::Conn, String>> + Send;
    /// One round trip (`SELECT 1` / `PING`).
    fn round_trip(conn: &mut Self::Conn) -> impl Future<Output = Result<(), String>> + Send;
    /// The pool's gauges, as far as it exposes them.
    fn snapshot(&self) -> Snapshot;
}

/// A raw pool under load. When the caller's bound on a round trip runs
/// out, the connection just goes back on drop, as that library's users
/// leave it.
pub struct Raw<P> {
    pool: P,
    max: u32,
}

impl<P: RawPool> std::fmt::Debug for Raw<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Raw")
            .field("pool", &P::NAME)
            .field("max", &self.max)
            .field("now", &self.pool.snapshot())
            .finish()
    }
}

impl<P: RawPool> Target for Raw<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn op(&self, query_timeout: Duration) -> OpFuture {
        let pool = self.pool.clone();
        Box::pin(async move {
            checkout_and_round_trip(
                pool.checkout(),
                query_timeout,
                |conn| Box::pin(P::round_trip(conn)),
                |_| {},
            )
            .await
        })
    }

    fn snapshot(&self) -> Snapshot {
        self.pool.snapshot()
    }

    fn max_size(&self) -> u32 {
        self.max
    }

    fn pool_size(&self) -> u32 {
        self.max
    }
}

/// Raw `deadpool-postgres`: max size 8 (or as given), `RecyclingMethod::Fast`,
/// `Timeouts { wait: Some(pool_timeout), create: None, recycle: None }`,
/// tokio-postgres's defaults otherwise (no connect timeout).
pub type RawDeadpool = Raw<deadpool_postgres::Pool>;

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
        let max = pool.status().max_size as u32;
        Raw { pool, max }
    }
}

impl RawPool for deadpool_postgres::Pool {
    const NAME: &'static str = "deadpool-postgres";
    type Conn = deadpool_postgres::Object;

    async fn checkout(&self) -> Result<Self::Conn, String> {
        self.get().await.map_err(|e| e.to_string())
    }

    async fn round_trip(client: &mut Self::Conn) -> Result<(), String> {
        let r = client.simple_query("SELECT 1").await;
        r.map(|_| ()).map_err(|e| pool_core::error::chain(&e))
    }

    fn snapshot(&self) -> Snapshot {
        let s = self.status();
        Snapshot {
            open: s.size as u32,
            in_use: s.size.saturating_sub(s.available) as u32,
            waiting: s.waiting as u32,
        }
    }
}

/// Raw `bb8-redis`: bb8's defaults (checkout `PING`, no minimum idle) with
/// max size 8 (or as given) and `connection_timeout` = `pool_timeout`.
pub type RawBb8 = Raw<bb8::Pool<RedisConnectionManager>>;

impl RawBb8 {
    /// Builds the pool; opens nothing yet.
    pub fn new(url: &str, max_size: u32, pool_timeout: Duration) -> Self {
        let manager = RedisConnectionManager::new(url).expect("valid redis URL");
        let pool = bb8::Pool::builder()
            .max_size(max_size)
            .connection_timeout(pool_timeout)
            .build_unchecked(manager);
        Raw {
            pool,
            max: max_size,
        }
    }
}

impl RawPool for bb8::Pool<RedisConnectionManager> {
    const NAME: &'static str = "bb8-redis";
    type Conn = bb8::PooledConnection<'static, RedisConnectionManager>;

    async fn checkout(&self) -> Result<Self::Conn, String> {
        self.get_owned().await.map_err(|e| e.to_string())
    }

    async fn round_trip(conn: &mut Self::Conn) -> Result<(), String> {
        let ping = redis::cmd("PING").query_async::<String>(&mut **conn).await;
        ping.map(|_| ()).map_err(|e| e.to_string())
    }

    /// bb8 does not say how many checkouts wait.
    fn snapshot(&self) -> Snapshot {
        let s = self.state();
        Snapshot {
            open: s.connections,
            in_use: s.connections.saturating_sub(s.idle_connections),
            waiting: 0,
        }
    }
}
