//! What the report's header and CPU figures read from the machine: this
//! process's CPU time and the load average (`/proc`), the cores, CPU model
//! and kernel, the runtime's workers, and the servers' versions.

use std::time::Duration;

/// CPU time this process has used (all threads, user + system), from
/// `/proc/self/stat` (USER_HZ = 100 ticks per second on Linux).
pub fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

/// The 1-minute load average, for the report's header.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

static WORKERS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Records the worker threads of the runtime the report runs on.
pub fn set_tokio_workers(n: usize) {
    let _ = WORKERS.set(n);
}

/// Cores available to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Tokio worker threads of the runtime (one per core unless set).
pub fn tokio_workers() -> usize {
    WORKERS.get().copied().unwrap_or_else(cores)
}

/// The machine, for the report's header.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "{} cores (available_parallelism), CPU: {cpu}, Linux {kernel}, tokio multi-thread runtime with {} workers",
        cores(),
        tokio_workers()
    )
}

/// `SHOW server_version` of the PostgreSQL server.
pub async fn pg_version(url: &str) -> String {
    let Ok((client, conn)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
        return "unknown".into();
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    match client.query_one("SHOW server_version", &[]).await {
        Ok(row) => row.get::<_, String>(0),
        Err(_) => "unknown".into(),
    }
}

/// `redis_version` from `INFO server`.
pub async fn redis_version(url: &str) -> String {
    use bb8_redis::redis;
    let Ok(client) = redis::Client::open(url) else {
        return "unknown".into();
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return "unknown".into();
    };
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}
