//! What a backend provides: the [`Manager`] trait.
//!
//! A manager is deliberately thin: it knows how to open, check, classify and
//! describe its connections, and nothing else. Retries, timeouts, admission
//! and the validation policy live in the engine, so every backend gets the
//! same semantics (deadpool's `Manager` and sqlx's `Connect` take the same
//! line).

use crate::classify::ErrorClass;
use crate::error::chain;
use std::future::Future;

/// What a backend provides: how to open, check and classify connections.
///
/// Implementations stay thin: no retries, timeouts or policy here — the
/// engine applies those uniformly.
pub trait Manager: Send + Sync + 'static {
    /// The connection handed to callers.
    type Connection: Send + 'static;
    /// The backend's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Opens one connection (one attempt; the engine bounds and retries it).
    fn connect(&self) -> impl Future<Output = Result<Self::Connection, Self::Error>> + Send;

    /// One cheap round trip proving the connection works.
    fn ping(
        &self,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Prepares a new connection before its first use: init statements,
    /// session settings (HikariCP's `connectionInitSql`, SQLAlchemy's
    /// `connect` event). Runs inside `connect_timeout`, as part of the
    /// attempt; an error fails the attempt and is classified like a connect
    /// error. The default does nothing.
    fn after_connect(
        &self,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = conn;
        std::future::ready(Ok(()))
    }

    /// The pool lets go of a connection for good: it is about to be closed
    /// (for any [`CloseReason`](crate::CloseReason)) or was detached to a
    /// caller. Release what the manager keeps for it, so that memory stays
    /// flat however many connections come and go (deadpool-postgres keeps a
    /// statement-cache registry entry per connection until `detach`). Called
    /// once per connection the manager opened, failed `after_connect`
    /// included. The default does nothing.
    fn on_close(&self, conn: &mut Self::Connection) {
        let _ = conn;
    }

    /// A local, free check whether the connection is already known dead.
    fn is_closed(&self, conn: &Self::Connection) -> bool;

    /// The backend's one error classifier.
    fn classify(&self, error: &Self::Error) -> ErrorClass;

    /// The error as shown in messages: its whole cause chain, redacted.
    /// Backends add what operators search for (a SQLSTATE, say).
    fn error_message(&self, error: &Self::Error) -> String {
        chain(error)
    }

    /// The server this manager connects to, for messages (must be redacted).
    fn target(&self) -> String;
}
