//! The one classifier of `tokio_postgres` errors.
//!
//! | error | class |
//! |---|---|
//! | SQLSTATE 28P01, 28000 (authentication), 3D000 (no such database), 42501 on connect, bad configuration, a TLS certificate rejected either way | fatal |
//! | SQLSTATE 57P03 (starting up, recovery, hot standby off), 53300 (too many clients), 53xxx (out of resources), refused connect, DNS failure | unavailable |
//! | SQLSTATE class 08, 57P01 (admin shutdown), 57P02 (crash shutdown), closed connection, I/O error | disconnected |
//! | SQLSTATE 57014 on a timeout, connect timeout | timeout |
//! | anything else (syntax, constraints, types) | query |

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
        "28P01" | "28000" | "3D000" | "42501" => ErrorClass::Fatal,
        "57P03" | "53300" => ErrorClass::Unavailable,
        "57P01" | "57P02" => ErrorClass::Disconnected,
        _ if c.starts_with("08") => ErrorClass::Disconnected,
        _ if c.starts_with("53") => ErrorClass::Unavailable,
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
            (SqlState::CANNOT_CONNECT_NOW, ErrorClass::Unavailable),
            (SqlState::TOO_MANY_CONNECTIONS, ErrorClass::Unavailable),
            (SqlState::ADMIN_SHUTDOWN, ErrorClass::Disconnected),
            (SqlState::CRASH_SHUTDOWN, ErrorClass::Disconnected),
            (SqlState::CONNECTION_FAILURE, ErrorClass::Disconnected),
            (SqlState::CONNECTION_EXCEPTION, ErrorClass::Disconnected),
            (SqlState::SYNTAX_ERROR, ErrorClass::Query),
            (SqlState::UNIQUE_VIOLATION, ErrorClass::Query),
            (SqlState::QUERY_CANCELED, ErrorClass::Query),
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
