//! The one classifier of Redis errors.
//!
//! | error | class |
//! |---|---|
//! | `-NOAUTH`, `-WRONGPASS`, `-ERR DB index is out of range`, authentication failed, invalid client config, a TLS certificate rejected either way | fatal |
//! | `-LOADING`, `-MASTERDOWN`, refused connect, DNS failure | unavailable |
//! | I/O error, dropped connection | disconnected |
//! | `-READONLY` (a replica; a failover demoted the node) | read_only |
//! | response or connect timed out (`REDIS_COMMAND_TIMEOUT`, `REDIS_CONNECT_TIMEOUT`) | timeout |
//! | `-OOM` (`maxmemory` reached), `-BUSY` (a script running), `-MISCONF` (snapshots failing), `-NOREPLICAS` (`min-replicas-to-write`), `-TRYAGAIN` and `-CLUSTERDOWN` (this client is not a cluster client) | resources |
//! | anything else (wrong type, bad arguments, `-NOPERM` for a command, `-BUSYKEY`, `-EXECABORT`) | query |

use bb8_redis::redis::{ErrorKind, RedisError, ServerErrorKind};
use pool_core::ErrorClass;

/// True for `-ERR DB index is out of range`: the URL's `/N` is beyond the
/// server's `databases`; waiting cannot fix it.
pub fn is_db_out_of_range(e: &RedisError) -> bool {
    e.code() == Some("ERR")
        && e.detail()
            .is_some_and(|d| d.contains("DB index is out of range"))
}

/// True when the peer does not speak RESP (an HTTP or PostgreSQL server on
/// the port): redis-rs reports each unexpected byte.
pub fn is_not_redis(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Parse
}

/// The error as operators see it in `redis-cli` and the docs: the server's
/// code and message (`LOADING Redis is loading the dataset in memory`), not
/// redis-rs's variant names; one line; redacted; with a hint when TLS
/// failed.
pub fn error_message(e: &RedisError) -> String {
    if is_not_redis(e) {
        return "the server did not answer in the Redis protocol (RESP): is this port really a Redis server?".into();
    }
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => {
            pool_core::redact::redact_url(&format!("{code} {}", detail.replace('\n', " ")))
        }
        _ => {
            let msg = pool_core::error::chain(e).replace('\n', " ");
            match tls_problem(e) {
                Some(p) if !msg.contains("(hint: ") => format!("{msg} (hint: {})", p.hint()),
                _ => msg,
            }
        }
    }
}

/// Classifies a Redis error.
pub fn classify(e: &RedisError) -> ErrorClass {
    if is_db_out_of_range(e) {
        return ErrorClass::Fatal;
    }
    match e.code() {
        Some("NOAUTH" | "WRONGPASS") => return ErrorClass::Fatal,
        Some("LOADING" | "MASTERDOWN") => return ErrorClass::Unavailable,
        Some("READONLY") => return ErrorClass::ReadOnly,
        // The server refuses this command for now; the connection is
        // sound. TRYAGAIN and CLUSTERDOWN only come from a cluster node,
        // which this (non-cluster) client cannot follow anyway.
        Some("OOM" | "BUSY" | "MISCONF" | "NOREPLICAS" | "TRYAGAIN" | "CLUSTERDOWN") => {
            return ErrorClass::Resources
        }
        _ => {}
    }
    // A certificate rejected either way stays wrong until someone changes it.
    if tls_problem(e).is_some() {
        return ErrorClass::Fatal;
    }
    match e.kind() {
        ErrorKind::AuthenticationFailed | ErrorKind::InvalidClientConfig => ErrorClass::Fatal,
        ErrorKind::Server(ServerErrorKind::BusyLoading | ServerErrorKind::MasterDown) => {
            ErrorClass::Unavailable
        }
        ErrorKind::Server(ServerErrorKind::TryAgain | ServerErrorKind::ClusterDown) => {
            ErrorClass::Resources
        }
        ErrorKind::Server(ServerErrorKind::ReadOnly) => ErrorClass::ReadOnly,
        ErrorKind::Io => {
            if e.is_timeout() {
                ErrorClass::Timeout
            } else if e.is_connection_refusal() || e.to_string().contains("lookup address") {
                ErrorClass::Unavailable
            } else {
                ErrorClass::Disconnected
            }
        }
        _ if e.is_unrecoverable_error() => ErrorClass::Disconnected,
        _ => ErrorClass::Query,
    }
}

