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

/// What a returned connection needs before anyone else may have it
/// (the answer of [`Manager::on_return`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// Nothing left behind: straight back to the idle stack, no round trip.
    Clean,
    /// Something left behind (an open transaction, a `MULTI`, another
    /// database): [`Manager::reset`] runs before the next checkout.
    Reset,
    /// A request is still in flight (the caller gave up mid-request):
    /// [`Manager::reset`] must end it (a server-side cancel) and wait for
    /// it before the connection is reused.
    Cancel,
    /// Cannot be made clean cheaply (a request in flight the backend cannot
    /// cancel): the connection is closed.
    Close,
}

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

    /// What a connection a caller just handed back needs (see
    /// [`Returned`]). Called on every return, so it must be free: no I/O,
    /// only what the backend tracked while the caller used the connection.
    /// The default: [`Returned::Clean`].
    fn on_return(&self, conn: &mut Self::Connection) -> Returned {
        let _ = conn;
        Returned::Clean
    }

    /// Makes a returned connection clean, as [`Manager::on_return`] asked
    /// (`how` is [`Returned::Reset`] or [`Returned::Cancel`]). The engine
    /// runs it at once after the return, in a task of its own, bounded by
    /// `validation_timeout`, while the connection still holds its slot: no
    /// one else gets the connection before it ends. An error or a timeout
    /// closes the connection. It answers what it did, for the counters:
    /// [`Returned::Cancel`] (a request in flight was cancelled),
    /// [`Returned::Reset`] (a round trip reset the session) or
    /// [`Returned::Clean`] (nothing was needed after all: the answer of a
    /// request thought in flight was already on its way). The default does
    /// nothing.
    fn reset(
        &self,
        conn: &mut Self::Connection,
        how: Returned,
    ) -> impl Future<Output = Result<Returned, Self::Error>> + Send {
        let _ = (conn, how);
        std::future::ready(Ok(Returned::Clean))
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
