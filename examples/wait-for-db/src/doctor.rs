//! `wait-for-db doctor`: a layered diagnosis, one line per layer.
//!
//! DNS → TCP → TLS (see [`crate::tlscheck`]) → login (protocol and
//! authentication) → query, then for
//! PostgreSQL the server's role and the connection headroom against this
//! application's pool (`DB_POOL_SIZE + DB_MAX_OVERFLOW`), and for Redis the
//! server's role and a write/read/delete round trip. A layer is only checked
//! when the ones below it passed; the others are shown as skipped.

use crate::targets::{Kind, Target};
use crate::tlscheck;
use pool_core::startup::{self, Endpoint, Failure, SystemResolver};
use pool_core::ErrorClass;
use pool_postgres::PgProbe;
use pool_redis::redis;
use pool_redis::RedisProbe;
use serde::Serialize;
use std::fmt::Write as _;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio_postgres::SimpleQueryMessage;

/// How one layer fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It works.
    Ok,
    /// It works, but something deserves attention (does not fail the run).
    Warn,
    /// It does not work.
    Fail,
    /// Not checked because a layer below failed.
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "[ ok ]",
            Status::Warn => "[warn]",
            Status::Fail => "[FAIL]",
            Status::Skip => "[skip]",
        }
    }
}

/// One layer's result.
#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    /// `dns`, `tcp`, `tls`, `login`, `query`, `server`, `capacity`,
    /// `read_write`.
    pub layer: &'static str,
    /// How it fared.
    pub status: Status,
    /// What was found (redacted).
    pub detail: String,
    /// What to check when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Layer {
    pub(crate) fn ok(layer: &'static str, detail: impl Into<String>) -> Self {
        Layer {
            layer,
            status: Status::Ok,
            detail: detail.into(),
            hint: None,
        }
    }

    pub(crate) fn warn(
        layer: &'static str,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Layer {
            layer,
            status: Status::Warn,
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }

    pub(crate) fn failed(layer: &'static str, detail: String, hint: Option<String>) -> Self {
        Layer {
            layer,
            status: Status::Fail,
            detail,
            hint,
        }
    }

    fn fail(layer: &'static str, failure: Failure) -> Self {
        Layer {
            layer,
            status: Status::Fail,
            detail: failure.message,
            hint: failure.hint,
        }
    }

    fn skip(layer: &'static str) -> Self {
        Layer {
            layer,
            status: Status::Skip,
            detail: "not checked: a layer below failed".into(),
            hint: None,
        }
    }
}

/// The diagnosis of one target.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// The target, redacted.
    pub target: String,
    /// Its kind.
    pub kind: Kind,
    /// The layers, bottom up.
    pub layers: Vec<Layer>,
}

impl Diagnosis {
    /// True when no layer failed or was skipped.
    pub fn passed(&self) -> bool {
        self.layers
            .iter()
            .all(|l| matches!(l.status, Status::Ok | Status::Warn))
    }

    /// The text form: a header line, then one line per layer (a failed
    /// layer's hint on the line after it).
    pub fn render(&self) -> String {
        let mut out = format!("{}\n", self.target);
        for l in &self.layers {
            let _ = writeln!(out, "  {} {:<10} {}", l.status.label(), l.layer, l.detail);
            if let (Some(hint), Status::Fail | Status::Warn) = (&l.hint, l.status) {
                let _ = writeln!(out, "  {:6} {:<10} hint: {hint}", "", "");
            }
        }
        out
    }
}

/// Diagnoses every target in parallel; results in the order given.
pub async fn diagnose_all(targets: &[Target], limit: Duration) -> Vec<Diagnosis> {
    let handles: Vec<_> = targets
        .iter()
        .cloned()
        .map(|t| tokio::spawn(async move { diagnose(&t, limit).await }))
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(d) => out.push(d),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}

