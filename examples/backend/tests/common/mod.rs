//! Running the built `backend` binary against private servers and talking
//! HTTP/1.1 to it over plain `std::net` (no client library needed).
//!
//! Every response and every log line is checked for the servers'
//! passwords: a leak fails the test that caused it.

#![allow(dead_code)]

use pool_testkit::{PgOptions, PgServer, RedisOptions, RedisServer};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The PostgreSQL password of every test server.
pub const PG_PASSWORD: &str = "pg-Secret-4711-xq";
/// The Redis password of every test server.
pub const REDIS_PASSWORD: &str = "redis-Secret-0815-zk";
/// Longest a test waits for the service to come up.
pub const START_LIMIT: Duration = Duration::from_secs(60);

/// Private PostgreSQL and Redis servers, both with passwords.
pub struct Servers {
    /// PostgreSQL.
    pub pg: PgServer,
    /// Redis.
    pub redis: RedisServer,
}

impl Servers {
    /// Starts both.
    pub fn start() -> Servers {
        let pg = PgServer::start_with(PgOptions {
            password: Some(PG_PASSWORD.into()),
            ..PgOptions::default()
        })
        .expect("start PostgreSQL");
        let redis = RedisServer::start_with(RedisOptions {
            password: Some(REDIS_PASSWORD.into()),
            ..RedisOptions::default()
        })
        .expect("start Redis");
        Servers { pg, redis }
    }

    /// The environment the service needs to reach them.
    pub fn env(&self) -> Vec<(String, String)> {
        let pg = self.pg.url();
        let redis = self.redis.url();
        assert!(
            pg.contains(PG_PASSWORD),
            "the kit's URL carries the password"
        );
        assert!(redis.contains(REDIS_PASSWORD));
        vec![("DATABASE_URL".into(), pg), ("REDIS_URL".into(), redis)]
    }
}

/// The settings every test runs with: short timeouts so outages show in
/// seconds, a free port on loopback, debug logs of the pool engine (so the
/// secret check covers them too).
pub fn base_env() -> Vec<(String, String)> {
    [
        ("PORT", "0"),
        ("BIND_ADDRESS", "127.0.0.1"),
        ("RUST_LOG", "info,pool_core=debug,backend=debug"),
        ("HEALTH_TIMEOUT", "1"),
        ("CACHE_TIMEOUT", "0.3"),
        ("STARTUP_TIMEOUT", "30"),
        ("SHUTDOWN_TIMEOUT", "10"),
        ("DB_POOL_TIMEOUT", "2"),
        ("DB_CONNECT_TIMEOUT", "1"),
        ("REDIS_POOL_TIMEOUT", "2"),
        ("REDIS_CONNECT_TIMEOUT", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The binary with exactly `env` (nothing inherited).
pub fn command(env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_backend"));
    cmd.env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A running service.
pub struct Backend {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
}

fn collect(stream: impl Read + Send + 'static, lines: Arc<Mutex<Vec<String>>>) {
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            lines.lock().unwrap().push(line);
        }
    });
}

impl Backend {
    /// Starts the service against `servers` with [`base_env`] plus
    /// `extra`, and waits until it listens.
    pub fn start(servers: &Servers, extra: &[(&str, &str)]) -> Backend {
        let mut env = base_env();
        env.extend(servers.env());
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        Backend::spawn(command(&env))
    }

    /// Spawns `cmd` and waits for its "listening on" line.
    pub fn spawn(mut cmd: Command) -> Backend {
        let mut child = cmd.spawn().expect("spawn backend");
        let lines = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().unwrap(), lines.clone());
        collect(child.stderr.take().unwrap(), lines.clone());
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let found = lines.lock().unwrap().iter().find_map(|l| {
                l.split("listening on http://")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|a| a.parse::<SocketAddr>().ok())
            });
            if let Some(addr) = found {
                return Backend { child, addr, lines };
            }
            if let Ok(Some(status)) = child.try_wait() {
                thread::sleep(Duration::from_millis(100));
                panic!(
                    "backend exited with {status} before listening:\n{}",
                    lines.lock().unwrap().join("\n")
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "backend did not listen within {START_LIMIT:?}:\n{}",
                    lines.lock().unwrap().join("\n")
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Resp {
        request(self.addr, "GET", path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `POST path` (empty body).
    pub fn post(&self, path: &str) -> Resp {
        request(self.addr, "POST", path).unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Everything it printed so far (stdout and stderr).
    pub fn logs(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Fails if a password appears in its output.
    pub fn assert_no_secret(&self) {
        let logs = self.logs();
        for secret in [PG_PASSWORD, REDIS_PASSWORD] {
            assert!(
                !logs.contains(secret),
                "a password leaked into the logs:\n{logs}"
            );
        }
    }

    /// Sends a signal.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal backend");
    }

    /// Waits for the process to exit; panics after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader threads drain the pipes.
                thread::sleep(Duration::from_millis(100));
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("backend still running after {limit:?}:\n{}", self.logs());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

impl Resp {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Asserts the status and a JSON content type; returns the body.
    pub fn expect_json(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        self.json()
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`). Every
/// response is checked for the passwords.
pub fn request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<Resp> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    for secret in [PG_PASSWORD, REDIS_PASSWORD] {
        assert!(
            !text.contains(secret),
            "{method} {path}: a password leaked into the response:\n{text}"
        );
    }
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("no header end: {text:?}"),
        )
    })?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, status_line.to_string())
        })?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Polls `f` every 100 ms until it returns `Some`; panics with `what`
/// after `limit`.
pub fn wait_until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// One sample of Prometheus text: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels in order.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

impl Sample {
    /// A label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the Prometheus text exposition format strictly enough for
/// tests: every line is blank, a `# HELP` / `# TYPE` comment, or
/// `name{label="value",...} number`. Panics on anything else.
pub fn parse_prometheus(text: &str) -> (Vec<Sample>, Vec<(String, String)>) {
    let mut samples = Vec::new();
    let mut types = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            types.push((name.to_string(), kind.to_string()));
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("bad labels: {line}"));
                let labels = inner
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair
                            .split_once('=')
                            .unwrap_or_else(|| panic!("bad label: {line}"));
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), Vec::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    (samples, types)
}

/// The value of the sample `name` with exactly these labels (in any order).
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.label(k) == Some(v))
        })
        .map(|s| s.value)
}