/// The TLS problem behind `e`, if any. redis-rs keeps a failed handshake
/// as the text of an I/O error (no source), so the text is read.
pub fn tls_problem(e: &RedisError) -> Option<pool_core::tls::TlsProblem> {
    pool_core::tls::diagnose(e).or_else(|| {
        e.is_io_error()
            .then(|| pool_core::tls::diagnose_message(&e.to_string()))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn io_errors_map_to_classes() {
        let refused: RedisError = io::Error::from(io::ErrorKind::ConnectionRefused).into();
        let reset: RedisError = io::Error::from(io::ErrorKind::ConnectionReset).into();
        let timeout: RedisError = io::Error::from(io::ErrorKind::TimedOut).into();
        assert_eq!(classify(&refused), ErrorClass::Unavailable);
        assert_eq!(classify(&reset), ErrorClass::Disconnected);
        assert_eq!(classify(&timeout), ErrorClass::Timeout);
    }

    /// A server error as redis-rs parses the server's reply.
    fn server_error(reply: &str) -> RedisError {
        let value = bb8_redis::redis::parse_redis_value(reply.as_bytes()).expect("a RESP reply");
        match value {
            bb8_redis::redis::Value::ServerError(e) => e.into(),
            other => panic!("{reply:?} parsed as {other:?}"),
        }
    }

    /// The replies of Redis 7.0 (server.c's shared error objects), as sent.
    /// READONLY, OOM, BUSY and NOREPLICAS are also provoked on a real server
    /// in support/contract/tests/classify_redis.rs; MISCONF, TRYAGAIN and
    /// CLUSTERDOWN are pinned here only (a failing RDB save and a cluster
    /// are not practical in a test).
    #[test]
    fn server_replies_map_to_classes() {
        let cases = [
            ("-NOAUTH Authentication required.\r\n", ErrorClass::Fatal),
            ("-WRONGPASS invalid username-password pair or user is disabled.\r\n", ErrorClass::Fatal),
            ("-ERR DB index is out of range\r\n", ErrorClass::Fatal),
            ("-LOADING Redis is loading the dataset in memory\r\n", ErrorClass::Unavailable),
            (
                "-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n",
                ErrorClass::Unavailable,
            ),
            ("-READONLY You can't write against a read only replica.\r\n", ErrorClass::ReadOnly),
            ("-OOM command not allowed when used memory > 'maxmemory'.\r\n", ErrorClass::Resources),
            (
                "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n",
                ErrorClass::Resources,
            ),
            (
                "-MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.\r\n",
                ErrorClass::Resources,
            ),
            ("-NOREPLICAS Not enough good replicas to write.\r\n", ErrorClass::Resources),
            ("-TRYAGAIN Multiple keys request during rehashing of slot\r\n", ErrorClass::Resources),
            ("-CLUSTERDOWN The cluster is down\r\n", ErrorClass::Resources),
            ("-BUSYKEY Target key name already exists.\r\n", ErrorClass::Query),
            (
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
                ErrorClass::Query,
            ),
            ("-NOPERM this user has no permissions to run the 'get' command\r\n", ErrorClass::Query),
            ("-EXECABORT Transaction discarded because of previous errors.\r\n", ErrorClass::Query),
            ("-ERR unknown command 'FOO'\r\n", ErrorClass::Query),
        ];
        for (reply, class) in cases {
            let e = server_error(reply);
            assert_eq!(classify(&e), class, "{reply:?} -> {e:?}");
            assert!(!class.breaks_connection() || e.code().is_some());
        }
    }

    #[test]
    fn client_config_errors_are_fatal() {
        let e: RedisError = (ErrorKind::InvalidClientConfig, "bad").into();
        assert_eq!(classify(&e), ErrorClass::Fatal);
        let e: RedisError = (ErrorKind::AuthenticationFailed, "no").into();
        assert_eq!(classify(&e), ErrorClass::Fatal);
        let e: RedisError = (ErrorKind::UnexpectedReturnType, "type").into();
        assert_eq!(classify(&e), ErrorClass::Query);
    }
}
