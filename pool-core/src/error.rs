//! Errors of settings and checkouts.
//!
//! A checkout error says what the caller needs to act: the pool's state at the
//! moment it gave up, how long it waited, and the last underlying cause (the
//! connect error behind a timeout), in the spirit of SQLAlchemy's
//! `QueuePool limit of size 5 overflow 10 reached, connection timed out,
//! timeout 30.00`. Messages are redacted: no password ever appears.

use crate::classify::ErrorClass;
use crate::status::PoolStatus;
use std::fmt;
use std::time::Duration;

/// A setting is missing or has a bad value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SettingsError {
    /// The value does not parse or is out of range.
    #[error("invalid setting {variable}={value:?}: expected {expected}")]
    Invalid {
        /// The variable (or file key) that holds it.
        variable: String,
        /// The value as given (never a URL: URLs are not range-checked here).
        value: String,
        /// What would be accepted.
        expected: String,
    },
    /// A required setting is not set.
    #[error("{variable} is not set")]
    Missing {
        /// The variable that should hold it.
        variable: String,
    },
    /// The URL does not parse.
    #[error("invalid setting {variable}={url}: {reason}")]
    InvalidUrl {
        /// The variable that holds it.
        variable: String,
        /// The URL, redacted.
        url: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A variable we read holds bytes that are not UTF-8.
    #[error(
        "{variable} is not valid UTF-8: {value:?} (bad bytes shown as �); set it to UTF-8 text"
    )]
    NotUtf8 {
        /// The variable.
        variable: String,
        /// Its value, decoded lossily and redacted.
        value: String,
    },
    /// A file a setting names (a certificate, a key) cannot be used. Its
    /// content is never quoted.
    #[error("cannot use {variable}={path}: {reason}")]
    File {
        /// The variable (or URL parameter) naming the file.
        variable: String,
        /// The file.
        path: String,
        /// Why (not found, permission denied, not PEM, ...).
        reason: String,
    },
    /// The settings file cannot be read or parsed.
    #[error("cannot read settings: {0}")]
    Source(String),
}

/// The last error the pool saw from the server, kept for timeout messages and
/// health reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Cause {
    /// Its class.
    pub class: ErrorClass,
    /// Its message, redacted.
    pub message: String,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.class)
    }
}

/// An error's message with its whole `source()` chain (`a: b: c`), redacted,
/// with a hint when a TLS certificate was rejected (see
/// [`crate::tls::diagnose`]).
///
/// Many drivers keep the useful part in the source (`tokio_postgres`
/// displays `db error` and puts the server's message behind it), so every
/// message the pool shows goes through here.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !msg.contains(&part) {
            msg.push_str(": ");
            msg.push_str(&part);
        }
        source = s.source();
    }
    // A TLS failure says what to do about it (unknown CA, host name...).
    if let Some(problem) = crate::tls::diagnose(e) {
        msg.push_str(&format!(" (hint: {})", problem.hint()));
    }
    crate::redact::redact_url(&msg)
}