/// Diagnoses one target, layer by layer.
pub async fn diagnose(target: &Target, limit: Duration) -> Diagnosis {
    let mut layers = Vec::new();
    let mut ok = true;
    for ep in target.endpoints() {
        let dns = dns_layer(&ep, limit).await;
        ok = dns.status == Status::Ok;
        layers.push(dns);
        if !ok {
            layers.push(Layer::skip("tcp"));
            break;
        }
        let tcp = tcp_layer(&ep, limit).await;
        ok = tcp.status == Status::Ok;
        layers.push(tcp);
        if !ok {
            break;
        }
    }
    let upper: &[&'static str] = match target {
        Target::Postgres(_) => &["tls", "login", "query", "server", "capacity"],
        Target::Redis(_) => &["tls", "login", "server", "read_write"],
        Target::Tcp(_) => &[],
    };
    if ok {
        // TLS, against the endpoint the connections try first (none for a
        // Unix socket).
        if let Some(ep) = target.endpoints().into_iter().next() {
            let tls = match target {
                Target::Postgres(p) => Some(tls_layer(limit, tlscheck::postgres(p, &ep)).await),
                Target::Redis(p) => Some(tls_layer(limit, tlscheck::redis(p, &ep)).await),
                Target::Tcp(_) => None,
            };
            if let Some(tls) = tls {
                ok = tls.status != Status::Fail;
                layers.push(tls);
            }
        }
    }
    if !ok {
        let done = layers.iter().filter(|l| upper.contains(&l.layer)).count();
        layers.extend(upper[done..].iter().copied().map(Layer::skip));
    } else {
        match target {
            Target::Postgres(p) => layers.extend(postgres_layers(p, limit).await),
            Target::Redis(p) => layers.extend(redis_layers(p, limit).await),
            Target::Tcp(_) => {}
        }
    }
    Diagnosis {
        target: target.describe(),
        kind: target.kind(),
        layers,
    }
}

async fn dns_layer(ep: &Endpoint, limit: Duration) -> Layer {
    let started = Instant::now();
    match startup::resolve(ep, &SystemResolver, limit).await {
        Ok(addrs) => {
            let ips: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            Layer::ok(
                "dns",
                format!(
                    "'{}' resolves to {} ({})",
                    ep.host,
                    ips.join(", "),
                    ms(started)
                ),
            )
        }
        Err(f) => Layer::fail("dns", f),
    }
}

async fn tcp_layer(ep: &Endpoint, limit: Duration) -> Layer {
    let started = Instant::now();
    match startup::check_endpoint(ep, &SystemResolver, limit).await {
        Ok(_) => Layer::ok(
            "tcp",
            format!(
                "{}:{} accepts connections ({})",
                ep.host,
                ep.port,
                ms(started)
            ),
        ),
        Err(f) => Layer::fail("tcp", f),
    }
}

/// Runs the TLS check within `limit`; a timeout fails the layer.
async fn tls_layer(limit: Duration, fut: impl Future<Output = Layer>) -> Layer {
    match tokio::time::timeout(limit, fut).await {
        Ok(layer) => layer,
        Err(_) => Layer::failed(
            "tls",
            format!("no TLS handshake within {:.1}s", limit.as_secs_f64()),
            Some("the server is frozen or overloaded, or this port does not speak TLS".into()),
        ),
    }
}

/// Runs `fut` within `limit`; a timeout becomes a [`Failure`].
async fn bounded<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(Failure::new(
            startup::Stage::Protocol,
            ErrorClass::Timeout,
            format!("{what}: no answer within {:.1}s", limit.as_secs_f64()),
        )
        .with_hint("the server is frozen or overloaded, or the network drops packets")),
    }
}

