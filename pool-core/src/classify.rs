//! Error classes shared by every backend.
//!
//! Each backend has exactly one classifier (its [`crate::Manager::classify`])
//! that maps its native errors into an [`ErrorClass`]. Everything else —
//! whether a checkout retries, whether a connection is discarded, whether a
//! startup wait gives up — is decided from the class, here, once.

use serde::Serialize;
use std::fmt;

/// What an error means for the pool and for a caller waiting on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Waiting will not fix it: wrong password, unknown user or database,
    /// bad configuration. Checkouts and startup waits stop at once.
    Fatal,
    /// The server cannot be reached or is not ready yet: the name does not
    /// resolve, the port refuses, the server is starting up, in recovery,
    /// loading (`57P03`, `-LOADING`, `-MASTERDOWN`). Retry with backoff.
    Unavailable,
    /// The connection is dead: closed socket, I/O error, administrator
    /// shutdown, SQLSTATE class 08. Discard it; a new one may work.
    Disconnected,
    /// A time limit passed; the connection's state is unknown, so it is
    /// discarded like a dead one.
    Timeout,
    /// The statement itself failed (syntax, constraint, wrong type); the
    /// connection is healthy and goes back to the pool.
    Query,
}

impl ErrorClass {
    /// Every class, in declaration order (the order of [`ErrorClass::index`]).
    pub const ALL: [ErrorClass; 5] = [
        ErrorClass::Fatal,
        ErrorClass::Unavailable,
        ErrorClass::Disconnected,
        ErrorClass::Timeout,
        ErrorClass::Query,
    ];

    /// Its position in [`ErrorClass::ALL`], for arrays of counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// True when retrying later cannot succeed.
    pub fn is_fatal(self) -> bool {
        self == ErrorClass::Fatal
    }

    /// True when the connection that produced the error must not be reused.
    pub fn breaks_connection(self) -> bool {
        matches!(
            self,
            ErrorClass::Unavailable | ErrorClass::Disconnected | ErrorClass::Timeout
        )
    }

    /// True when waiting and retrying may succeed.
    pub fn is_transient(self) -> bool {
        self.breaks_connection()
    }

    /// A short lowercase name, as used in logs, metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Fatal => "fatal",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Disconnected => "disconnected",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Query => "query",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_query_errors_keep_the_connection() {
        for class in [
            ErrorClass::Unavailable,
            ErrorClass::Disconnected,
            ErrorClass::Timeout,
        ] {
            assert!(class.breaks_connection(), "{class}");
            assert!(class.is_transient(), "{class}");
        }
        assert!(!ErrorClass::Query.breaks_connection());
        assert!(!ErrorClass::Fatal.is_transient());
        assert!(ErrorClass::Fatal.is_fatal());
    }

    #[test]
    fn the_class_table_is_in_index_order() {
        for (i, class) in ErrorClass::ALL.into_iter().enumerate() {
            assert_eq!(class.index(), i, "{class}");
        }
    }
}
