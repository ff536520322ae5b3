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
    /// The server accepts no writes: a primary demoted by a failover, a
    /// hot standby, a replica (`25006` read_only_sql_transaction,
    /// `-READONLY`). The connection must not be reused for writes: it is
    /// discarded, and, as after a disconnect, the older idle connections
    /// too (they reach the same node); a new connection may reach the new
    /// primary.
    ReadOnly,
    /// A time limit passed; the connection's state is unknown, so it is
    /// discarded like a dead one.
    Timeout,
    /// The server answered but cannot do this for now, for want of
    /// resources or while busy: disk full, out of memory, a configured
    /// limit (SQLSTATE class 53 but `53300`), `-OOM`, `-BUSY` (a script
    /// running), `-MISCONF` (snapshots failing), `-NOREPLICAS`, `-TRYAGAIN`
    /// and `-CLUSTERDOWN` (on a non-cluster client). The connection is
    /// sound and goes back to the pool; nothing else is invalidated.
    Resources,
    /// The statement itself failed (syntax, constraint, wrong type, a
    /// statement timeout); the connection is healthy and goes back to the
    /// pool.
    Query,
}

impl ErrorClass {
    /// Every class, in declaration order (the order of [`ErrorClass::index`]).
    pub const ALL: [ErrorClass; 7] = [
        ErrorClass::Fatal,
        ErrorClass::Unavailable,
        ErrorClass::Disconnected,
        ErrorClass::ReadOnly,
        ErrorClass::Timeout,
        ErrorClass::Resources,
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

    /// True when the connection that produced the error must not be
    /// reused; [`crate::Pooled::observe`] then also closes the older idle
    /// connections (SQLAlchemy's invalidation).
    pub fn breaks_connection(self) -> bool {
        matches!(
            self,
            ErrorClass::Unavailable
                | ErrorClass::Disconnected
                | ErrorClass::ReadOnly
                | ErrorClass::Timeout
        )
    }

    /// True when waiting and retrying may succeed: a server or connection
    /// problem, not the caller's statement and not a fatal one.
    pub fn is_transient(self) -> bool {
        !matches!(self, ErrorClass::Fatal | ErrorClass::Query)
    }

    /// A short lowercase name, as used in logs, metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Fatal => "fatal",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Disconnected => "disconnected",
            ErrorClass::ReadOnly => "read_only",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Resources => "resources",
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
    fn what_each_class_does_to_the_connection() {
        // (class, breaks the connection, transient, fatal)
        let table = [
            (ErrorClass::Fatal, false, false, true),
            (ErrorClass::Unavailable, true, true, false),
            (ErrorClass::Disconnected, true, true, false),
            (ErrorClass::ReadOnly, true, true, false),
            (ErrorClass::Timeout, true, true, false),
            (ErrorClass::Resources, false, true, false),
            (ErrorClass::Query, false, false, false),
        ];
        assert_eq!(table.len(), ErrorClass::ALL.len());
        for (class, breaks, transient, fatal) in table {
            assert_eq!(class.breaks_connection(), breaks, "{class}");
            assert_eq!(class.is_transient(), transient, "{class}");
            assert_eq!(class.is_fatal(), fatal, "{class}");
        }
    }

    #[test]
    fn names_are_snake_case_as_serialized() {
        for class in ErrorClass::ALL {
            let json = serde_json::to_string(&class).unwrap();
            assert_eq!(json, format!("\"{}\"", class.as_str()));
        }
    }

    #[test]
    fn the_class_table_is_in_index_order() {
        for (i, class) in ErrorClass::ALL.into_iter().enumerate() {
            assert_eq!(class.index(), i, "{class}");
        }
    }
}
