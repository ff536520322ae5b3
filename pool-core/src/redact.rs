//! Keeping secrets out of messages.
//!
//! Connection strings carry passwords. Every place that shows a target — a
//! `Display`, a `Debug`, a log line, an error — goes through [`redact_url`],
//! and configuration holds URLs in [`SecretUrl`], whose formatting and
//! serialization are redacted.

use serde::{Serialize, Serializer};
use std::fmt;

const MASK: &str = "***";

/// Returns `url` with any password replaced by `***`.
///
/// Understands `scheme://user:password@host/...` URLs (the password may
/// itself contain `@` or `:`), `password=` query parameters, and libpq
/// `key=value` connection strings (`password=...`).
pub fn redact_url(url: &str) -> String {
    let url = url.trim();
    let mut out = match url.find("://") {
        Some(scheme_end) => {
            let (scheme, rest) = url.split_at(scheme_end + 3);
            // The authority ends at the first '/', '?' or '#' after the last
            // '@' (a raw '@' may appear in the password).
            let at = rest
                .char_indices()
                .take_while(|&(_, c)| c != '?' && c != '#')
                .filter(|&(_, c)| c == '@')
                .map(|(i, _)| i)
                .last();
            match at {
                Some(at) => {
                    let userinfo = &rest[..at];
                    let after = &rest[at..];
                    let user = match userinfo.find(':') {
                        Some(colon) => format!("{}:{MASK}", &userinfo[..colon]),
                        // `redis://secret@host`: a lone userinfo without ':' is
                        // how some clients pass a bare password; mask it.
                        None if scheme.starts_with("redis") => MASK.to_string(),
                        None => userinfo.to_string(),
                    };
                    format!("{scheme}{user}{after}")
                }
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    };
    out = mask_key_value(&out, "password=");
    out
}

/// Masks the value after every `key` (case-insensitive), up to the next
/// `&`, whitespace or end. Quoted libpq values (`password='a b'`) are masked
/// whole.
fn mask_key_value(s: &str, key: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find(key) {
        let start = pos + found + key.len();
        out.push_str(&s[pos..start]);
        let rest = &s[start..];
        let len = if let Some(quoted) = rest.strip_prefix('\'') {
            quoted.find('\'').map_or(rest.len(), |end| end + 2)
        } else {
            rest.find(|c: char| c == '&' || c.is_whitespace())
                .unwrap_or(rest.len())
        };
        out.push_str(MASK);
        pos = start + len;
    }
    out.push_str(&s[pos..]);
    out
}

/// A connection URL whose password never shows: `Display`, `Debug` and
/// `Serialize` all print the redacted form. Use [`SecretUrl::expose`] only to
/// hand the URL to a driver.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        SecretUrl(url.into())
    }

    /// The URL with its password, for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password masked.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({:?})", self.redacted())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords_in_every_form() {
        let cases = [
            (
                "postgres://app:s3cret@db:5432/app",
                "postgres://app:***@db:5432/app",
            ),
            (
                "postgres://app:p@ss:w@rd@db/app?sslmode=disable",
                "postgres://app:***@db/app?sslmode=disable",
            ),
            ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
            ("redis://bob:hunter2@cache/0", "redis://bob:***@cache/0"),
            ("redis://hunter2@cache/0", "redis://***@cache/0"),
            (
                "postgres://db/app?password=x&user=y",
                "postgres://db/app?password=***&user=y",
            ),
            (
                "host=db user=app password='a b c' dbname=app",
                "host=db user=app password=*** dbname=app",
            ),
            ("host=db password=abc", "host=db password=***"),
            ("postgres://app@db/app", "postgres://app@db/app"),
            ("tcp://db:5432", "tcp://db:5432"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact_url(input), expected, "input {input}");
        }
    }

    #[test]
    fn secret_url_never_prints_the_password() {
        let url = SecretUrl::new("postgres://app:topsecret@db/app");
        assert!(!format!("{url}").contains("topsecret"));
        assert!(!format!("{url:?}").contains("topsecret"));
        assert!(!format!("{url:#?}").contains("topsecret"));
        assert_eq!(url.expose(), "postgres://app:topsecret@db/app");
    }
}
