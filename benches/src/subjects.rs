//! The things under load: our pools, the raw anchors (deadpool-postgres,
//! bb8-redis, deadpool and bb8 around a counter) and the no-pool ceiling.

use crate::driver::Subject;
use bb8_redis::redis::{self, aio::MultiplexedConnection, IntoConnectionInfo};
use bb8_redis::RedisConnectionManager;
use deadpool_postgres::{ManagerConfig, RecyclingMethod};
use pool_core::redact::SecretUrl;
use pool_core::settings::Overflow;
use pool_core::{ErrorClass, Pool, PoolSettings};
use pool_postgres::PgPool;
use pool_redis::RedisPool;
use std::convert::Infallible;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::NoTls;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Connections in every pool (and dedicated connections of the ceiling).
pub const CONNECTIONS: usize = 8;

/// Our pool's settings for the benches: `pool_size` 8, `max_overflow` 0,
/// everything else at its default (pre-ping on, 0.5 s bypass window,
/// `pool_timeout` 30 s).
pub fn our_settings(url: &str) -> PoolSettings {
    let mut s = PoolSettings::new("bench");
    s.url = Some(SecretUrl::new(url));
    s.pool_size = CONNECTIONS as u32;
    s.max_overflow = Overflow::Limited(0);
    s
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

// ------------------------------------------------------------- PostgreSQL

/// One PostgreSQL round trip: `SELECT 1` through the simple query protocol.
async fn select_1(client: &tokio_postgres::Client) -> Result<(), String> {
    client
        .simple_query("SELECT 1")
        .await
        .map(|_| ())
        .map_err(err)
}

/// Our PostgreSQL pool (`pool_postgres`).
#[derive(Debug)]
pub struct OursPg(pub PgPool);

impl OursPg {
    /// A pool with [`our_settings`], changed by `f`.
    pub fn new(url: &str, f: impl FnOnce(&mut PoolSettings)) -> Self {
        let mut s = our_settings(url);
        f(&mut s);
        OursPg(pool_postgres::build_pool(s).expect("valid settings"))
    }
}

impl Subject for OursPg {
    type Conn<'a> = pool_postgres::PgConnection;

    async fn checkout(&self, _task: usize) -> Result<Self::Conn<'_>, String> {
        self.0.get().await.map_err(err)
    }

    async fn round_trip(&self, conn: &mut Self::Conn<'_>) -> Result<(), String> {
        let r = conn.simple_query("SELECT 1").await;
        conn.observe(r).map(|_| ()).map_err(err)
    }
}

/// Raw `deadpool-postgres` with `max_size` 8 and no timeouts (its defaults).
#[derive(Debug)]
pub struct DeadpoolPg(pub deadpool_postgres::Pool);

impl DeadpoolPg {
    /// A pool recycling with `method` (`Fast`: `is_closed()` only;
    /// `Verified`: an empty query on every checkout).
    pub fn new(url: &str, method: RecyclingMethod) -> Self {
        let config = tokio_postgres::Config::from_str(url).expect("valid URL");
        let manager = deadpool_postgres::Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: method,
            },
        );
        Self::with_manager(manager)
    }

    /// The same over TLS (`sslmode=require` to tokio-postgres) with
    /// `connector` (give it our pool's, [`pool_postgres::tls::PgTls::rustls_connector`],
    /// so that both verify and encrypt alike). `url` has no TLS parameters.
    pub fn tls(url: &str, connector: MakeRustlsConnect, method: RecyclingMethod) -> Self {
        let mut config = tokio_postgres::Config::from_str(url).expect("valid URL");
        config.ssl_mode(tokio_postgres::config::SslMode::Require);
        let manager = deadpool_postgres::Manager::from_config(
            config,
            connector,
            ManagerConfig {
                recycling_method: method,
            },
        );
        Self::with_manager(manager)
    }

    fn with_manager(manager: deadpool_postgres::Manager) -> Self {
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(CONNECTIONS)
            .build()
            .expect("valid pool");
        DeadpoolPg(pool)
    }
}

impl Subject for DeadpoolPg {
    type Conn<'a> = deadpool_postgres::Object;

    async fn checkout(&self, _task: usize) -> Result<Self::Conn<'_>, String> {
        self.0.get().await.map_err(err)
    }

    async fn round_trip(&self, conn: &mut Self::Conn<'_>) -> Result<(), String> {
        select_1(conn).await
    }
}

/// The ceiling: 8 dedicated `tokio_postgres` clients, no pool. Task `i`
/// always uses client `i % 8`, behind a FIFO-fair `tokio::sync::Mutex`, so
/// each connection has one query in flight at a time (as in a pool) and its
/// tasks take turns; with 8 tasks or fewer, each task owns its client.
#[derive(Debug)]
pub struct NoPoolPg(Vec<Mutex<tokio_postgres::Client>>);

impl NoPoolPg {
    /// Opens the 8 connections.
    pub async fn connect(url: &str) -> Result<Self, String> {
        let mut clients = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(err)?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            clients.push(Mutex::new(client));
        }
        Ok(NoPoolPg(clients))
    }
}

