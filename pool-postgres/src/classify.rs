//! The one classifier of `tokio_postgres` errors.
//!
//! | error | class |
//! |---|---|
//! | SQLSTATE 28P01, 28000 (authentication), 3D000 (no such database), 57P04 (the database was dropped while connecting), 42501 (insufficient privilege, at connect or later), bad configuration, a TLS certificate rejected either way | fatal |
//! | SQLSTATE 57P03 (starting up, recovery, hot standby off), 53300 (too many clients), refused connect, DNS failure | unavailable |
//! | SQLSTATE class 08, 57P01 (admin shutdown), 57P02 (crash shutdown), 57P05 (idle session timeout), 25P03 (idle in transaction timeout), 25P04 (transaction timeout), closed connection, I/O error | disconnected |
//! | SQLSTATE 25006 (read-only transaction: a demoted primary, a standby) | read_only |
//! | connect timeout, an I/O timeout | timeout |
//! | SQLSTATE class 53 but 53300 (53000 insufficient resources, 53100 disk full, 53200 out of memory, 53400 a configured limit such as `temp_file_limit`) | resources |
//! | anything else: syntax, constraints, types, 57014 (query canceled: `statement_timeout` or a cancel request; the session is idle and sound afterwards) | query |

use pool_core::ErrorClass;
use std::io;
use tokio_postgres::error::SqlState;

/// Classifies a `tokio_postgres` error.
pub fn classify(e: &tokio_postgres::Error) -> ErrorClass {
    if let Some(code) = e.code() {
        return classify_sqlstate(code);
    }
    if e.is_closed() {
        return ErrorClass::Disconnected;
    }
    // A certificate the client rejects (or a client certificate the
    // server rejects) stays wrong until someone changes it.
    if pool_core::tls::diagnose(e).is_some() {
        return ErrorClass::Fatal;
    }
    if let Some(io) = find_io(e) {
        return classify_io(io);
    }
    // tokio-postgres does not expose its error kinds; its Display starts
    // with the kind's fixed text.
    let text = e.to_string();
    if text.starts_with("timeout waiting for server") {
        ErrorClass::Timeout
    } else if text.starts_with("invalid configuration")
        || text.starts_with("invalid connection string")
        || text.starts_with("authentication error")
        || text.starts_with("error performing TLS handshake")
    {
        ErrorClass::Fatal
    } else if text.starts_with("error connecting to server") {
        ErrorClass::Unavailable
    } else if text.starts_with("error communicating with the server")
        || text.starts_with("unexpected message from server")
        || text.starts_with("error parsing response from server")
    {
        ErrorClass::Disconnected
    } else {
        ErrorClass::Query
    }
}

/// The error as shown in messages: the server's message with its SQLSTATE
/// (`sorry, too many clients already (SQLSTATE 53300)`), or the client
/// error with its causes; redacted.
pub fn error_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut msg = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                msg.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                msg.push_str(&format!(" (hint: {hint})"));
            }
            msg.push_str(&format!(" (SQLSTATE {})", db.code().code()));
            pool_core::redact::redact_url(&msg)
        }
        None => pool_core::error::chain(e),
    }
}

/// Classifies a SQLSTATE.
pub fn classify_sqlstate(code: &SqlState) -> ErrorClass {
    let c = code.code();
    match c {
        "28P01" | "28000" | "3D000" | "57P04" | "42501" => ErrorClass::Fatal,
        "57P03" | "53300" => ErrorClass::Unavailable,
        // Server-side session ends: the server closes the connection.
        "57P01" | "57P02" | "57P05" | "25P03" | "25P04" => ErrorClass::Disconnected,
        "25006" => ErrorClass::ReadOnly,
        _ if c.starts_with("08") => ErrorClass::Disconnected,
        _ if c.starts_with("53") => ErrorClass::Resources,
        _ => ErrorClass::Query,
    }
}

fn find_io(e: &tokio_postgres::Error) -> Option<&io::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return Some(io);
        }
        source = s.source();
    }
    None
}

fn classify_io(e: &io::Error) -> ErrorClass {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ErrorClass::Timeout,
        io::ErrorKind::ConnectionRefused
        | io::ErrorKind::NotFound
        | io::ErrorKind::AddrNotAvailable
        | io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable => ErrorClass::Unavailable,
        // getaddrinfo failures surface as `Other` / `Uncategorized`.
        _ if e.to_string().contains("lookup address") => ErrorClass::Unavailable,
        _ => ErrorClass::Disconnected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_classes() {
        let cases = [
            (SqlState::INVALID_PASSWORD, ErrorClass::Fatal),
            (
                SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                ErrorClass::Fatal,
            ),
            (SqlState::INVALID_CATALOG_NAME, ErrorClass::Fatal),
            (SqlState::DATABASE_DROPPED, ErrorClass::Fatal),
            (SqlState::INSUFFICIENT_PRIVILEGE, ErrorClass::Fatal),
            (SqlState::CANNOT_CONNECT_NOW, ErrorClass::Unavailable),
            (SqlState::TOO_MANY_CONNECTIONS, ErrorClass::Unavailable),
            (SqlState::ADMIN_SHUTDOWN, ErrorClass::Disconnected),
            (SqlState::CRASH_SHUTDOWN, ErrorClass::Disconnected),
            (SqlState::from_code("57P05"), ErrorClass::Disconnected),
            (
                SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
                ErrorClass::Disconnected,
            ),
            (SqlState::from_code("25P04"), ErrorClass::Disconnected),
            (SqlState::CONNECTION_FAILURE, ErrorClass::Disconnected),
            (SqlState::CONNECTION_EXCEPTION, ErrorClass::Disconnected),
            (SqlState::READ_ONLY_SQL_TRANSACTION, ErrorClass::ReadOnly),
            (SqlState::INSUFFICIENT_RESOURCES, ErrorClass::Resources),
            (SqlState::DISK_FULL, ErrorClass::Resources),
            (SqlState::OUT_OF_MEMORY, ErrorClass::Resources),
            (
                SqlState::CONFIGURATION_LIMIT_EXCEEDED,
                ErrorClass::Resources,
            ),
            (SqlState::SYNTAX_ERROR, ErrorClass::Query),
            (SqlState::UNIQUE_VIOLATION, ErrorClass::Query),
            (SqlState::QUERY_CANCELED, ErrorClass::Query),
            (SqlState::T_R_SERIALIZATION_FAILURE, ErrorClass::Query),
        ];
        for (code, class) in cases {
            assert_eq!(classify_sqlstate(&code), class, "{}", code.code());
        }
    }

    #[test]
    fn io_errors_map_to_classes() {
        assert_eq!(
            classify_io(&io::Error::from(io::ErrorKind::ConnectionRefused)),
            ErrorClass::Unavailable
        );
        assert_eq!(
            classify_io(&io::Error::from(io::ErrorKind::ConnectionReset)),
            ErrorClass::Disconnected
        );
        assert_eq!(
            classify_io(&io::Error::from(io::ErrorKind::BrokenPipe)),
            ErrorClass::Disconnected
        );
        assert_eq!(
            classify_io(&io::Error::from(io::ErrorKind::TimedOut)),
            ErrorClass::Timeout
        );
    }
}