async fn postgres_layers(probe: &PgProbe, limit: Duration) -> Vec<Layer> {
    let mut layers = Vec::new();
    let started = Instant::now();
    let client = match bounded(limit, "login", probe.connect()).await {
        Ok(c) => c,
        Err(f) if f.stage == startup::Stage::Query => {
            layers.push(Layer::ok("login", "authenticated"));
            layers.push(Layer::fail("query", f));
            layers.extend(["server", "capacity"].map(Layer::skip));
            return layers;
        }
        Err(f) => {
            layers.push(Layer::fail("login", f));
            layers.extend(["query", "server", "capacity"].map(Layer::skip));
            return layers;
        }
    };
    layers.push(Layer::ok(
        "login",
        format!("authenticated and connected ({})", ms(started)),
    ));

    let started = Instant::now();
    match bounded(limit, "SELECT 1", pg_row(&client, "SELECT 1")).await {
        Ok(_) => layers.push(Layer::ok(
            "query",
            format!("SELECT 1 answered in {}", ms(started)),
        )),
        Err(f) => {
            layers.push(Layer::fail("query", f));
            layers.extend(["server", "capacity"].map(Layer::skip));
            return layers;
        }
    }

    let server_sql = "SELECT current_setting('server_version'), pg_is_in_recovery()::text, \
                      current_user, current_database()";
    layers.push(
        match bounded(limit, "server", pg_row(&client, server_sql)).await {
            Ok(row) => {
                let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
                let who = format!("user {}, database {}", get(2), get(3));
                if get(1) == "t" {
                    Layer::warn(
                        "server",
                        format!(
                            "PostgreSQL {}, standby in recovery (read-only); {who}",
                            get(0)
                        ),
                        "writes will fail here: point DATABASE_URL at the primary",
                    )
                } else {
                    Layer::ok("server", format!("PostgreSQL {}, primary; {who}", get(0)))
                }
            }
            Err(f) => Layer::fail("server", f),
        },
    );

    let capacity_sql = "SELECT current_setting('max_connections'), \
         current_setting('superuser_reserved_connections'), \
         coalesce(current_setting('reserved_connections', true), '0'), \
         (SELECT coalesce(sum(numbackends), 0) FROM pg_stat_database)::text";
    // Sessions as the server counts them against max_connections:
    // pg_stat_activity hides other roles' backend_type from a non-superuser
    // (NULL), pg_stat_database's numbackends does not.
    layers.push(
        match bounded(limit, "capacity", pg_row(&client, capacity_sql)).await {
            Ok(row) => capacity_layer(&row),
            Err(f) => Layer::fail("capacity", f),
        },
    );
    layers
}

/// Runs `sql` and returns the first row as text columns.
async fn pg_row(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<Vec<Option<String>>, Failure> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| pool_postgres::ready::failure(&e))?;
    for m in messages {
        if let SimpleQueryMessage::Row(row) = m {
            return Ok((0..row.len())
                .map(|i| row.get(i).map(str::to_string))
                .collect());
        }
    }
    Err(Failure::new(
        startup::Stage::Query,
        ErrorClass::Query,
        format!("'{sql}' returned no row"),
    ))
}