impl Subject for NoPoolPg {
    type Conn<'a> = MutexGuard<'a, tokio_postgres::Client>;

    async fn checkout(&self, task: usize) -> Result<Self::Conn<'_>, String> {
        Ok(self.0[task % self.0.len()].lock().await)
    }

    async fn round_trip(&self, conn: &mut Self::Conn<'_>) -> Result<(), String> {
        select_1(conn).await
    }
}

// ------------------------------------------------------------------ Redis

/// One Redis round trip: `PING`.
async fn ping(conn: &mut (impl redis::aio::ConnectionLike + Send)) -> redis::RedisResult<()> {
    let pong: String = redis::cmd("PING").query_async(conn).await?;
    debug_assert_eq!(pong, "PONG");
    Ok(())
}

/// Our Redis pool (`pool_redis`).
#[derive(Debug)]
pub struct OursRedis(pub RedisPool);

impl OursRedis {
    /// A pool with [`our_settings`], changed by `f`.
    pub fn new(url: &str, f: impl FnOnce(&mut PoolSettings)) -> Self {
        let mut s = our_settings(url);
        s.url_var = "REDIS_URL".into();
        f(&mut s);
        OursRedis(pool_redis::build_pool(s).expect("valid settings"))
    }
}

impl Subject for OursRedis {
    type Conn<'a> = pool_redis::RedisConnection;

    async fn checkout(&self, _task: usize) -> Result<Self::Conn<'_>, String> {
        self.0.get().await.map_err(err)
    }

    async fn round_trip(&self, conn: &mut Self::Conn<'_>) -> Result<(), String> {
        let r = ping(&mut **conn).await;
        conn.observe(r).map_err(err)
    }
}

/// Raw `bb8-redis` with `max_size` 8, otherwise its defaults
/// (`test_on_check_out` = true: a `PING` before every checkout).
#[derive(Debug)]
pub struct Bb8Redis(pub bb8::Pool<RedisConnectionManager>);

impl Bb8Redis {
    /// Builds the pool (bb8 starts its reaper on the current runtime).
    /// `info`: a URL, or connection info built by pool-redis (TLS with a
    /// private CA).
    pub async fn new(info: impl IntoConnectionInfo, test_on_check_out: bool) -> Self {
        let manager = RedisConnectionManager::new(info).expect("valid URL");
        let pool = bb8::Pool::builder()
            .max_size(CONNECTIONS as u32)
            .test_on_check_out(test_on_check_out)
            .build(manager)
            .await
            .expect("valid pool");
        Bb8Redis(pool)
    }
}

impl Subject for Bb8Redis {
    type Conn<'a> = bb8::PooledConnection<'a, RedisConnectionManager>;

    async fn checkout(&self, _task: usize) -> Result<Self::Conn<'_>, String> {
        self.0.get().await.map_err(err)
    }

    async fn round_trip(&self, conn: &mut Self::Conn<'_>) -> Result<(), String> {
        ping(&mut **conn).await.map_err(err)
    }
}

/// The ceiling: 8 dedicated multiplexed connections, no pool. Task `i`
/// always uses connection `i % 8` behind a FIFO-fair `tokio::sync::Mutex`,
/// so each connection carries one command at a time (no pipelining across
/// tasks, as in a pool) and its tasks take turns.
#[derive(Debug)]
pub struct NoPoolRedis(Vec<Mutex<MultiplexedConnection>>);

impl NoPoolRedis {
    /// Opens the 8 connections (`info` as for [`Bb8Redis::new`]).
    pub async fn connect(info: impl IntoConnectionInfo) -> Result<Self, String> {
        let client = redis::Client::open(info).map_err(err)?;
        let mut conns = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            let conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(err)?;
            conns.push(Mutex::new(conn));
        }
        Ok(NoPoolRedis(conns))
    }
}

impl Subject for NoPoolRedis {
    type Conn<'a> = MutexGuard<'a, MultiplexedConnection>;

    async fn checkout(&self, task: usize) -> Result<Self::Conn<'_>, String> {
        Ok(self.0[task % self.0.len()].lock().await)
    }

    async fn round_trip(&self, conn: &mut Self::Conn<'_>) -> Result<(), String> {
        ping(&mut **conn).await.map_err(err)
    }
}

// -------------------------------------------------- bookkeeping (no I/O)

/// A connection that is a number: opening it is free, it never fails.
#[derive(Debug, Default)]
pub struct Counter {
    next: AtomicU64,
}

impl Counter {
    fn open(&self) -> u64 {
        self.next.fetch_add(1, Relaxed)
    }
}

impl pool_core::Manager for Counter {
    type Connection = u64;
    type Error = Infallible;

    async fn connect(&self) -> Result<u64, Infallible> {
        Ok(self.open())
    }

    async fn ping(&self, _conn: &mut u64) -> Result<(), Infallible> {
        Ok(())
    }

    fn is_closed(&self, _conn: &u64) -> bool {
        false
    }

