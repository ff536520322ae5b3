//! The connection parameters each backend accepts: one table per backend.
//!
//! A parameter the table does not list is an error naming it, so a typo
//! (`sslmod=require`) is caught before the driver sees it. Adding a
//! parameter is one line: its name, whether it is a secret, the check of its
//! value and a doc line. Secrets are masked by [`crate::redact`], which reads
//! its list of secret names from these tables too.

use super::Backend;

/// One connection parameter.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    /// The name as written in a query string or a `key=value` string.
    pub name: &'static str,
    /// True for credentials: never shown, masked in every message.
    pub secret: bool,
    /// Checks a value; the error says what is expected.
    pub check: fn(&str) -> Result<(), String>,
    /// What it does, for the docs.
    pub doc: &'static str,
}

const fn spec(
    name: &'static str,
    check: fn(&str) -> Result<(), String>,
    doc: &'static str,
) -> ParamSpec {
    ParamSpec {
        name,
        secret: false,
        check,
        doc,
    }
}

const fn secret(name: &'static str, doc: &'static str) -> ParamSpec {
    ParamSpec {
        name,
        secret: true,
        check: any,
        doc,
    }
}

/// Any value.
pub fn any(_: &str) -> Result<(), String> {
    Ok(())
}

/// A whole number of seconds (tokio-postgres reads `i64`; `0` or less = off).
pub fn whole_seconds(v: &str) -> Result<(), String> {
    v.parse::<i64>()
        .map(|_| ())
        .map_err(|_| "a whole number of seconds".into())
}

/// A count that fits in `u32`.
pub fn count(v: &str) -> Result<(), String> {
    v.parse::<u32>()
        .map(|_| ())
        .map_err(|_| "a whole number >= 0".into())
}

/// `0` or `1`.
pub fn flag(v: &str) -> Result<(), String> {
    v.parse::<u64>().map(|_| ()).map_err(|_| "0 or 1".into())
}

/// Comma-separated IP addresses.
pub fn ip_list(v: &str) -> Result<(), String> {
    v.split(',')
        .all(|a| a.parse::<std::net::IpAddr>().is_ok())
        .then_some(())
        .ok_or_else(|| "comma-separated IP addresses".into())
}

/// A check accepting exactly `allowed`.
macro_rules! one_of {
    ($($v:literal),+) => {{
        fn check(v: &str) -> Result<(), String> {
            if [$($v),+].contains(&v) {
                Ok(())
            } else {
                Err(concat!("one of:", $(" ", $v),+).into())
            }
        }
        check
    }};
}

/// PostgreSQL parameters besides `host`, `port`, `user`, `password` and
/// `dbname` (which the grammar reads into their own fields). Values are
/// those tokio-postgres 0.7 accepts.
pub const POSTGRES_PARAMS: &[ParamSpec] = &[
    spec(
        "hostaddr",
        ip_list,
        "IP addresses to connect to, skipping DNS",
    ),
    spec("options", any, "command-line options sent to the server"),
    spec("application_name", any, "name shown in pg_stat_activity"),
    spec(
        "sslmode",
        one_of!(
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full"
        ),
        "whether to use TLS and what to verify (libpq's meaning; see pool_core::tls)",
    ),
    spec(
        "sslrootcert",
        any,
        "the CA file to verify the server against, or `system`",
    ),
    spec("sslcert", any, "the client certificate file"),
    spec("sslkey", any, "the client certificate's key file"),
    spec(
        "sslnegotiation",
        one_of!("postgres", "direct"),
        "how TLS is negotiated",
    ),
    spec(
        "connect_timeout",
        whole_seconds,
        "seconds one connect may take",
    ),
    spec(
        "tcp_user_timeout",
        whole_seconds,
        "TCP_USER_TIMEOUT in seconds",
    ),
    spec("keepalives", flag, "TCP keepalive on (1) or off (0)"),
    spec(
        "keepalives_idle",
        whole_seconds,
        "idle seconds before keepalive probes",
    ),
    spec(
        "keepalives_interval",
        whole_seconds,
        "seconds between keepalive probes",
    ),
    spec(
        "keepalives_retries",
        count,
        "keepalive probes before the connection is dropped",
    ),
    spec(
        "target_session_attrs",
        one_of!("any", "read-write", "read-only"),
        "which server of a multi-host list to accept",
    ),
    spec(
        "channel_binding",
        one_of!("disable", "prefer", "require"),
        "SCRAM channel binding",
    ),
    spec(
        "load_balance_hosts",
        one_of!("disable", "random"),
        "try the hosts in order or in random order",
    ),
    secret("sslpassword", "password of the client key (masked)"),
];

/// Redis query parameters (redis-rs 1.x): `protocol` everywhere; on Unix
/// sockets also `db`, `user` and `pass`, which the grammar reads into their
/// own fields.
pub const REDIS_PARAMS: &[ParamSpec] = &[spec(
    "protocol",
    one_of!("2", "3", "resp2", "resp3"),
    "RESP protocol version",
)];

/// Names that hold a password in some form, masked wherever they appear.
pub const SECRET_NAMES: &[&str] = &["password", "pass"];

/// The table of `backend`.
pub fn table(backend: Backend) -> &'static [ParamSpec] {
    match backend {
        Backend::Postgres => POSTGRES_PARAMS,
        Backend::Redis => REDIS_PARAMS,
    }
}

/// Every parameter name that holds a secret, in any backend.
pub fn secret_names() -> impl Iterator<Item = &'static str> {
    SECRET_NAMES.iter().copied().chain(
        POSTGRES_PARAMS
            .iter()
            .chain(REDIS_PARAMS)
            .filter(|p| p.secret)
            .map(|p| p.name),
    )
}

/// Names the grammar reads into their own fields.
pub const STRUCTURAL_NAMES: &[&str] = &["host", "port", "user", "password", "dbname", "db", "pass"];

/// Every option name of either backend, structural ones included.
pub fn known_names() -> impl Iterator<Item = &'static str> {
    STRUCTURAL_NAMES
        .iter()
        .copied()
        .chain(POSTGRES_PARAMS.iter().chain(REDIS_PARAMS).map(|p| p.name))
}

/// Checks `key=value` against `backend`'s table.
pub fn check(backend: Backend, key: &str, value: &str) -> Result<bool, String> {
    let spec = table(backend)
        .iter()
        .find(|p| p.name == key)
        .ok_or_else(|| {
            let known: Vec<&str> = table(backend).iter().map(|p| p.name).collect();
            format!("unknown option '{key}' (known: {})", known.join(", "))
        })?;
    if !spec.secret {
        (spec.check)(value).map_err(|expected| {
            format!("invalid value {value:?} for option '{key}': expected {expected}")
        })?;
    }
    Ok(spec.secret)
}
