//! The table of pool variables: name, default, parser and doc line.
//!
//! Everything else derives from it: the defaults of [`PoolSettings::new`]
//! are the `default` texts run through the parsers, the loader applies the
//! parsers to what the environment or a file holds, and the configuration
//! reference in `docs/configuration.md` is [`reference_table`] (a test keeps
//! the two equal). To add a setting, add a row.

use super::value::Value;
use super::{Overflow, PoolSettings, ResetOnReturn};
use crate::error::SettingsError;

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct Var {
    /// The key: lower case in a file, upper case after the prefix in the
    /// environment (`pool_size` -> `DB_POOL_SIZE`).
    pub key: &'static str,
    /// The default, as it would be written.
    pub default: &'static str,
    /// What it means, one line of the reference.
    pub doc: &'static str,
    /// Parses a value into the settings.
    pub apply: fn(&mut PoolSettings, &Value) -> Result<(), SettingsError>,
}

/// Every pool variable, in the order of the reference.
pub const VARS: &[Var] = &[
    Var {
        key: "pool_size",
        default: "5",
        doc: "connections kept open in the pool (1 to 10000)",
        apply: |s, v| {
            s.pool_size = v.count(1)?;
            Ok(())
        },
    },
    Var {
        key: "max_overflow",
        default: "10",
        doc: "extra connections opened under load; one returned while `pool_size` connections are already idle is closed. `-1` = no limit; at most 10000. Hard cap: `pool_size + max_overflow` connections",
        apply: |s, v| {
            s.max_overflow = v
                .count_or(-1, 0)?
                .map_or(Overflow::Unlimited, Overflow::Limited);
            Ok(())
        },
    },
    Var {
        key: "pool_timeout",
        default: "30",
        doc: "seconds (float) a checkout may take in all — waiting for a free slot, connecting, validating — before it fails with the pool's state and the last underlying error. Never fires early",
        apply: |s, v| {
            s.pool_timeout = v.seconds()?;
            Ok(())
        },
    },
    Var {
        key: "pool_recycle",
        default: "-1",
        doc: "seconds; a connection older than this is replaced at checkout, never while checked out. Each connection's age limit is shortened by a random 0–2.5 % (at most 30 s) so connections opened together do not all retire together. `-1` = off",
        apply: |s, v| {
            s.pool_recycle = v.seconds_or_off(-1.0, "to never recycle")?;
            Ok(())
        },
    },
    Var {
        key: "pool_pre_ping",
        default: "true",
        doc: "validate an idle connection before handing it out (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`). On or off, a disconnect the pool sees closes every idle connection last proven good before it at once, without a ping (SQLAlchemy's invalidation)",
        apply: |s, v| {
            s.pre_ping = v.boolean()?;
            Ok(())
        },
    },
    Var {
        key: "pool_pre_ping_window",
        default: "0.5",
        doc: "seconds; a connection proven good within this window — opened, validated, or a round trip passed through `Pooled::observe` — is not pinged again (HikariCP's `aliveBypassWindowMs`, but a plain return does not count). `0` = ping every checkout. After a disconnect is seen, older connections are closed whatever the window",
        apply: |s, v| {
            s.pre_ping_window = v.seconds_or_zero()?;
            Ok(())
        },
    },
    Var {
        key: "pool_validation_timeout",
        default: "2",
        doc: "seconds a validation ping may take; a connection that does not answer is discarded and the checkout goes on",
        apply: |s, v| {
            s.validation_timeout = v.seconds()?;
            Ok(())
        },
    },
    Var {
        key: "connect_timeout",
        default: "5",
        doc: "seconds one connection attempt may take (Redis: passed to redis-rs as its connection timeout, replacing its 1 s default)",
        apply: |s, v| {
            s.connect_timeout = v.seconds()?;
            Ok(())
        },
    },
    Var {
        key: "command_timeout",
        default: "0",
        doc: "Redis: seconds to wait for the answer to each command (or pipeline) sent through a pooled connection; then the command fails with a `timeout` error naming this setting and the connection is discarded. A blocking command waits its own timeout plus this one (`BLPOP key 2`: 2 s + this), or without limit when its own timeout is `0` (BLPOP, BRPOP, BRPOPLPUSH, BLMOVE, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP, XREAD/XREADGROUP with BLOCK, WAIT, WAITAOF). `0` = no limit (the default: a command waits as long as the server takes; a dead peer or a cut network is still noticed through `TCP_USER_TIMEOUT`). PostgreSQL: not used (use `statement_timeout`)",
        apply: |s, v| {
            s.command_timeout = v.seconds_or_off(0.0, "for no limit")?;
            Ok(())
        },
    },
    Var {
        key: "tcp_keepalive",
        default: "30",
        doc: "seconds of idleness before TCP keepalive probes (interval a third of it, 3 probes). `0` = off",
        apply: |s, v| {
            s.tcp_keepalive = v.seconds_or_off(0.0, "to turn keepalive off")?;
            Ok(())
        },
    },
    Var {
        key: "tcp_user_timeout",
        default: "15",
        doc: "seconds unacknowledged data may wait before the kernel drops the connection (`TCP_USER_TIMEOUT`): a cut network is noticed even mid-query. `0` = off",
        apply: |s, v| {
            s.tcp_user_timeout = v.seconds_or_off(0.0, "to turn it off")?;
            Ok(())
        },
    },
    Var {
        key: "retry_initial_delay",
        default: "0.05",
        doc: "seconds; the first backoff sleep between connect attempts (upper bound)",
        apply: |s, v| {
            s.retry.initial = v.seconds()?;
            Ok(())
        },
    },
    Var {
        key: "retry_max_delay",
        default: "1",
        doc: "seconds; the longest backoff sleep, jitter included (at least `RETRY_INITIAL_DELAY`). A checkout waiting out an outage notices the server within this much of its return",
        apply: |s, v| {
            s.retry.max = v.seconds()?;
            Ok(())
        },
    },
    Var {
        key: "pool_fail_fast",
        default: "false",
        doc: "while the server is down (the pool's last connect attempt failed), a checkout that needs a new connection fails at once with an `unavailable` error naming the cause, instead of retrying until `POOL_TIMEOUT`; the pool tries to connect again after the backoff (`RETRY_INITIAL_DELAY`, doubling up to `RETRY_MAX_DELAY`). Idle connections are still handed out. For services that should answer 503 at once during an outage (PgBouncer's `server_login_retry`); off, checkouts ride out outages shorter than `POOL_TIMEOUT`",
        apply: |s, v| {
            s.fail_fast = v.boolean()?;
            Ok(())
        },
    },
    Var {
        key: "slow_checkout",
        default: "1",
        doc: "seconds; slower checkouts are logged as warnings",
        apply: |s, v| {
            s.slow_checkout = v.seconds()?;
            Ok(())
        },
    },
    Var {
        key: "pool_min_idle",
        default: "0",
        doc: "connections the housekeeper keeps open and idle, refilled in the background (with the backoff below when the server refuses) when they are closed; at most `POOL_SIZE`. HikariCP `minimumIdle`, pgxpool `MinIdleConns`",
        apply: |s, v| {
            s.min_idle = v.count(0)?;
            Ok(())
        },
    },
    Var {
        key: "pool_idle_timeout",
        default: "0",
        doc: "seconds; idle connections above `min_idle` unused for longer are closed by the housekeeper (close reason `idle_timeout`). `0` = off. HikariCP `idleTimeout`, pgxpool `MaxConnIdleTime`",
        apply: |s, v| {
            s.idle_timeout = v.seconds_or_off(0.0, "to keep idle connections")?;
            Ok(())
        },
    },
    Var {
        key: "pool_keepalive",
        default: "0",
        doc: "seconds; an idle connection neither used nor proven good for this long is pinged by the housekeeper (within `POOL_VALIDATION_TIMEOUT`), one at a time, only while no checkout waits and a slot is free; a failed one is closed (`keepalive_failed`) and counted as a disconnect. `0` = off. HikariCP `keepaliveTime`, pgxpool `HealthCheckPeriod`",
        apply: |s, v| {
            s.keepalive = v.seconds_or_off(0.0, "to turn keepalive pings off")?;
            Ok(())
        },
    },
    Var {
        key: "pool_leak_threshold",
        default: "0",
        doc: "seconds; a connection checked out for longer is reported once: a warning with the pool, how long, the `file:line` of the `get()` call and the current tracing span, and `db_pool_leaks_total`. The connection is not taken away. `0` = off. HikariCP `leakDetectionThreshold` (pgxpool: none)",
        apply: |s, v| {
            s.leak_threshold = v.seconds_or_off(0.0, "to turn leak detection off")?;
            Ok(())
        },
    },
    Var {
        key: "sslmode",
        default: "",
        doc: "PostgreSQL TLS mode, as libpq: `disable`, `allow`, `prefer` (the default when unset), `require`, `verify-ca`, `verify-full` (see the TLS section). Same as `sslmode` in the URL; the two must agree",
        apply: |s, v| {
            let mode = crate::tls::SslMode::parse(&v.text)
                .ok_or_else(|| v.invalid(format!("one of {}", crate::tls::SslMode::NAMES.join(", "))))?;
            s.tls.mode = Some(crate::tls::Sourced::new(mode.as_str(), v.origin.clone()));
            Ok(())
        },
    },
    Var {
        key: "sslrootcert",
        default: "",
        doc: "PostgreSQL: the CA file (PEM) to verify the server against, or `system` for the OS roots. Same as `sslrootcert` in the URL",
        apply: |s, v| tls_file(&mut s.tls.root_cert, v),
    },
    Var {
        key: "sslcert",
        default: "",
        doc: "PostgreSQL: the client certificate file (PEM), for servers that require one. Same as `sslcert` in the URL",
        apply: |s, v| tls_file(&mut s.tls.cert, v),
    },
    Var {
        key: "sslkey",
        default: "",
        doc: "PostgreSQL: the client certificate's key file (PEM, unencrypted). Same as `sslkey` in the URL",
        apply: |s, v| tls_file(&mut s.tls.key, v),
    },
    Var {
        key: "tls_ca_file",
        default: "",
        doc: "Redis (`rediss://`): the CA file (PEM) to verify the server against instead of the OS roots (with the `REDIS_` prefix: `REDIS_TLS_CA_FILE`)",
        apply: |s, v| tls_file(&mut s.tls.root_cert, v),
    },
    Var {
        key: "tls_cert_file",
        default: "",
        doc: "Redis (`rediss://`): the client certificate file (PEM), for `tls-auth-clients yes` (`REDIS_TLS_CERT_FILE`)",
        apply: |s, v| tls_file(&mut s.tls.cert, v),
    },
    Var {
        key: "tls_key_file",
        default: "",
        doc: "Redis (`rediss://`): the client certificate's key file (PEM) (`REDIS_TLS_KEY_FILE`)",
        apply: |s, v| tls_file(&mut s.tls.key, v),
    },
    Var {
        key: "connect_init_sql",
        default: "",
        doc: "PostgreSQL: SQL run on every new connection before its first use (`;`-separated statements, one round trip: `SET search_path = app; SET statement_timeout = '5s'`), inside `CONNECT_TIMEOUT`. An error fails the connect attempt and is classified like any other: a `query` error (a misspelt setting) is retried until `POOL_TIMEOUT` and reported as the last error. HikariCP's `connectionInitSql`; code can add `PgManager::with_init_hook`",
        apply: |s, v| {
            s.connect_init = v.text_or_none();
            Ok(())
        },
    },
    Var {
        key: "connect_init_commands",
        default: "",
        doc: "Redis: commands run on every new connection before its first use, `;`-separated, arguments separated by spaces (`CLIENT SETNAME api; SELECT 2`), inside `CONNECT_TIMEOUT`; code can add `RedisManager::with_init_hook`",
        apply: |s, v| {
            s.connect_init = v.text_or_none();
            Ok(())
        },
    },
    Var {
        key: "pool_reset_on_return",
        default: "rollback",
        doc: "what a connection goes through when a caller hands it back, before anyone else gets it (SQLAlchemy's `reset_on_return`). `rollback`: undo what the caller left behind, with a round trip only when it left something (PostgreSQL: a transaction left open or aborted is rolled back at once after the return, known from the server's transaction status; Redis: an open `MULTI` is discarded, a `WATCH` unwatched, another database's `SELECT` undone). `discard`: reset the whole session every time (PostgreSQL `DISCARD ALL`; Redis `RESET`, then the configured `SELECT`, `AUTH` and `CLIENT SETNAME`). `none`: leave it as it is. Whatever the mode, a connection returned with a request still in flight is never handed out before that request is over: PostgreSQL cancels it server-side and waits, Redis closes the connection",
        apply: |s, v| {
            s.reset_on_return = ResetOnReturn::parse(&v.text)
                .ok_or_else(|| v.invalid(format!("one of {}", ResetOnReturn::NAMES.join(", "))))?;
            Ok(())
        },
    },
    Var {
        key: "pool_name",
        default: "",
        doc: "the pool's name in logs, metrics and errors (default: the prefix in lower case, `db`)",
        apply: |s, v| {
            s.name = v.name()?;
            Ok(())
        },
    },
];

