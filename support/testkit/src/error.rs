//! The one error type of the crate.
//!
//! Every variant names the server (kind, address and directory) and the step
//! that failed, so that a failing test says what went wrong without a
//! debugger. Errors about a server that died carry the tail of its log.

use std::time::Duration;

/// Result alias used by every fallible function of the crate.
pub type Result<T> = std::result::Result<T, KitError>;

/// Everything that can go wrong while starting, stopping or poking a private
/// test server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KitError {
    /// A server binary is not installed. The message carries the exact
    /// command that installs it, because tests must never skip silently.
    #[error("`{binary}` was not found (searched {searched}); install it with `{install}`")]
    MissingBinary {
        /// The binary that was looked for, e.g. `initdb`.
        binary: String,
        /// Where it was looked for.
        searched: String,
        /// The command that installs it.
        install: &'static str,
    },

    /// PostgreSQL refuses to run as root, so we run it as a system user
    /// that does not exist on this machine.
    #[error(
        "system user `{0}` does not exist; PostgreSQL refuses to run as root and \
         must run as that user (it comes with `apt-get install -y postgresql`)"
    )]
    MissingUser(String),

    /// An I/O operation failed.
    #[error("{server}: {step}: {source}")]
    Io {
        /// Which server (or `testkit` for shared state).
        server: String,
        /// What we were doing.
        step: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A helper program (initdb, psql, ...) exited unsuccessfully.
    #[error("{server}: {step} failed ({status}):\n{output}")]
    CommandFailed {
        /// Which server.
        server: String,
        /// What we were doing.
        step: String,
        /// Exit status, as text.
        status: String,
        /// What the program printed (stdout and stderr).
        output: String,
    },

    /// A bounded wait ran out.
    #[error("{server}: {step} timed out after {waited:?}\n--- log tail ---\n{log_tail}")]
    Timeout {
        /// Which server.
        server: String,
        /// What we were waiting for.
        step: String,
        /// How long we waited.
        waited: Duration,
        /// Last lines of the server log (may be empty).
        log_tail: String,
    },

    /// The server process exited while we were starting it.
    #[error("{server}: the server exited during {step} ({status})\n--- log tail ---\n{log_tail}")]
    ServerExited {
        /// Which server.
        server: String,
        /// What we were doing.
        step: String,
        /// Exit status, as text.
        status: String,
        /// Last lines of the server log.
        log_tail: String,
    },

    /// Sending a signal failed.
    #[error("{server}: {step}: sending {signal} failed: {source}")]
    Signal {
        /// Which server.
        server: String,
        /// What we were doing.
        step: String,
        /// The signal's name.
        signal: String,
        /// The errno.
        #[source]
        source: nix::errno::Errno,
    },

    /// Every port we tried was taken by someone else before the server
    /// could bind it.
    #[error("{server}: could not bind a free port after {attempts} attempts\n--- log tail ---\n{log_tail}")]
    PortUnavailable {
        /// Which server.
        server: String,
        /// How many ports were tried.
        attempts: usize,
        /// Last lines of the server log of the last attempt.
        log_tail: String,
    },

    /// The operation needs a running (or a stopped) server and the server
    /// is in the other state.
    #[error("{server}: cannot {step}: the server is {state}")]
    WrongState {
        /// Which server.
        server: String,
        /// What was asked.
        step: String,
        /// `running` or `not running`.
        state: &'static str,
    },

    /// Redis answered a command with an error reply (`-ERR ...`,
    /// `-MASTERDOWN ...`, ...).
    #[error("{server}: redis replied to `{command}` with an error: {message}")]
    RedisReply {
        /// Which server.
        server: String,
        /// The command name (arguments are left out: they may hold secrets).
        command: String,
        /// The error text, starting with its code, e.g. `MASTERDOWN Link with MASTER is down ...`.
        message: String,
    },

    /// A server spoke something we did not expect.
    #[error("{server}: {step}: protocol error: {detail}")]
    Protocol {
        /// Which server.
        server: String,
        /// What we were doing.
        step: String,
        /// What was wrong.
        detail: String,
    },

    /// The caller passed something we cannot use.
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

impl KitError {
    /// The text of a Redis error reply, if this is one (e.g. starts with
    /// `MASTERDOWN`, `NOAUTH`, `WRONGPASS`).
    pub fn redis_reply(&self) -> Option<&str> {
        match self {
            KitError::RedisReply { message, .. } => Some(message),
            _ => None,
        }
    }

    /// Shorthand for an [`KitError::Io`] maker, for `map_err`.
    pub(crate) fn io(
        server: &str,
        step: impl Into<String>,
    ) -> impl FnOnce(std::io::Error) -> KitError {
        let server = server.to_string();
        let step = step.into();
        move |source| KitError::Io {
            server,
            step,
            source,
        }
    }

    /// Shorthand for a [`KitError::Signal`] maker, for `map_err`.
    pub(crate) fn signal(
        server: &str,
        step: impl Into<String>,
        signal: nix::sys::signal::Signal,
    ) -> impl FnOnce(nix::errno::Errno) -> KitError {
        let server = server.to_string();
        let step = step.into();
        move |source| KitError::Signal {
            server,
            step,
            signal: signal.as_str().to_string(),
            source,
        }
    }
}