fn capacity_layer(row: &[Option<String>]) -> Layer {
    let num = |i: usize| -> i64 {
        row.get(i)
            .cloned()
            .flatten()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (max, su_reserved, reserved, in_use) = (num(0), num(1), num(2), num(3));
    // This check's own session is one of them and goes away.
    let others = (in_use - 1).max(0);
    let usable = max - su_reserved - reserved;
    let free = usable - others;
    let base = format!(
        "max_connections={max} ({} reserved), {others} other session(s) in use, {free} free for this application",
        su_reserved + reserved
    );
    let settings = match pool_postgres::settings_from_env() {
        Ok(s) => s,
        Err(e) => {
            return Layer {
                layer: "capacity",
                status: Status::Fail,
                detail: format!("{base}; cannot read the pool settings: {e}"),
                hint: Some("fix the DB_* variable named above".into()),
            }
        }
    };
    let sizing = format!(
        "DB_POOL_SIZE={} + DB_MAX_OVERFLOW={}",
        settings.pool_size,
        settings.max_overflow_value()
    );
    match settings.max_size() {
        None => Layer::warn(
            "capacity",
            format!("{base}; the pool may open any number ({sizing})"),
            "an unlimited overflow can exhaust max_connections under load: set DB_MAX_OVERFLOW to a limit",
        ),
        Some(need) if free >= i64::from(need) => Layer::ok(
            "capacity",
            format!(
                "{base}; one replica needs up to {need} ({sizing}): room for {} replica(s)",
                free / i64::from(need.max(1))
            ),
        ),
        Some(need) => Layer {
            layer: "capacity",
            status: Status::Fail,
            detail: format!("{base}; one replica needs up to {need} ({sizing}): not enough"),
            hint: Some(
                "checkouts will fail with 'too many clients' (53300): raise max_connections, \
                 lower DB_POOL_SIZE/DB_MAX_OVERFLOW, or put PgBouncer in front"
                    .into(),
            ),
        },
    }
}

async fn redis_layers(probe: &RedisProbe, limit: Duration) -> Vec<Layer> {
    let mut layers = Vec::new();
    let started = Instant::now();
    let mut conn = match bounded(limit, "login", probe.connect()).await {
        Ok(c) => c,
        Err(f) => {
            layers.push(Layer::fail("login", f));
            layers.extend(["server", "read_write"].map(Layer::skip));
            return layers;
        }
    };
    layers.push(Layer::ok(
        "login",
        format!(
            "connected, authenticated, PING answered PONG ({})",
            ms(started)
        ),
    ));

    let info = async {
        redis::cmd("INFO")
            .arg("server")
            .arg("replication")
            .query_async::<String>(&mut conn.clone())
            .await
            .map_err(|e| pool_redis::ready::failure(&e))
    };
    layers.push(match bounded(limit, "INFO", info).await {
        Ok(text) => {
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                    .map(|v| v.trim().to_string())
                    .unwrap_or_else(|| "?".into())
            };
            let (version, role) = (field("redis_version"), field("role"));
            if role == "master" {
                Layer::ok("server", format!("Redis {version}, role master"))
            } else {
                Layer::warn(
                    "server",
                    format!(
                        "Redis {version}, role {role} (master link {})",
                        field("master_link_status")
                    ),
                    "a replica is read-only: point REDIS_URL at the master",
                )
            }
        }
        Err(f) => Layer::fail("server", f),
    });

    let started = Instant::now();
    let rw = async {
        pool_redis::health::read_write_check(&mut conn)
            .await
            .map_err(|e| pool_redis::ready::failure(&e))
    };
    layers.push(match bounded(limit, "read/write", rw).await {
        Ok(()) => Layer::ok(
            "read_write",
            format!(
                "SET/GET/DEL of a {}* key round trip in {}",
                pool_redis::health::HEALTH_KEY_PREFIX,
                ms(started)
            ),
        ),
        Err(f) => Layer::fail("read_write", f),
    });
    layers
}

fn ms(started: Instant) -> String {
    format!("{:.1} ms", started.elapsed().as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: &[&str]) -> Vec<Option<String>> {
        values.iter().map(|v| Some(v.to_string())).collect()
    }

    #[test]
    fn capacity_compares_free_slots_with_the_pool() {
        // Defaults: DB_POOL_SIZE=5 + DB_MAX_OVERFLOW=10 = 15.
        let l = capacity_layer(&row(&["100", "3", "0", "8"]));
        assert_eq!(l.status, Status::Ok, "{}", l.detail);
        assert!(l.detail.contains("7 other session(s)"), "{}", l.detail);
        assert!(l.detail.contains("90 free"), "{}", l.detail);
        let l = capacity_layer(&row(&["20", "3", "0", "5"]));
        assert_eq!(l.status, Status::Fail, "{}", l.detail);
        assert!(l.hint.unwrap().contains("max_connections"));
    }

    #[test]
    fn render_puts_one_layer_per_line() {
        let d = Diagnosis {
            target: "tcp://db:1".into(),
            kind: Kind::Tcp,
            layers: vec![
                Layer::ok("dns", "'db' resolves to 10.0.0.1"),
                Layer::fail(
                    "tcp",
                    Failure::new(startup::Stage::Tcp, ErrorClass::Unavailable, "refused")
                        .with_hint("start it"),
                ),
            ],
        };
        assert!(!d.passed());
        let text = d.render();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.contains("[FAIL] tcp"), "{text}");
        assert!(text.contains("hint: start it"), "{text}");
    }
}
