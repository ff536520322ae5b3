//! Named counters: stored in PostgreSQL, cached in Redis.
//!
//! - `POST /counter/{name}` increments the row (creating it at 1) and
//!   writes the new value to the cache.
//! - `GET /counter/{name}` reads the cache; on a miss, or when Redis is
//!   unavailable, it reads PostgreSQL and fills the cache.
//!
//! PostgreSQL is the source of truth: when it is down, both fail with 503.
//! Redis is only a cache: when it is down, requests go on without it after
//! at most `CACHE_TIMEOUT`. Values only grow, so the cache keeps the
//! largest value it was given (a Lua script), and a slow writer can never
//! put an older value back.

use crate::error::AppError;
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use pool_postgres::PgPool;
use pool_redis::redis;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The counters table, created at startup if missing.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS counters (
    name text PRIMARY KEY,
    value bigint NOT NULL
)";

const INCREMENT: &str = "INSERT INTO counters (name, value) VALUES ($1, 1)
    ON CONFLICT (name) DO UPDATE SET value = counters.value + 1
    RETURNING value";

const SELECT: &str = "SELECT value FROM counters WHERE name = $1";

/// Sets the cache to `ARGV[1]` (with a TTL of `ARGV[2]` seconds) unless it
/// already holds a larger value.
const CACHE_MAX: &str = "local cur = tonumber(redis.call('GET', KEYS[1]))
local new = tonumber(ARGV[1])
if cur == nil or cur < new then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0";

/// How long a cached value lives.
const CACHE_TTL_SECS: u64 = 300;

/// The longest `/slow` sleep.
const MAX_SLOW_MS: u64 = 60_000;

/// Creates the counters table if it does not exist.
pub async fn ensure_schema(pool: &PgPool) -> Result<(), AppError> {
    let mut conn = pool.get().await?;
    let r = conn.batch_execute(SCHEMA).await;
    match conn.observe(r) {
        Ok(()) => Ok(()),
        // Two instances starting together can race on the catalog; the
        // table exists then.
        Err(e) if e.code().is_some_and(|c| c.code() == "23505") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A counter's value and where it came from.
#[derive(Debug, Serialize)]
pub struct CounterBody {
    /// The counter's name.
    pub name: String,
    /// Its value.
    pub value: i64,
    /// `database` or `cache`.
    pub source: &'static str,
    /// Whether the value is in the cache now.
    pub cached: bool,
}

fn check_name(name: &str) -> Result<(), AppError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "a counter name is 1 to 64 characters of A-Z, a-z, 0-9, '_', '-', '.'",
        ))
    }
}

fn cache_key(name: &str) -> String {
    format!("backend:counter:{name}")
}

