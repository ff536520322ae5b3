//! Server-side session counters, on a connection of their own (straight
//! to the server, never through the fault proxy), reconnecting after a
//! restart and bounded so that a frozen server only costs a missed sample.

use super::driver::Monitor;
use bb8_redis::redis;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Client name of the monitor's own Redis connection.
pub const MONITOR_NAME: &str = "fault-monitor";
/// Client name of other connections of the fault code (the `-LOADING`
/// watcher), left out of the count.
pub const WATCH_NAME: &str = "fault-watch";

/// The monitor's own bound on a connect or a query.
const LIMIT: Duration = Duration::from_millis(800);

/// Counts a PostgreSQL server's client sessions with one
/// `application_name`.
pub struct PgSessions {
    port: u16,
    app: String,
    client: Option<tokio_postgres::Client>,
}

impl std::fmt::Debug for PgSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSessions")
            .field("port", &self.port)
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

impl PgSessions {
    /// Counts sessions named `app` on the server at `127.0.0.1:port`.
    pub fn new(port: u16, app: impl Into<String>) -> Self {
        PgSessions {
            port,
            app: app.into(),
            client: None,
        }
    }

    async fn connect(&mut self) -> Option<&tokio_postgres::Client> {
        if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.client = None;
        }
        if self.client.is_none() {
            let conf = format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres application_name=fault-monitor",
                self.port
            );
            let (client, conn) =
                tokio::time::timeout(LIMIT, tokio_postgres::connect(&conf, tokio_postgres::NoTls))
                    .await
                    .ok()?
                    .ok()?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.client = Some(client);
        }
        self.client.as_ref()
    }

    /// Runs one statement on the monitor's connection (e.g. to terminate
    /// other sessions); `None` if the server does not answer.
    pub async fn execute(&mut self, sql: &str) -> Option<u64> {
        let client = self.connect().await?;
        match tokio::time::timeout(LIMIT * 4, client.execute(sql, &[])).await {
            Ok(Ok(n)) => Some(n),
            _ => {
                self.client = None;
                None
            }
        }
    }

    /// Sessions whose `application_name` is `app`.
    pub async fn count_app(&mut self, app: &str) -> Option<usize> {
        let client = self.connect().await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&app];
        let q = client.query_one(
            "select count(*) from pg_stat_activity \
             where backend_type = 'client backend' and application_name = $1",
            &params,
        );
        match tokio::time::timeout(LIMIT, q).await {
            Ok(Ok(row)) => Some(row.get::<_, i64>(0) as usize),
            _ => {
                self.client = None;
                None
            }
        }
    }
}

impl Monitor for PgSessions {
    fn sample(&mut self) -> Pin<Box<dyn Future<Output = Option<usize>> + Send + '_>> {
        Box::pin(async move {
            let app = self.app.clone();
            self.count_app(&app).await
        })
    }
}

/// Counts a Redis server's normal clients, except the fault code's own
/// (named [`MONITOR_NAME`] / [`WATCH_NAME`]) and a `DEBUG` command's
/// connection (the kit's `DEBUG SLEEP`).
pub struct RedisClients {
    port: u16,
    conn: Option<redis::aio::MultiplexedConnection>,
}

impl std::fmt::Debug for RedisClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClients")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl RedisClients {
    /// Counts clients of the server at `127.0.0.1:port`.
    pub fn new(port: u16) -> Self {
        RedisClients { port, conn: None }
    }

    async fn count(&mut self) -> Option<usize> {
        if self.conn.is_none() {
            let client = redis::Client::open(format!("redis://127.0.0.1:{}/0", self.port)).ok()?;
            let mut conn = tokio::time::timeout(LIMIT, client.get_multiplexed_async_connection())
                .await
                .ok()?
                .ok()?;
            redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg(MONITOR_NAME)
                .query_async::<()>(&mut conn)
                .await
                .ok()?;
            self.conn = Some(conn);
        }
        let conn = self.conn.as_mut()?;
        let list: redis::RedisResult<String> = redis::cmd("CLIENT")
            .arg("LIST")
            .arg("TYPE")
            .arg("normal")
            .query_async(conn)
            .await;
        match list {
            Ok(list) => Some(
                list.lines()
                    .filter(|l| l.starts_with("id="))
                    .filter(|l| {
                        !l.contains(&format!(" name={MONITOR_NAME} "))
                            && !l.contains(&format!(" name={WATCH_NAME} "))
                            && !l.contains(" cmd=debug")
                    })
                    .count(),
            ),
            Err(_) => {
                self.conn = None;
                None
            }
        }
    }
}

impl Monitor for RedisClients {
    fn sample(&mut self) -> Pin<Box<dyn Future<Output = Option<usize>> + Send + '_>> {
        Box::pin(self.count())
    }
}