    fn classify(&self, error: &Infallible) -> ErrorClass {
        match *error {}
    }

    fn target(&self) -> String {
        "counter://bench".into()
    }
}

impl deadpool::managed::Manager for Counter {
    type Type = u64;
    type Error = Infallible;

    async fn create(&self) -> Result<u64, Infallible> {
        Ok(self.open())
    }

    async fn recycle(
        &self,
        _conn: &mut u64,
        _metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

/// [`Counter`] for bb8 (bb8 wants a `'static` manager it owns).
#[derive(Debug, Default)]
pub struct Bb8Counter(Counter);

impl bb8::ManageConnection for Bb8Counter {
    type Connection = u64;
    type Error = Infallible;

    async fn connect(&self) -> Result<u64, Infallible> {
        Ok(self.0.open())
    }

    async fn is_valid(&self, _conn: &mut u64) -> Result<(), Infallible> {
        Ok(())
    }

    fn has_broken(&self, _conn: &mut u64) -> bool {
        false
    }
}

/// What a bookkeeping "round trip" does while holding the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Nothing: checkout and return back to back (1 task: the pure cost).
    Nothing,
    /// One `yield_now()`, so that other tasks run while the connection is
    /// out (64 tasks: otherwise a task never yields and nobody contends).
    Yield,
}

async fn hold(how: Hold) {
    if how == Hold::Yield {
        tokio::task::yield_now().await;
    }
}

/// Our engine around a [`Counter`]: `pool_size` 8, `max_overflow` 0,
/// pre-ping on with the default window (the counter's ping is free anyway);
/// each use is reported with `Pooled::observe`.
#[derive(Debug)]
pub struct OursCounter(pub Pool<Counter>, pub Hold);

impl OursCounter {
    /// A pool with `f` applied to its settings.
    pub fn new(how: Hold, f: impl FnOnce(&mut PoolSettings)) -> Self {
        let mut s = our_settings("counter://bench");
        f(&mut s);
        OursCounter(Pool::new(Counter::default(), s), how)
    }
}

impl Subject for OursCounter {
    type Conn<'a> = pool_core::Pooled<Counter>;

    async fn checkout(&self, _task: usize) -> Result<Self::Conn<'_>, String> {
        self.0.get().await.map_err(err)
    }

    async fn round_trip(&self, conn: &mut Self::Conn<'_>) -> Result<(), String> {
        hold(self.1).await;
        // The use succeeded: reported as the PostgreSQL and Redis round
        // trips report theirs, which renews the bypass window (without
        // it every checkout after the first 0.5 s would ping).
        conn.observe(Ok::<(), Infallible>(()))
            .map_err(|e| match e {})
    }
}

/// Raw deadpool around a [`Counter`], `max_size` 8.
#[derive(Debug)]
pub struct DeadpoolCounter(pub deadpool::managed::Pool<Counter>, pub Hold);

impl DeadpoolCounter {
    /// A pool; `wait_timeout` needs deadpool's tokio runtime hook.
    pub fn new(how: Hold, wait_timeout: Option<Duration>) -> Self {
        let mut b = deadpool::managed::Pool::builder(Counter::default()).max_size(CONNECTIONS);
        if wait_timeout.is_some() {
            b = b
                .wait_timeout(wait_timeout)
                .runtime(deadpool::Runtime::Tokio1);
        }
        DeadpoolCounter(b.build().expect("valid pool"), how)
    }
}

impl Subject for DeadpoolCounter {
    type Conn<'a> = deadpool::managed::Object<Counter>;

    async fn checkout(&self, _task: usize) -> Result<Self::Conn<'_>, String> {
        self.0.get().await.map_err(|e| format!("{e:?}"))
    }

    async fn round_trip(&self, _conn: &mut Self::Conn<'_>) -> Result<(), String> {
        hold(self.1).await;
        Ok(())
    }
}

/// Raw bb8 around a [`Counter`], `max_size` 8.
#[derive(Debug)]
pub struct Bb8CounterPool(pub bb8::Pool<Bb8Counter>, pub Hold);

impl Bb8CounterPool {
    /// A pool (needs a runtime: bb8 starts its reaper).
    pub async fn new(how: Hold, test_on_check_out: bool, timeout: Option<Duration>) -> Self {
        let mut b = bb8::Pool::builder()
            .max_size(CONNECTIONS as u32)
            .test_on_check_out(test_on_check_out);
        if let Some(t) = timeout {
            b = b.connection_timeout(t);
        }
        let pool = b.build(Bb8Counter::default()).await.expect("valid pool");
        Bb8CounterPool(pool, how)
    }
}

impl Subject for Bb8CounterPool {
    type Conn<'a> = bb8::PooledConnection<'a, Bb8Counter>;

    async fn checkout(&self, _task: usize) -> Result<Self::Conn<'_>, String> {
        self.0.get().await.map_err(|e| format!("{e:?}"))
    }

    async fn round_trip(&self, _conn: &mut Self::Conn<'_>) -> Result<(), String> {
        hold(self.1).await;
        Ok(())
    }
}
