//! The Redis health probe: `PING`, then a write/read round trip, through
//! the pool.
//!
//! The report, the timeout handling and the up/degraded/down rule are
//! pool-core's ([`pool_core::health`]); this module supplies only the
//! operation ([`HealthCheck`] for [`RedisManager`]).
//!
//! ```no_run
//! # async fn demo(pool: pool_redis::RedisPool) {
//! use std::time::Duration;
//! let report = pool.health(Duration::from_secs(2)).await;
//! println!("{}", report.status); // up / degraded / down
//! # }
//! ```

use crate::manager::RedisManager;
use bb8_redis::redis::{self, aio::ConnectionLike, RedisError};
pub use pool_core::health::{HealthCheck, HealthReport, HealthStatus};

/// The key prefix used by health checks, so they never touch application
/// keys.
pub const HEALTH_KEY_PREFIX: &str = "pool-redis:health:";

/// Writes a namespaced key with a short TTL, reads it back and deletes it.
/// Proves the server accepts writes (not a read-only replica, not out of
/// memory) as well as reads.
pub async fn read_write_check(conn: &mut (impl ConnectionLike + Send)) -> Result<(), RedisError> {
    let key = format!(
        "{HEALTH_KEY_PREFIX}{}:{}",
        std::process::id(),
        random_token()
    );
    let token = random_token();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(&token)
        .arg("EX")
        .arg(10)
        .query_async(conn)
        .await?;
    let read: Option<String> = redis::cmd("GET").arg(&key).query_async(conn).await?;
    let _: i64 = redis::cmd("DEL").arg(&key).query_async(conn).await?;
    if read.as_deref() != Some(token.as_str()) {
        return Err((
            redis::ErrorKind::UnexpectedReturnType,
            "health check read back a different value",
        )
            .into());
    }
    Ok(())
}

/// `PING` (which also catches `-LOADING` and `-MASTERDOWN`), then
/// [`read_write_check`] (which catches read-only replicas and a full
/// `maxmemory`).
impl HealthCheck for RedisManager {
    async fn check(&self, conn: &mut crate::RedisConn) -> Result<(), RedisError> {
        let pong: String = redis::cmd("PING").query_async(conn).await?;
        if pong != "PONG" {
            return Err((
                redis::ErrorKind::UnexpectedReturnType,
                "PING did not answer PONG",
            )
                .into());
        }
        read_write_check(conn).await
    }
}

/// A random 64-bit token in hex: the health key's suffix and the value
/// written, so concurrent probes (from this process or others) never read
/// each other's key.
fn random_token() -> String {
    format!("{:016x}", fastrand::u64(..))
}
