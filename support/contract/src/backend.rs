//! What a scenario needs from a backend: a private server, a pool, one
//! round trip, and the server-side faults.

use pool_core::error::chain;
use pool_core::{Manager, Pool, PoolSettings, Pooled, SettingsError};
use pool_postgres::PgManager;
use pool_redis::redis;
use pool_redis::RedisManager;
use pool_testkit::{
    HbaTls, PgOptions, PgServer, PgTls, RedisOptions, RedisServer, RedisTls, TestCerts, TLS_HOST,
};
use std::future::Future;

/// A backend under test.
pub trait Backend: Send + Sync + 'static {
    /// The pool's manager.
    type M: Manager;
    /// The private server.
    type Server: Send + 'static;

    /// Name for messages.
    const NAME: &'static str;
    /// Text of the server's wrong-password error.
    const WRONG_PASSWORD_TEXT: &'static str;

    /// Starts a private server (trust / no password).
    fn start() -> Self::Server;
    /// Starts a private server that requires `password`.
    fn start_with_password(password: &str) -> Self::Server;
    /// Starts a private server that accepts TLS only, presenting the
    /// certificate of `certs` that is valid for `localhost`.
    fn start_tls(certs: &TestCerts) -> Self::Server;
    /// The URL of a server from [`Backend::start_tls`]: by the name
    /// `localhost`, verifying chain and host name (the CA is not in it:
    /// set it as the pool's root certificate).
    fn tls_url(server: &Self::Server) -> String;
    /// The server's URL.
    fn url(server: &Self::Server) -> String;
    /// The server's URL with another password.
    fn url_with_password(server: &Self::Server, password: &str) -> String;
    /// Builds a pool, or says which setting is wrong.
    fn try_build(settings: PoolSettings) -> Result<Pool<Self::M>, SettingsError>;
    /// Builds a pool from settings known to be valid.
    fn build(settings: PoolSettings) -> Pool<Self::M> {
        Self::try_build(settings).unwrap_or_else(|e| panic!("invalid test settings: {e}"))
    }

    /// One round trip (`SELECT 1` / `PING`), its error observed.
    fn round_trip(conn: &mut Pooled<Self::M>) -> impl Future<Output = Result<(), String>> + Send;
    /// The server's id of this session (backend pid / `CLIENT ID`).
    fn session_id(conn: &mut Pooled<Self::M>) -> impl Future<Output = i64> + Send;
    /// A command the server rejects without harming the connection.
    fn statement_error(
        conn: &mut Pooled<Self::M>,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// Has the server end this very session, then tries a round trip on it;
    /// the errors are observed.
    fn end_own_session(
        conn: &mut Pooled<Self::M>,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Client sessions the server has (the kit's own excluded).
    fn sessions(server: &Self::Server) -> usize;
    /// Kills every client session; returns how many.
    fn kill_sessions(server: &Self::Server) -> usize;
    /// Restarts the server on the same port.
    fn restart(server: &mut Self::Server);
    /// SIGKILLs the server and starts it again.
    fn kill9_and_start(server: &mut Self::Server);
    /// Stops the server.
    fn stop(server: &mut Self::Server);
    /// Starts a stopped server again on the same port.
    fn start_again(server: &mut Self::Server);
    /// SIGSTOPs every server process.
    fn freeze(server: &Self::Server);
    /// SIGCONTs them.
    fn thaw(server: &Self::Server);
}

fn kit<T>(what: &str, r: pool_testkit::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("test kit: {what}: {e}"))
}

/// PostgreSQL through `pool-postgres`.
#[derive(Debug)]
pub struct Postgres;

impl Backend for Postgres {
    type M = PgManager;
    type Server = PgServer;
    const NAME: &'static str = "postgres";
    const WRONG_PASSWORD_TEXT: &'static str = "password authentication failed";

    fn start() -> PgServer {
        kit("start PostgreSQL", PgServer::start())
    }

    fn start_with_password(password: &str) -> PgServer {
        kit(
            "start PostgreSQL",
            PgServer::start_with(PgOptions {
                password: Some(password.into()),
                ..PgOptions::default()
            }),
        )
    }

    fn start_tls(certs: &TestCerts) -> PgServer {
        kit(
            "start PostgreSQL with TLS",
            PgServer::start_with(PgOptions {
                tls: Some(PgTls::new(certs, HbaTls::SslOnly)),
                ..PgOptions::default()
            }),
        )
    }

    fn tls_url(server: &PgServer) -> String {
        format!("{}?sslmode=verify-full", server.url_at(TLS_HOST))
    }

    fn url(server: &PgServer) -> String {
        server.url()
    }

    fn url_with_password(server: &PgServer, password: &str) -> String {
        server.url_with_password(password)
    }

    fn try_build(settings: PoolSettings) -> Result<Pool<PgManager>, SettingsError> {
        pool_postgres::build_pool(settings)
    }

    async fn round_trip(conn: &mut Pooled<PgManager>) -> Result<(), String> {
        let r = conn.simple_query("SELECT 1").await;
        conn.observe(r).map(|_| ()).map_err(|e| chain(&e))
    }

    async fn session_id(conn: &mut Pooled<PgManager>) -> i64 {
        let row = conn
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap();
        i64::from(row.get::<_, i32>(0))
    }

    async fn statement_error(conn: &mut Pooled<PgManager>) -> Result<(), String> {
        let r = conn.simple_query("SELEC 1").await;
        conn.observe(r).map(|_| ()).map_err(|e| chain(&e))
    }

    async fn end_own_session(conn: &mut Pooled<PgManager>) -> Result<(), String> {
        let r = conn
            .simple_query("SELECT pg_terminate_backend(pg_backend_pid())")
            .await;
        conn.observe(r).map(|_| ()).map_err(|e| chain(&e))
    }

    fn sessions(server: &PgServer) -> usize {
        kit("count sessions", server.client_sessions())
    }

    fn kill_sessions(server: &PgServer) -> usize {
        kit("terminate backends", server.terminate_backends())
    }

    fn restart(server: &mut PgServer) {
        kit("restart", server.restart_fast())
    }

    fn kill9_and_start(server: &mut PgServer) {
        kit("kill -9", server.kill9());
        kit("start again", server.start_again());
    }

    fn stop(server: &mut PgServer) {
        kit("stop", server.stop_fast())
    }

    fn start_again(server: &mut PgServer) {
        kit("start again", server.start_again())
    }

    fn freeze(server: &PgServer) {
        kit("freeze", server.freeze())
    }

    fn thaw(server: &PgServer) {
        kit("thaw", server.thaw())
    }
}

/// Redis through `pool-redis`.
#[derive(Debug)]
pub struct Redis;

impl Backend for Redis {
    type M = RedisManager;
    type Server = RedisServer;
    const NAME: &'static str = "redis";
    const WRONG_PASSWORD_TEXT: &'static str = "Password authentication failed";

    fn start() -> RedisServer {
        kit("start Redis", RedisServer::start())
    }

    fn start_with_password(password: &str) -> RedisServer {
        kit(
            "start Redis",
            RedisServer::start_with(RedisOptions {
                password: Some(password.into()),
                ..RedisOptions::default()
            }),
        )
    }

    fn start_tls(certs: &TestCerts) -> RedisServer {
        kit(
            "start Redis with TLS",
            RedisServer::start_with(RedisOptions {
                tls: Some(RedisTls::new(certs, false)),
                ..RedisOptions::default()
            }),
        )
    }

    fn tls_url(server: &RedisServer) -> String {
        server
            .tls_url()
            .unwrap_or_else(|| panic!("test kit: a Redis server without TLS has no rediss:// URL"))
    }

    fn url(server: &RedisServer) -> String {
        server.url()
    }

    fn url_with_password(server: &RedisServer, password: &str) -> String {
        server.url_with_password(password)
    }

    fn try_build(settings: PoolSettings) -> Result<Pool<RedisManager>, SettingsError> {
        pool_redis::build_pool(settings)
    }

    async fn round_trip(conn: &mut Pooled<RedisManager>) -> Result<(), String> {
        let r: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut **conn).await;
        conn.observe(r).map(|_| ()).map_err(|e| chain(&e))
    }

    async fn session_id(conn: &mut Pooled<RedisManager>) -> i64 {
        redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut **conn)
            .await
            .unwrap()
    }

    async fn statement_error(conn: &mut Pooled<RedisManager>) -> Result<(), String> {
        let r: redis::RedisResult<i64> = redis::cmd("INCRBY")
            .arg("k")
            .arg("not-a-number")
            .query_async(&mut **conn)
            .await;
        conn.observe(r).map(|_| ()).map_err(|e| chain(&e))
    }

    async fn end_own_session(conn: &mut Pooled<RedisManager>) -> Result<(), String> {
        let id = Self::session_id(conn).await;
        let r: redis::RedisResult<i64> = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .arg("SKIPME")
            .arg("no")
            .query_async(&mut **conn)
            .await;
        let killed = conn.observe(r);
        let r: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut **conn).await;
        let ping = conn.observe(r);
        killed.and(ping).map(|_| ()).map_err(|e| chain(&e))
    }

    fn sessions(server: &RedisServer) -> usize {
        kit("count clients", server.client_count())
    }

    fn kill_sessions(server: &RedisServer) -> usize {
        kit("CLIENT KILL", server.client_kill_all())
    }

    fn restart(server: &mut RedisServer) {
        kit("restart", server.restart())
    }

    fn kill9_and_start(server: &mut RedisServer) {
        kit("kill -9", server.kill9());
        kit("start again", server.start_again());
    }

    fn stop(server: &mut RedisServer) {
        kit("stop", server.stop())
    }

    fn start_again(server: &mut RedisServer) {
        kit("start again", server.start_again())
    }

    fn freeze(server: &RedisServer) {
        kit("freeze", server.freeze())
    }

    fn thaw(server: &RedisServer) {
        kit("thaw", server.thaw())
    }
}