/// `POST /counter/{name}`: increments in PostgreSQL, then caches.
pub async fn increment(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<CounterBody>, AppError> {
    check_name(&name)?;
    let value: i64 = {
        let mut conn = st.pg.get().await?;
        let r = conn.query_one(INCREMENT, &[&name]).await;
        conn.observe(r)?.get(0)
    };
    let cached = cache_put(&st, &name, value).await;
    Ok(Json(CounterBody {
        name,
        value,
        source: "database",
        cached,
    }))
}

/// `GET /counter/{name}`: the cache first, then PostgreSQL.
///
/// When the cache read finds Redis unavailable, the value read from
/// PostgreSQL is not written back: a request waits for an unavailable
/// cache at most once (`CACHE_TIMEOUT`), not once per cache command.
pub async fn read(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<CounterBody>, AppError> {
    check_name(&name)?;
    let cache_reachable = match cache_get(&st, &name).await {
        Some(Some(value)) => {
            return Ok(Json(CounterBody {
                name,
                value,
                source: "cache",
                cached: true,
            }))
        }
        Some(None) => true,
        None => false,
    };
    let row = {
        let mut conn = st.pg.get().await?;
        let r = conn.query_opt(SELECT, &[&name]).await;
        conn.observe(r)?
    };
    let Some(row) = row else {
        return Err(AppError::not_found(format!("no counter named {name:?}")));
    };
    let value: i64 = row.get(0);
    let cached = cache_reachable && cache_put(&st, &name, value).await;
    Ok(Json(CounterBody {
        name,
        value,
        source: "database",
        cached,
    }))
}

/// The cached value (`Some(None)` on a miss); `None` when Redis is
/// unavailable (the caller falls back to PostgreSQL).
async fn cache_get(st: &AppState, name: &str) -> Option<Option<i64>> {
    cache_cmd::<Option<i64>>(st, redis::cmd("GET").arg(cache_key(name)), "read").await
}

/// Stores `value` unless the cache holds a larger one; false when Redis is
/// unavailable.
async fn cache_put(st: &AppState, name: &str, value: i64) -> bool {
    let cmd = redis::cmd("EVAL")
        .arg(CACHE_MAX)
        .arg(1)
        .arg(cache_key(name))
        .arg(value)
        .arg(CACHE_TTL_SECS)
        .clone();
    cache_cmd::<i64>(st, &cmd, "write").await.is_some()
}

/// Runs one cache command, checkout and reply together within
/// `CACHE_TIMEOUT`; `None` (and a warning) when Redis is unavailable, too
/// slow, or the command fails — the cache is an optimisation, never a
/// reason to fail a request. A frozen server (the socket open, no reply)
/// is bounded too: the command's connection is then discarded.
async fn cache_cmd<T: redis::FromRedisValue>(
    st: &AppState,
    cmd: &redis::Cmd,
    what: &str,
) -> Option<T> {
    let started = tokio::time::Instant::now();
    let mut conn = match st.redis.get_timeout(st.cache_timeout).await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!(error = %e, "cache unavailable ({what} skipped)");
            return None;
        }
    };
    let left = st.cache_timeout.saturating_sub(started.elapsed());
    let r: redis::RedisResult<T> =
        match tokio::time::timeout(left, cmd.query_async(&mut *conn)).await {
            Ok(r) => r,
            Err(_) => {
                conn.mark_broken();
                tracing::warn!(
                    timeout_s = st.cache_timeout.as_secs_f64(),
                    "cache {what} got no reply within CACHE_TIMEOUT (skipped)"
                );
                return None;
            }
        };
    match conn.observe(r) {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::warn!(error = %pool_core::error::chain(&e), "cache {what} failed");
            None
        }
    }
}

/// `GET /slow` query.
#[derive(Debug, Deserialize)]
pub struct SlowQuery {
    /// Milliseconds to sleep (at most 60 000; default 1000).
    pub ms: Option<u64>,
}

/// `GET /slow` body.
#[derive(Debug, Serialize)]
pub struct SlowBody {
    /// How long the server slept.
    pub slept_ms: u64,
}

/// `GET /slow?ms=N`: holds a PostgreSQL connection for `pg_sleep`. Shows
/// that a shutdown lets in-flight requests finish before closing the pools.
pub async fn slow(
    State(st): State<AppState>,
    q: Result<Query<SlowQuery>, QueryRejection>,
) -> Result<Json<SlowBody>, AppError> {
    let Query(q) = q?;
    let ms = q.ms.unwrap_or(1000);
    if ms > MAX_SLOW_MS {
        return Err(AppError::bad_request(format!(
            "ms is at most {MAX_SLOW_MS}"
        )));
    }
    let secs = Duration::from_millis(ms).as_secs_f64();
    let mut conn = st.pg.get().await?;
    let r = conn.execute("SELECT pg_sleep($1)", &[&secs]).await;
    conn.observe(r)?;
    Ok(Json(SlowBody { slept_ms: ms }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["a", "page-views", "v1.2_x", &"x".repeat(64)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "ä", &"x".repeat(65), "a:b"] {
            let err = check_name(bad).unwrap_err();
            assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
