//! Just enough of the PostgreSQL wire protocol to ask a server whether it
//! lets a login in, and to read the SQLSTATE when it does not.
//!
//! Used for readiness waits (no `psql` process per poll) and by tests that
//! need the exact error code (e.g. `57P03` from a standby that refuses
//! logins). A trusted login is completed and then ended with `Terminate`,
//! and we read until the server closes the socket, so the probing backend is
//! gone from `pg_stat_activity` before the probe returns.

use std::io::{Read, Write};

/// What the server said to a login attempt as user `postgres` to database
/// `postgres`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginProbe {
    /// The login went through (trust authentication): the server is ready.
    Ready,
    /// The server asked for a password: it got past its startup checks and
    /// accepts connections.
    AuthRequested,
    /// The server refused the login with an error.
    Rejected(PgErrorReport),
}

/// The fields of a PostgreSQL `ErrorResponse` we care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgErrorReport {
    /// `FATAL`, `ERROR`, ...
    pub severity: String,
    /// The SQLSTATE, e.g. `57P03`.
    pub code: String,
    /// The primary message, e.g. `the database system is not accepting connections`.
    pub message: String,
    /// The detail line, e.g. `Hot standby mode is disabled.`.
    pub detail: Option<String>,
}

impl std::fmt::Display for PgErrorReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

fn bad(detail: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, detail.into())
}

fn startup_message() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608_i32.to_be_bytes()); // protocol 3.0
    for (k, v) in [
        ("user", "postgres"),
        ("database", "postgres"),
        ("application_name", "pool-testkit-probe"),
    ] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

fn read_message<S: Read>(s: &mut S) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head)?;
    let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    if !(4..=1 << 20).contains(&len) {
        return Err(bad(format!("message length {len}")));
    }
    let mut body = vec![0u8; len as usize - 4];
    s.read_exact(&mut body)?;
    Ok((head[0], body))
}

fn parse_error(body: &[u8]) -> PgErrorReport {
    let mut r = PgErrorReport {
        severity: String::new(),
        code: String::new(),
        message: String::new(),
        detail: None,
    };
    for field in body.split(|b| *b == 0) {
        let Some((&kind, text)) = field.split_first() else {
            continue;
        };
        let text = String::from_utf8_lossy(text).into_owned();
        match kind {
            b'V' => r.severity = text,
            b'S' if r.severity.is_empty() => r.severity = text,
            b'C' => r.code = text,
            b'M' => r.message = text,
            b'D' => r.detail = Some(text),
            _ => {}
        }
    }
    r
}

/// Runs one login attempt over `stream` (timeouts are the caller's).
pub(crate) fn probe<S: Read + Write>(mut stream: S) -> std::io::Result<LoginProbe> {
    stream.write_all(&startup_message())?;
    let mut logged_in = false;
    loop {
        let (kind, body) = read_message(&mut stream)?;
        match kind {
            b'E' => return Ok(LoginProbe::Rejected(parse_error(&body))),
            b'R' => {
                let code = body
                    .get(..4)
                    .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .ok_or_else(|| bad("short authentication message"))?;
                if code != 0 {
                    return Ok(LoginProbe::AuthRequested);
                }
                logged_in = true;
            }
            b'Z' if logged_in => {
                stream.write_all(&[b'X', 0, 0, 0, 4])?;
                // Wait for the backend to close: it exits after Terminate.
                let mut sink = [0u8; 256];
                while stream.read(&mut sink)? > 0 {}
                return Ok(LoginProbe::Ready);
            }
            // ParameterStatus, BackendKeyData, NoticeResponse, ...
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_error_fields() {
        let body = b"SFATAL\0VFATAL\0C57P03\0Mthe database system is not accepting connections\0DHot standby mode is disabled.\0\0";
        let r = parse_error(body);
        assert_eq!(r.code, "57P03");
        assert_eq!(r.severity, "FATAL");
        assert_eq!(r.detail.as_deref(), Some("Hot standby mode is disabled."));
        assert_eq!(
            r.to_string(),
            "FATAL 57P03: the database system is not accepting connections (Hot standby mode is disabled.)"
        );
    }

    #[test]
    fn startup_message_is_framed() {
        let m = startup_message();
        let len = i32::from_be_bytes([m[0], m[1], m[2], m[3]]) as usize;
        assert_eq!(len, m.len());
        assert_eq!(*m.last().unwrap(), 0);
    }
}
