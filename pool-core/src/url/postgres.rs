//! PostgreSQL URLs and libpq `key=value` strings.

use super::{
    params, percent, read_host_port, read_port, read_userinfo, shown_key, split_userinfo, Backend,
    ConnUrl, Form, Host, HostAddr, Secret, UrlError,
};

/// What the two forms collect before the hosts and ports are paired.
#[derive(Default)]
struct Parts {
    hosts: Vec<(HostAddr, Option<u16>)>,
    ports: Option<Vec<Option<u16>>>,
    user: Option<String>,
    password: Option<Secret>,
    dbname: Option<String>,
    params: Vec<(String, String)>,
    secret_params: Vec<(String, Secret)>,
}

impl Parts {
    /// One parameter from a query string or a `key=value` string.
    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), UrlError> {
        let text = || {
            String::from_utf8(value.to_vec())
                .map_err(|_| UrlError(format!("option {} is not valid UTF-8", shown_key(key))))
        };
        match key {
            "password" => self.password = Some(Secret::new(value)),
            "user" => self.user = Some(text()?).filter(|u| !u.is_empty()),
            "dbname" => self.dbname = Some(text()?).filter(|d| !d.is_empty()),
            "host" => {
                // A list replaces what the URL's authority gave, as libpq does.
                self.hosts.clear();
                for h in value.split(|&b| b == b',') {
                    self.hosts.push((host_addr(h)?, None));
                }
            }
            "port" => {
                let ports = text()?
                    .split(',')
                    .map(|p| match p {
                        "" => Ok(None),
                        p => read_port(p, "option 'port'").map(Some),
                    })
                    .collect::<Result<_, _>>()?;
                self.ports = Some(ports);
            }
            _ => {
                let value = text()?;
                let secret = params::check(Backend::Postgres, key, &value)
                    .map_err(|e| UrlError(e.replace(&format!("'{key}'"), &shown_key(key))))?;
                if secret {
                    self.secret_params.push((key.into(), Secret::new(value)));
                } else {
                    self.params.push((key.into(), value));
                }
            }
        }
        Ok(())
    }

    fn finish(self, form: Form) -> Result<ConnUrl, UrlError> {
        let default = Backend::Postgres.default_port();
        let hosts = match self.ports {
            None => self
                .hosts
                .into_iter()
                .map(|(addr, port)| Host {
                    addr,
                    port: port.unwrap_or(default),
                })
                .collect(),
            Some(ports) if ports.len() == 1 || ports.len() == self.hosts.len() => self
                .hosts
                .into_iter()
                .enumerate()
                .map(|(i, (addr, _))| Host {
                    addr,
                    port: ports[if ports.len() == 1 { 0 } else { i }].unwrap_or(default),
                })
                .collect(),
            Some(ports) => {
                return Err(UrlError(format!(
                    "{} ports for {} hosts: give one port for all, or one per host",
                    ports.len(),
                    self.hosts.len()
                )))
            }
        };
        let url = ConnUrl {
            backend: Backend::Postgres,
            form,
            tls: false,
            hosts,
            user: self.user,
            password: self.password,
            dbname: self.dbname,
            params: self.params,
            secret_params: self.secret_params,
            fragment: None,
        };
        if url.hosts.is_empty() {
            return Err(UrlError(
                "no host given (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE, or host=/socket/dir for a Unix socket)"
                    .into(),
            ));
        }
        Ok(url)
    }
}

/// A host as written (percent-decoded): a path starting with `/` is a Unix
/// socket directory.
fn host_addr(decoded: &[u8]) -> Result<HostAddr, UrlError> {
    if decoded.first() == Some(&b'/') {
        use std::os::unix::ffi::OsStringExt;
        return Ok(HostAddr::Unix(
            std::ffi::OsString::from_vec(decoded.to_vec()).into(),
        ));
    }
    let host = String::from_utf8(decoded.to_vec())
        .map_err(|_| UrlError("a host name is not valid UTF-8".into()))?;
    if host.is_empty() {
        return Err(UrlError("empty host in the host list".into()));
    }
    Ok(HostAddr::Tcp(host))
}

/// `postgres[ql]://[user[:password]@][hosts][/dbname][?params]`.
pub(super) fn parse_url(s: &str) -> Result<ConnUrl, UrlError> {
    let rest = &s[s.find("://").map_or(0, |i| i + 3)..];
    let (userinfo, after) = split_userinfo(rest);
    let mut parts = Parts::default();
    if let Some(userinfo) = userinfo {
        (parts.user, parts.password) = read_userinfo(userinfo)?;
    }
    if after.contains('#') {
        return Err(UrlError(
            "'#' after the host: PostgreSQL URLs have no fragment (write %23 for a '#' in a value)"
                .into(),
        ));
    }
    let (authority, path_query) = after.split_at(after.find(['/', '?']).unwrap_or(after.len()));
    if !authority.is_empty() {
        for chunk in authority.split(',') {
            if chunk.starts_with('[') {
                let (host, port) = read_host_port(chunk, "host")?;
                parts.hosts.push((HostAddr::Tcp(host), port));
            } else {
                let (host, port) = chunk.split_once(':').unwrap_or((chunk, ""));
                let port = match port {
                    "" => None,
                    p => Some(read_port(p, "host")?),
                };
                parts.hosts.push((host_addr(&percent::decode(host))?, port));
            }
        }
    }
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_query, None),
    };
    if let Some(db) = path.strip_prefix('/').filter(|d| !d.is_empty()) {
        parts.dbname = Some(percent::decode_utf8(db, "database name").map_err(UrlError)?);
    }
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            UrlError(format!(
                "query parameter {} has no '=value'",
                shown_key(&String::from_utf8_lossy(&percent::decode(pair)))
            ))
        })?;
        let key = percent::decode_utf8(key, "option name").map_err(UrlError)?;
        parts.set(&key, &percent::decode(value))?;
    }
    parts.finish(Form::Url)
}

/// libpq `key = value` pairs separated by whitespace; values unquoted
/// (backslash escapes the next character) or in single quotes (with `\'`
/// and `\\`).
pub(super) fn parse_key_value(s: &str) -> Result<ConnUrl, UrlError> {
    let mut parts = Parts::default();
    let mut it = s.char_indices().peekable();
    loop {
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = it.peek() else { break };
        let mut key = String::new();
        while let Some((_, c)) = it.next_if(|(_, c)| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if it.next_if(|(_, c)| *c == '=').is_none() {
            return Err(UrlError(format!(
                "expected '=' after the keyword at byte {start} (key=value pairs separated by spaces; quote values with spaces: key='a b')"
            )));
        }
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if it.next_if(|(_, c)| *c == '\'').is_some() {
            loop {
                match it.next() {
                    Some((_, '\'')) => break,
                    Some((_, '\\')) => value.extend(it.next().map(|(_, c)| c)),
                    Some((_, c)) => value.push(c),
                    None => {
                        return Err(UrlError(format!(
                            "the quoted value of {} has no closing quote",
                            shown_key(&key)
                        )))
                    }
                }
            }
        } else {
            while let Some((_, c)) = it.next_if(|(_, c)| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(it.next().map(|(_, c)| c));
                } else {
                    value.push(c);
                }
            }
            if value.is_empty() {
                return Err(UrlError(format!(
                    "{} has no value (write {}='' for an empty one)",
                    shown_key(&key),
                    if shown_key(&key).starts_with('\'') {
                        key.as_str()
                    } else {
                        "key"
                    }
                )));
            }
        }
        parts.set(&key, value.as_bytes())?;
    }
    parts.finish(Form::KeyValue)
}
