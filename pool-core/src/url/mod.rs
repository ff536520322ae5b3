//! The one grammar of connection URLs, shared by the pools, `wait-for-db`,
//! `doctor`, the demo and the backend.
//!
//! [`ConnUrl::parse`] reads every form the drivers accept into one
//! structured value (hosts, ports, user, password as a [`Secret`], database,
//! parameters):
//!
//! - PostgreSQL URLs: `postgres[ql]://[user[:password]@][host[:port][,host[:port]...]][/dbname][?key=value&...]`,
//!   with IPv6 literals in brackets and Unix socket directories as
//!   percent-encoded hosts (`%2Fvar%2Frun%2Fpostgresql`) or `?host=/path`;
//! - libpq `key=value` strings (`host=db port=5432 password='a b\'c'`),
//!   with spaces around `=`, single quotes and backslash escapes;
//! - Redis URLs: `redis://`, `rediss://` (TLS, `#insecure`),
//!   `[user][:password]@` (ACL users), `/db`, `?protocol=`; Unix sockets as
//!   `unix:///path?db=N&user=U&pass=P` or `redis+unix://`.
//!
//! Every part is percent-decoded. The userinfo ends at the *last* `@` of
//! the URL, so a password may hold raw `@`, `:`, `/`, `?` or `#` (an `@` in
//! a query value must then be written `%40`). Parameters are checked against
//! one table per backend ([`params`]); an unknown one is an error naming it.
//!
//! Errors never quote a password: they name the part that is wrong.

pub mod params;
pub mod percent;
mod postgres;
mod redis;

use serde::{Serialize, Serializer};
use std::fmt;
use std::path::PathBuf;

/// The server kind a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// PostgreSQL (`postgres://`, `postgresql://`, `key=value`).
    Postgres,
    /// Redis (`redis://`, `rediss://`, `unix://`, `redis+unix://`).
    Redis,
}

impl Backend {
    /// The port used when a URL gives none.
    pub fn default_port(self) -> u16 {
        match self {
            Backend::Postgres => 5432,
            Backend::Redis => 6379,
        }
    }
}

/// How the string was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// `scheme://...` over TCP.
    Url,
    /// A Redis `unix://` or `redis+unix://` URL.
    UnixUrl,
    /// A libpq `key=value` string.
    KeyValue,
}

/// Where one server listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostAddr {
    /// A host name or IP literal (IPv6 without brackets).
    Tcp(String),
    /// A Unix socket: PostgreSQL's socket directory, Redis's socket file.
    Unix(PathBuf),
}

/// One server of a (possibly multi-host) target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    /// Where it listens.
    pub addr: HostAddr,
    /// Its port (the backend's default when not given; PostgreSQL also uses
    /// it to name the socket file of a Unix host).
    pub port: u16,
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.addr {
            HostAddr::Tcp(h) if h.contains(':') => write!(f, "[{h}]:{}", self.port),
            HostAddr::Tcp(h) => write!(f, "{h}:{}", self.port),
            HostAddr::Unix(p) => write!(f, "{}:{}", p.display(), self.port),
        }
    }
}

/// A credential: any bytes, never shown. `Debug`, `Serialize` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps a credential.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The bytes, for the driver only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The credential as text, if it is UTF-8 (redis-rs needs text).
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// A parsed connection string. `Display` is the redacted URL form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnUrl {
    /// Which server kind.
    pub backend: Backend,
    /// How it was written.
    pub form: Form,
    /// Redis over TLS (`rediss://`).
    pub tls: bool,
    /// The servers, in the order to try them.
    pub hosts: Vec<Host>,
    /// The user (PostgreSQL role, Redis ACL user).
    pub user: Option<String>,
    /// The password.
    pub password: Option<Secret>,
    /// PostgreSQL database name, or Redis database index as written.
    pub dbname: Option<String>,
    /// Other parameters, checked against the backend's table, in order.
    pub params: Vec<(String, String)>,
    /// Secret parameters other than the password (`sslpassword`).
    pub secret_params: Vec<(String, Secret)>,
    /// The URL fragment (Redis `#insecure`).
    pub fragment: Option<String>,
}

/// A connection string that does not parse. The message names the part
/// that is wrong and never quotes a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlError(pub String);

