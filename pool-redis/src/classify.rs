//! The one classifier of Redis errors.
//!
//! | error | class |
//! |---|---|
//! | `-NOAUTH`, `-WRONGPASS`, authentication failed, invalid client config | fatal |
//! | `-LOADING`, `-MASTERDOWN`, `-TRYAGAIN`, `-CLUSTERDOWN`, refused connect, DNS failure | unavailable |
//! | I/O error, dropped connection, `-READONLY` (a failover demoted the node) | disconnected |
//! | response or connect timed out | timeout |
//! | anything else (wrong type, bad arguments, `-NOPERM` for a command) | query |

use bb8_redis::redis::{ErrorKind, RedisError, ServerErrorKind};
use pool_core::ErrorClass;

/// Classifies a Redis error.
pub fn classify(e: &RedisError) -> ErrorClass {
    match e.code() {
        Some("NOAUTH" | "WRONGPASS") => return ErrorClass::Fatal,
        Some("LOADING" | "MASTERDOWN" | "TRYAGAIN" | "CLUSTERDOWN") => {
            return ErrorClass::Unavailable
        }
        Some("READONLY") => return ErrorClass::Disconnected,
        _ => {}
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