/// A checkout failed.
#[derive(thiserror::Error)]
pub enum PoolError {
    /// `pool_timeout` passed before a usable connection was found.
    #[error("{}", timeout_message(.timeout, .waited, .status, .last_cause.as_ref()))]
    Timeout {
        /// The bound the checkout had (`pool_timeout`, or the one given to
        /// `get_timeout`).
        timeout: Duration,
        /// How long the checkout took before it gave up.
        waited: Duration,
        /// The pool's state when it gave up.
        status: Box<PoolStatus>,
        /// The last error seen while trying (a connect or validation error).
        last_cause: Option<Cause>,
    },
    /// The server answered with an error that waiting will not fix (wrong
    /// password, unknown database): the checkout stopped at once.
    #[error("pool '{pool}': cannot connect to {target}: {message}")]
    Fatal {
        /// The pool's name.
        pool: String,
        /// The server, redacted.
        target: String,
        /// The error with its causes, redacted.
        message: String,
        /// The backend's error (its message carries no password).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// With `fail_fast` on: the server is down (the pool's last connect
    /// attempt failed and none succeeded since), so the checkout failed at
    /// once instead of waiting out `pool_timeout`. PgBouncer's
    /// `server_login_retry` does the same.
    // The cause names the target ("connect to URL failed: ..."); a second
    // URL in the same text would make redaction of the whole line mask
    // everything between the two.
    #[error("pool '{pool}' is unavailable (failing fast; {}): {cause}", next_attempt(.retry_in))]
    Unavailable {
        /// The pool's name.
        pool: String,
        /// The server, redacted.
        target: String,
        /// Why the last connect attempt failed (redacted).
        cause: Cause,
        /// How long until the pool tries to connect again: a fair
        /// `Retry-After`.
        retry_in: Duration,
    },
    /// The pool was closed.
    #[error("pool '{0}' is closed")]
    Closed(String),
}

/// `Debug` shows the backend error only as its redacted message: a
/// driver's own `Debug` may quote what it was given.
impl fmt::Debug for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Timeout {
                timeout,
                waited,
                status,
                last_cause,
            } => f
                .debug_struct("Timeout")
                .field("timeout", timeout)
                .field("waited", waited)
                .field("status", status)
                .field("last_cause", last_cause)
                .finish(),
            PoolError::Fatal {
                pool,
                target,
                message,
                source,
            } => f
                .debug_struct("Fatal")
                .field("pool", pool)
                .field("target", &crate::redact::redact_url(target))
                .field("message", &crate::redact::redact_url(message))
                .field("source", &chain(source.as_ref()))
                .finish(),
            PoolError::Unavailable {
                pool,
                target,
                cause,
                retry_in,
            } => f
                .debug_struct("Unavailable")
                .field("pool", pool)
                .field("target", &crate::redact::redact_url(target))
                .field("cause", cause)
                .field("retry_in", retry_in)
                .finish(),
            PoolError::Closed(name) => f.debug_tuple("Closed").field(name).finish(),
        }
    }
}

impl PoolError {
    /// The class of the error: `Timeout`, `Fatal`, the last connect
    /// error's class when failing fast, or `Unavailable` for a closed pool.
    pub fn class(&self) -> ErrorClass {
        match self {
            PoolError::Timeout { .. } => ErrorClass::Timeout,
            PoolError::Fatal { .. } => ErrorClass::Fatal,
            PoolError::Unavailable { cause, .. } => cause.class,
            PoolError::Closed(_) => ErrorClass::Unavailable,
        }
    }

    /// True for a checkout that ran out of time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, PoolError::Timeout { .. })
    }
}

/// When a failing-fast pool tries the server again, in words.
fn next_attempt(retry_in: &Duration) -> String {
    if retry_in.is_zero() {
        "a connect attempt is under way".into()
    } else {
        format!("next connect attempt in {:.2}s", retry_in.as_secs_f64())
    }
}

fn timeout_message(
    timeout: &Duration,
    waited: &Duration,
    s: &PoolStatus,
    cause: Option<&Cause>,
) -> String {
    let limit = match s.max_size {
        Some(max) if s.in_use >= max => "limit of size {size} overflow {overflow} reached, ",
        _ => "",
    };
    let limit = limit
        .replace("{size}", &s.pool_size.to_string())
        .replace("{overflow}", &s.max_overflow.to_string());
    let mut msg = format!(
        "pool '{}' {limit}connection timed out, timeout {:.2} (waited {:.2}s; open={}, idle={}, in_use={}, overflow_in_use={}, waiting={}, size={}, max_overflow={})",
        s.name,
        timeout.as_secs_f64(),
        waited.as_secs_f64(),
        s.open,
        s.idle,
        s.in_use,
        s.overflow_in_use,
        s.waiting,
        s.pool_size,
        s.max_overflow,
    );
    if let Some(cause) = cause {
        msg.push_str("; last error: ");
        msg.push_str(&cause.to_string());
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Leaky(String);

    impl fmt::Display for Leaky {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "cannot use {}", crate::redact::redact_url(&self.0))
        }
    }

    impl std::error::Error for Leaky {}

    #[test]
    fn fatal_debug_is_redacted() {
        let e = PoolError::Fatal {
            pool: "db".into(),
            target: "postgres://app@db/app".into(),
            message: "bad".into(),
            source: Box::new(Leaky("postgres://app:Zq1@db/app".into())),
        };
        let shown = format!("{e:?} {e:#?} {e}");
        assert!(!shown.contains("Zq1"), "{shown}");
        assert!(shown.contains("postgres://app:***@db/app"), "{shown}");
    }
}
