//! Keeping secrets out of messages.
//!
//! Connection strings carry passwords. Every place that shows a target — a
//! `Display`, a `Debug`, a log line, an error — goes through [`redact_url`],
//! and configuration holds URLs in [`SecretUrl`], whose formatting and
//! serialization are redacted.

use serde::{Serialize, Serializer};
use std::fmt;

const MASK: &str = "***";

/// Returns `text` with every credential replaced by `***`.
///
/// Works on any text, parsable or not (a whole URL, an error message
/// quoting one, a libpq string), so it is the last line of defence:
///
/// - after every `scheme://`, everything up to the *last* `@` that follows
///   is userinfo: the user (up to the first `:`) stays, the rest is masked.
///   The password may hold `@`, `:`, `/`, `?`, `#` or spaces. A Redis
///   userinfo without `:` is masked whole (some clients take it as the
///   password);
/// - the value of every secret parameter (`password`, `pass`,
///   `sslpassword`, any case, with spaces around `=`): a quoted value up to
///   its closing quote (backslash escapes honoured), else up to the
///   whitespace or `&` that starts the next known option (`user=`,
///   `sslmode=`...), or the end: a mistyped password with a raw space or
///   `&` is masked whole.
pub fn redact_url(text: &str) -> String {
    mask_secret_params(&mask_userinfo(text))
}

/// Masks userinfo after each `scheme://`.
fn mask_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = text[pos..].find("://") {
        let sep = pos + found;
        let scheme_start = text[..sep]
            .char_indices()
            .rev()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let scheme = text[scheme_start..sep].to_ascii_lowercase();
        let rest_start = sep + 3;
        out.push_str(&text[pos..rest_start]);
        match crate::url::split_userinfo(&text[rest_start..]).0 {
            Some(userinfo) => {
                let at = userinfo.len();
                match userinfo.find(':') {
                    Some(colon) if !userinfo[..colon].contains("://") => {
                        out.push_str(&userinfo[..colon]);
                        out.push(':');
                        out.push_str(MASK);
                    }
                    None if !scheme.starts_with("redis") && !scheme.ends_with("unix") => {
                        out.push_str(userinfo)
                    }
                    _ => out.push_str(MASK),
                }
                pos = rest_start + at;
            }
            None => pos = rest_start,
        }
    }
    out.push_str(&text[pos..]);
    out
}

/// Masks the values of secret parameters.
fn mask_secret_params(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    let mut i = 0;
    while i < bytes.len() {
        let key_len = crate::url::params::secret_names()
            .filter(|k| lower.as_bytes()[i..].starts_with(k.as_bytes()))
            .map(str::len)
            .max();
        let at_boundary = i == 0 || !is_word(bytes[i - 1]);
        let Some(key_len) = key_len.filter(|_| at_boundary) else {
            i += 1;
            continue;
        };
        let mut j = i + key_len;
        if j < bytes.len() && is_word(bytes[j]) {
            i += 1;
            continue;
        }
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= bytes.len() || bytes[j] != b'=' {
            i += 1;
            continue;
        }
        j += 1;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        let end = value_end(text, j);
        out.push_str(&text[pos..j]);
        out.push_str(MASK);
        pos = end;
        i = end.max(i + 1);
    }
    out.push_str(&text[pos..]);
    out
}

/// Where the value starting at `start` ends.
fn value_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    if let Some(&q) = bytes.get(start).filter(|&&b| b == b'\'' || b == b'"') {
        let mut k = start + 1;
        while k < bytes.len() {
            match bytes[k] {
                b'\\' => k += 2,
                b if b == q => return k + 1,
                _ => k += 1,
            }
        }
        return bytes.len();
    }
    // Unquoted: a raw space or `&` may be part of a mistyped password, so
    // the value runs on until a space or `&` that starts a known option
    // (`user=`, `sslmode=` ...), or to the end.
    let mut k = start;
    while k < bytes.len() {
        match bytes[k] {
            b'\\' => k += 2,
            b if (b.is_ascii_whitespace() || b == b'&') && starts_known_key(&text[k + 1..]) => {
                break
            }
            _ => k += 1,
        }
    }
    let mut end = k.min(bytes.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    end
}

/// True if `s` starts with (spaces and) a known option name and `=`.
fn starts_known_key(s: &str) -> bool {
    let s = s.trim_start();
    let name = s
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let known = crate::url::params::known_names().any(|k| k.eq_ignore_ascii_case(&s[..name]));
    known && s[name..].trim_start().starts_with('=')
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

    /// The leaks the issue reported, one per line: each must be masked whole.
    #[test]
    fn passwords_with_delimiters_are_masked_whole() {
        let cases = [
            (
                "postgres://app:Hash#Pw1@db/app",
                "postgres://app:***@db/app",
            ),
            ("postgres://app:Q?Pw1x@db/app", "postgres://app:***@db/app"),
            (
                "host=db password = secret user=x",
                "host=db password = *** user=x",
            ),
            ("host=db password=Amp&LeakTail9", "host=db password=***"),
            (
                r"host=db password='Quo\'teTail8' user=x",
                "host=db password=*** user=x",
            ),
            (
                "postgres://weird:p@ss:w/rd%Q?#x@127.0.0.1:58001/postgres",
                "postgres://weird:***@127.0.0.1:58001/postgres",
            ),
            (
                "dns: 'postgres://u:p@ss@127.0.0.1' does not resolve",
                "dns: 'postgres://u:***@127.0.0.1' does not resolve",
            ),
            ("redis://:Hash#Pw1@cache/0", "redis://:***@cache/0"),
            (
                "unix:///run/r.sock?db=1&pass=Zq1&user=u",
                "unix:///run/r.sock?db=1&pass=***&user=u",
            ),
            (
                "unix:///run/r.sock?pass=Zq1&Tail",
                "unix:///run/r.sock?pass=***",
            ),
            (
                "host=db sslpassword=Zq1 PASSWORD =\t'a b'",
                "host=db sslpassword=*** PASSWORD =\t***",
            ),
            (r"password=a\ b", "password=***"),
            ("password=\"x y\" z", "password=*** z"),
            ("x://u:a://b@c@h/db", "x://u:***@h/db"),
            (
                "passwords=fine password_hint=shown",
                "passwords=fine password_hint=shown",
            ),
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
