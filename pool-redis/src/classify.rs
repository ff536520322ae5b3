//! The one classifier of Redis errors.
//!
//! | error | class |
//! |---|---|
//! | `-NOAUTH`, `-WRONGPASS`, authentication failed, invalid client config, a TLS certificate rejected either way | fatal |
//! | `-LOADING`, `-MASTERDOWN`, `-TRYAGAIN`, `-CLUSTERDOWN`, refused connect, DNS failure | unavailable |
//! | I/O error, dropped connection, `-READONLY` (a failover demoted the node) | disconnected |
//! | response or connect timed out | timeout |
//! | anything else (wrong type, bad arguments, `-NOPERM` for a command) | query |

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
        Some("LOADING" | "MASTERDOWN" | "TRYAGAIN" | "CLUSTERDOWN") => {
            return ErrorClass::Unavailable
        }
        Some("READONLY") => return ErrorClass::Disconnected,
        _ => {}
    }
    // A certificate rejected either way stays wrong until someone changes it.
    if tls_problem(e).is_some() {
        return ErrorClass::Fatal;
    }
    match e.kind() {
        ErrorKind::AuthenticationFailed | ErrorKind::InvalidClientConfig => ErrorClass::Fatal,
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::MasterDown
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown,
        ) => ErrorClass::Unavailable,
        ErrorKind::Server(ServerErrorKind::ReadOnly) => ErrorClass::Disconnected,
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
