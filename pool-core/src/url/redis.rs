//! Redis URLs: `redis://`, `rediss://`, `unix://`, `redis+unix://`.

use super::{
    params, percent, read_host_port, read_userinfo, shown_key, split_userinfo, Backend, ConnUrl,
    Form, Host, HostAddr, Secret, UrlError,
};

/// Parses `s`, whose lower-cased scheme is `scheme`.
pub(super) fn parse(scheme: &str, s: &str) -> Result<ConnUrl, UrlError> {
    let rest = &s[scheme.len() + 3..];
    let mut url = ConnUrl {
        backend: Backend::Redis,
        form: Form::Url,
        tls: scheme == "rediss",
        hosts: Vec::new(),
        user: None,
        password: None,
        dbname: None,
        params: Vec::new(),
        secret_params: Vec::new(),
        fragment: None,
    };
    if scheme == "unix" || scheme == "redis+unix" {
        url.form = Form::UnixUrl;
        return unix(url, rest);
    }
    let (userinfo, after) = split_userinfo(rest);
    if let Some(userinfo) = userinfo {
        let (user, password) = read_userinfo(userinfo)?;
        url.user = user;
        url.password = password;
        if url
            .password
            .as_ref()
            .is_some_and(|p| p.expose_str().is_none())
        {
            return Err(UrlError(
                "the password is not valid UTF-8 once percent-decoded (redis-rs sends text)".into(),
            ));
        }
    }
    let (after, fragment) = match after.split_once('#') {
        Some((a, f)) => (a, Some(f)),
        None => (after, None),
    };
    if let Some(f) = fragment {
        if !(url.tls && f == "insecure") {
            return Err(UrlError(
                "the only URL fragment is #insecure, on rediss:// (TLS without certificate checks)"
                    .into(),
            ));
        }
        url.fragment = Some(f.into());
    }
    let (after, query) = match after.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (after, None),
    };
    let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
    if authority.contains(',') {
        return Err(UrlError(
            "several hosts in a Redis URL: use Sentinel for failover; a redis:// URL names one server"
                .into(),
        ));
    }
    let (host, port) = read_host_port(authority, "host")?;
    let host = percent::decode_utf8(&host, "host").map_err(UrlError)?;
    if host.is_empty() {
        return Err(UrlError(
            "no host given (redis://[USER][:PASSWORD@]HOST[:PORT][/DB])".into(),
        ));
    }
    if host == "0.0.0.0" || host == "::" {
        return Err(UrlError(format!(
            "{host} is a wildcard address to listen on, not one to connect to"
        )));
    }
    url.hosts.push(Host {
        addr: HostAddr::Tcp(host),
        port: port.unwrap_or(Backend::Redis.default_port()),
    });
    if let Some(db) = path.strip_prefix('/').filter(|d| !d.is_empty()) {
        url.dbname = Some(read_db(db)?);
    }
    query_params(&mut url, query, false)?;
    Ok(url)
}

/// `unix:///path/to/redis.sock?db=N&user=U&pass=P&protocol=3`.
fn unix(mut url: ConnUrl, rest: &str) -> Result<ConnUrl, UrlError> {
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let path = percent::decode(path);
    if path.first() != Some(&b'/') {
        return Err(UrlError(
            "a Unix socket URL needs an absolute path: unix:///run/redis/redis.sock".into(),
        ));
    }
    use std::os::unix::ffi::OsStringExt;
    url.hosts.push(Host {
        addr: HostAddr::Unix(std::ffi::OsString::from_vec(path).into()),
        port: Backend::Redis.default_port(),
    });
    query_params(&mut url, query, true)?;
    Ok(url)
}

/// A database index: a whole number >= 0.
fn read_db(db: &str) -> Result<String, UrlError> {
    match db.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n.to_string()),
        _ => Err(UrlError(format!(
            "invalid database index {:?}: expected a whole number >= 0 (redis://HOST/0)",
            super::short(db)
        ))),
    }
}

/// The query string; `db`, `user` and `pass` only on Unix sockets, as
/// redis-rs reads them.
fn query_params(url: &mut ConnUrl, query: Option<&str>, unix: bool) -> Result<(), UrlError> {
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent::decode_utf8(key, "option name").map_err(UrlError)?;
        let value = percent::decode(value);
        let text = || {
            String::from_utf8(value.clone())
                .map_err(|_| UrlError(format!("option {} is not valid UTF-8", shown_key(&key))))
        };
        match key.as_str() {
            "pass" | "password" if unix => {
                text()?;
                url.password = Some(Secret::new(value));
            }
            "user" if unix => url.user = Some(text()?).filter(|u| !u.is_empty()),
            "db" if unix => url.dbname = Some(read_db(&text()?)?),
            _ => {
                let value = text()?;
                let secret = params::check(Backend::Redis, &key, &value)
                    .map_err(|e| UrlError(e.replace(&format!("'{key}'"), &shown_key(&key))))?;
                if secret {
                    url.secret_params.push((key, Secret::new(value)));
                } else {
                    url.params.push((key, value));
                }
            }
        }
    }
    Ok(())
}