impl ConnUrl {
    /// Parses any form of either backend (chosen by the scheme; a string
    /// without `://` containing `=` is a libpq `key=value` string).
    pub fn parse(s: &str) -> Result<ConnUrl, UrlError> {
        let s = s.trim();
        let scheme_len = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .filter(|&i| i > 0 && s[i..].starts_with("://"));
        match scheme_len.map(|i| s[..i].to_ascii_lowercase()) {
            Some(scheme) => match scheme.as_str() {
                "postgres" | "postgresql" => postgres::parse_url(s),
                "redis" | "rediss" | "unix" | "redis+unix" => redis::parse(&scheme, s),
                other => Err(UrlError(format!(
                    "unsupported scheme '{}': expected postgres://, postgresql://, redis://, rediss://, unix:// or a key=value string",
                    redact_scheme(other)
                ))),
            },
            None if s.is_empty() => Err(UrlError("empty URL".into())),
            None if s.contains('=') => postgres::parse_key_value(s),
            None => Err(UrlError(
                "not a URL: expected postgres://..., redis://... or key=value".into(),
            )),
        }
    }

    /// Parses and requires `backend`.
    pub fn parse_for(backend: Backend, s: &str) -> Result<ConnUrl, UrlError> {
        let url = Self::parse(s)?;
        if url.backend != backend {
            let expected = match backend {
                Backend::Postgres => "a PostgreSQL URL (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE or key=value)",
                Backend::Redis => "a Redis URL (redis://[USER][:PASSWORD@]HOST[:PORT][/DB], rediss://, unix:///PATH)",
            };
            return Err(UrlError(format!("expected {expected}")));
        }
        Ok(url)
    }

    /// The last value of parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The Redis database index (0 when not given).
    pub fn redis_db(&self) -> i64 {
        self.dbname
            .as_deref()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0)
    }

    /// The scheme of the redacted form.
    pub fn scheme(&self) -> &'static str {
        match (self.backend, self.form, self.tls) {
            (Backend::Postgres, _, _) => "postgres",
            (Backend::Redis, Form::UnixUrl, _) => "unix",
            (Backend::Redis, _, true) => "rediss",
            (Backend::Redis, _, false) => "redis",
        }
    }

    /// `scheme://user@host:port,.../db`: what to show as "the target" in
    /// logs and errors. Never holds a credential.
    pub fn target(&self) -> String {
        let hosts: Vec<String> = self.hosts.iter().map(Host::to_string).collect();
        match (self.backend, self.form) {
            (Backend::Redis, Form::UnixUrl) => {
                let path = self.hosts.first().map(|h| match &h.addr {
                    HostAddr::Unix(p) => p.display().to_string(),
                    HostAddr::Tcp(t) => t.clone(),
                });
                format!("unix://{}?db={}", path.unwrap_or_default(), self.redis_db())
            }
            (Backend::Redis, _) => format!(
                "{}://{}{}/{}",
                self.scheme(),
                self.shown_user(),
                hosts.join(","),
                self.redis_db()
            ),
            (Backend::Postgres, _) => format!(
                "postgres://{}{}/{}",
                self.shown_user(),
                hosts.join(","),
                self.dbname.as_deref().unwrap_or("")
            ),
        }
    }

    /// The user as shown: a Redis user without a password may be a
    /// password written in the wrong place, so it is masked.
    fn shown_user(&self) -> String {
        match (&self.user, &self.password, self.backend) {
            (Some(_), None, Backend::Redis) => "***@".into(),
            (Some(u), _, _) => format!("{}@", percent::encode(u.as_bytes())),
            (None, _, _) => String::new(),
        }
    }
}

