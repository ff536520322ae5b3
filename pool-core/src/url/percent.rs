//! Percent-encoding as libpq, tokio-postgres and redis-rs read it.
//!
//! Decoding is lenient like the drivers: a `%` not followed by two hex
//! digits stays as it is. Decoded bytes need not be UTF-8 (a password may be
//! any bytes); callers that need text check that themselves.

/// Decodes `%XX` sequences into bytes.
pub fn decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Decodes into text; `what` names the part for the error.
pub fn decode_utf8(s: &str, what: &str) -> Result<String, String> {
    String::from_utf8(decode(s))
        .map_err(|_| format!("the {what} is not valid UTF-8 once percent-decoded"))
}

/// Encodes everything but unreserved characters (RFC 3986), so the result
/// is safe in any part of a URL.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &c in bytes {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_any_bytes() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&all)), all);
    }

    #[test]
    fn leaves_bad_sequences_alone() {
        assert_eq!(decode("a%zz%4"), b"a%zz%4");
        assert_eq!(decode("%41%2f%"), b"A/%");
    }
}