/// Stores a TLS file setting; the libpq and the Redis spelling of one
/// setting (`DB_SSLROOTCERT`, `DB_TLS_CA_FILE`) must not disagree.
fn tls_file(slot: &mut Option<crate::tls::Sourced>, v: &Value) -> Result<(), SettingsError> {
    let text = v.text.trim();
    if text.is_empty() {
        return Ok(());
    }
    if let Some(prev) = slot.as_ref().filter(|p| p.value != text) {
        return Err(v.invalid(format!(
            "the same file as {} ({:?}), or only one of the two",
            prev.origin, prev.value
        )));
    }
    *slot = Some(crate::tls::Sourced::new(text, v.origin.clone()));
    Ok(())
}

/// The variable holding `key` under `prefix` (`DB_`, `pool_size` ->
/// `DB_POOL_SIZE`).
pub fn env_name(prefix: &str, key: &str) -> String {
    format!("{prefix}{}", key.to_ascii_uppercase())
}

/// The Markdown table of the reference, with `prefix` (`DB_`).
pub fn reference_table(prefix: &str) -> String {
    let mut out = String::from("| variable | default | meaning |\n|---|---|---|\n");
    for v in VARS {
        let default = match (v.key, v.default) {
            ("pool_name", "") => "the prefix, lower case".to_string(),
            (_, "") => "unset".to_string(),
            (_, d) => d.to_string(),
        };
        out.push_str(&format!(
            "| `{}` | {default} | {} |\n",
            env_name(prefix, v.key),
            v.doc
        ));
    }
    out
}