impl fmt::Display for ConnUrl {
    /// The URL form with every secret as `***`; it parses back to the
    /// same servers, user, database and parameters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enc = |s: &str| percent::encode(s.as_bytes());
        let mut query: Vec<(String, String)> = Vec::new();
        if self.form == Form::UnixUrl {
            f.write_str("unix://")?;
            for h in &self.hosts {
                if let HostAddr::Unix(p) = &h.addr {
                    use std::os::unix::ffi::OsStrExt;
                    let path = percent::encode(p.as_os_str().as_bytes()).replace("%2F", "/");
                    f.write_str(&path)?;
                }
            }
            query.extend(self.dbname.iter().map(|d| ("db".into(), d.clone())));
            query.extend(self.user.iter().map(|u| ("user".into(), u.clone())));
            query.extend(self.password.iter().map(|_| ("pass".into(), "***".into())));
        } else {
            write!(f, "{}://", self.scheme())?;
            match (&self.user, &self.password) {
                (Some(u), Some(_)) => write!(f, "{}:***@", enc(u))?,
                (None, Some(_)) => f.write_str(":***@")?,
                (Some(_), None) if self.backend == Backend::Redis => f.write_str("***@")?,
                (Some(u), None) => write!(f, "{}@", enc(u))?,
                (None, None) => {}
            }
            let hosts: Vec<String> = self
                .hosts
                .iter()
                .map(|h| match &h.addr {
                    HostAddr::Tcp(t) if t.contains(':') => format!("[{t}]:{}", h.port),
                    HostAddr::Tcp(t) => format!("{}:{}", enc(t), h.port),
                    HostAddr::Unix(p) => {
                        use std::os::unix::ffi::OsStrExt;
                        format!("{}:{}", percent::encode(p.as_os_str().as_bytes()), h.port)
                    }
                })
                .collect();
            f.write_str(&hosts.join(","))?;
            if let Some(db) = &self.dbname {
                write!(f, "/{}", enc(db))?;
            }
        }
        query.extend(self.params.iter().cloned());
        query.extend(
            self.secret_params
                .iter()
                .map(|(k, _)| (k.clone(), "***".to_string())),
        );
        for (i, (k, v)) in query.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            let v = if v == "***" { v.clone() } else { enc(v) };
            write!(f, "{sep}{}={v}", enc(k))?;
        }
        if let Some(frag) = &self.fragment {
            write!(f, "#{}", enc(frag))?;
        }
        Ok(())
    }
}

/// A scheme as shown in an error: only scheme characters, else `?`.
fn redact_scheme(s: &str) -> String {
    if !s.is_empty()
        && s.len() <= 20
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        s.to_string()
    } else {
        "?".into()
    }
}

/// An option name as shown in an error: libpq names are lowercase letters,
/// digits and `_`; anything else could be a fragment of a mistyped password.
fn shown_key(key: &str) -> String {
    if !key.is_empty()
        && key.len() <= 40
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        format!("'{key}'")
    } else {
        "an option whose name is not a valid option name".into()
    }
}

/// Splits `rest` (after `scheme://`) into (userinfo, what follows its `@`).
///
/// The userinfo ends at the *last* `@`, so a raw password may hold `@`,
/// `/`, `?` or `#`; but when the user name (up to the first `:`) would
/// then hold a `/`, `?` or `#`, which no user name can, that `@` belongs to
/// the path or query and the authority ends, as in any URL, at the first
/// `/`, `?` or `#`. [`crate::redact`] masks by the same rule.
pub fn split_userinfo(rest: &str) -> (Option<&str>, &str) {
    let Some(last) = rest.rfind('@') else {
        return (None, rest);
    };
    let user_end = rest[..last].find(':').unwrap_or(last);
    let at = if rest[..user_end].contains(['/', '?', '#']) {
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        rest[..end].rfind('@')
    } else {
        Some(last)
    };
    match at {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    }
}

/// Reads `user[:password]`, both percent-decoded.
fn read_userinfo(userinfo: &str) -> Result<(Option<String>, Option<Secret>), UrlError> {
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(Secret::new(percent::decode(p)))),
        None => (userinfo, None),
    };
    let user = percent::decode_utf8(user, "user name").map_err(UrlError)?;
    Ok(((!user.is_empty()).then_some(user), password))
}

/// Reads `host[:port]` or `[v6][:port]` (a TCP host; `None` for empty).
fn read_host_port(chunk: &str, what: &str) -> Result<(String, Option<u16>), UrlError> {
    let (host, port) = if let Some(v6) = chunk.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| UrlError(format!("{what}: '[' without ']'")))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None => return Err(UrlError(format!("{what}: unexpected text after ']'"))),
            },
        }
    } else {
        match chunk.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (chunk, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(read_port(p, what)?),
    };
    Ok((host.to_string(), port))
}

/// A port number 1-65535.
fn read_port(p: &str, what: &str) -> Result<u16, UrlError> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(UrlError(format!(
            "{what}: invalid port {:?}: expected 1-65535",
            short(p)
        ))),
    }
}

/// A value quoted in an error, cut to a readable length.
fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests;
