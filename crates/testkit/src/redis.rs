//! A private Redis server for one test.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::bins;
use crate::error::{KitError, Result};
use crate::ports::{lease_free_port, ClosedPort, PortLease};
use crate::process::{log_tail, ServerProcess, POLL};
use crate::resp::{RedisReply, RespConn};
use crate::workdir::{self, OwnerRecord};
use crate::{percent_encode, HOST};

const START_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
const PORT_ATTEMPTS: usize = 5;
/// Connect and reply timeout of [`RedisServer::cmd`].
const CMD_TIMEOUT: Duration = Duration::from_secs(10);
const LOG_TAIL_LINES: usize = 30;

/// How a [`RedisServer`] is set up.
#[derive(Clone, Default)]
pub struct RedisOptions {
    /// `requirepass` for the default user. `None`: no password.
    pub password: Option<String>,
    /// Make the server a replica of `127.0.0.1:<a port that refuses
    /// connections>` with `replica-serve-stale-data no`, so the link to the
    /// master is always down. Redis 7.0 then answers data commands **and
    /// `PING`** with `-MASTERDOWN Link with MASTER is down and
    /// replica-serve-stale-data is set to 'no'.` (checked by hand on 7.0.15:
    /// `PING`, `GET`, `DBSIZE` get MASTERDOWN; `SET` gets `-READONLY You
    /// can't write against a read only replica.`; `ECHO`, `INFO`, `AUTH`,
    /// `SELECT`, `HELLO`, `CLIENT`, `CONFIG` still work).
    pub replica_of_unreachable_master: bool,
    /// An extra ACL user `(name, password)` with full rights
    /// (`on >password ~* &* +@all`).
    pub acl_user: Option<(String, String)>,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "replica_of_unreachable_master",
                &self.replica_of_unreachable_master,
            )
            .field(
                "acl_user",
                &self.acl_user.as_ref().map(|(u, _)| (u, "<redacted>")),
            )
            .finish()
    }
}

/// A private Redis server on a free loopback port, in its own directory
/// under `temp_dir()/pool-testkit/`, persisting nothing, with `DEBUG`
/// enabled, as the leader of its own process group. Dropping the value SIGKILLs it,
/// waits for it and removes the directory.
pub struct RedisServer {
    opts: RedisOptions,
    binary: PathBuf,
    dir: PathBuf,
    log_path: PathBuf,
    lease: Option<PortLease>,
    master: Option<ClosedPort>,
    child: Option<ServerProcess>,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("addr", &format_args!("{HOST}:{}", self.port()))
            .field("pid", &self.pid())
            .field("dir", &self.dir)
            .field("options", &self.opts)
            .finish()
    }
}

enum StartFailure {
    PortTaken(String),
    Fatal(KitError),
}

/// Quotes a value for redis.conf (double quotes, backslash escapes).
fn quote(v: &str) -> String {
    let mut s = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

impl RedisServer {
    /// Starts a server with default options (no password).
    pub fn start() -> Result<RedisServer> {
        Self::start_with(RedisOptions::default())
    }

    /// Starts a server with `opts` and waits until it answers `PING` (with
    /// `PONG`, or with `MASTERDOWN` in replica mode).
    pub fn start_with(opts: RedisOptions) -> Result<RedisServer> {
        workdir::sweep_stale();
        let binary = bins::redis_server()?;
        let dir = workdir::new_server_dir("redis")?;
        let master = if opts.replica_of_unreachable_master {
            Some(ClosedPort::bind().map_err(KitError::io(
                "redis",
                "reserving a closed port for the master",
            ))?)
        } else {
            None
        };
        let mut server = RedisServer {
            opts,
            binary,
            log_path: dir.join("redis.log"),
            dir,
            lease: None,
            master,
            child: None,
        };
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            server.lease = Some(
                lease_free_port().map_err(KitError::io(&server.label(), "finding a free port"))?,
            );
            server.write_conf()?;
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(StartFailure::PortTaken(log)) => last_log = log,
                Err(StartFailure::Fatal(e)) => return Err(e),
            }
        }
        Err(KitError::PortUnavailable {
            server: server.label(),
            attempts: PORT_ATTEMPTS,
            log_tail: last_log,
        })
    }

    fn label(&self) -> String {
        format!("redis {HOST}:{} ({})", self.port(), self.dir.display())
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.join("redis.conf")
    }

    fn write_conf(&self) -> Result<()> {
        let mut c = format!(
            "port {}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndir {}\ndaemonize no\n\
             enable-debug-command yes\nlogfile \"\"\n",
            self.port(),
            quote(&self.dir.display().to_string())
        );
        if let Some(pw) = &self.opts.password {
            c.push_str(&format!("requirepass {}\n", quote(pw)));
        }
        if let Some((user, pw)) = &self.opts.acl_user {
            c.push_str(&format!(
                "user {} on {} ~* &* +@all\n",
                quote(user),
                quote(&format!(">{pw}"))
            ));
        }
        if let Some(m) = &self.master {
            c.push_str(&format!(
                "replicaof 127.0.0.1 {}\nreplica-serve-stale-data no\n",
                m.port()
            ));
        }
        std::fs::write(self.conf_path(), c)
            .map_err(KitError::io(&self.label(), "writing redis.conf"))
    }

    fn spawn_and_wait(&mut self) -> std::result::Result<(), StartFailure> {
        let who = self.label();
        let fatal = StartFailure::Fatal;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| fatal(KitError::io(&who, "opening the log file")(e)))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log2 = log
            .try_clone()
            .map_err(|e| fatal(KitError::io(&who, "opening the log file")(e)))?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg(self.conf_path())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = ServerProcess::spawn(&mut cmd, &self.dir).map_err(|e| {
            fatal(KitError::io(
                &who,
                format!("spawning {}", self.binary.display()),
            )(e))
        })?;
        let pgid = child.pid();
        self.child = Some(child);
        workdir::write_record(&self.dir, &OwnerRecord::ours("redis", pgid))
            .map_err(|e| fatal(KitError::io(&who, "writing the owner record")(e)))?;
        let res = self.wait_ready(log_start);
        if res.is_err() {
            if let Some(mut c) = self.child.take() {
                c.kill_all(KILL_TIMEOUT);
            }
        }
        res
    }

    fn wait_ready(&mut self, log_start: u64) -> std::result::Result<(), StartFailure> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().and_then(ServerProcess::try_exit) {
                let bytes = std::fs::read(&self.log_path).unwrap_or_default();
                let new_log =
                    String::from_utf8_lossy(&bytes[(log_start as usize).min(bytes.len())..])
                        .into_owned();
                if new_log.contains("Address already in use") {
                    return Err(StartFailure::PortTaken(new_log));
                }
                return Err(StartFailure::Fatal(KitError::ServerExited {
                    server: self.label(),
                    step: "startup".into(),
                    status: status.to_string(),
                    log_tail: log_tail(&self.log_path, LOG_TAIL_LINES),
                }));
            }
            match self.cmd_reply_timeout(&["PING"], Duration::from_secs(1)) {
                Ok(RedisReply::Error(e)) if e.starts_with("LOADING") => {}
                Ok(_) => return Ok(()),
                Err(_) => {}
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(StartFailure::Fatal(KitError::Timeout {
                    server: self.label(),
                    step: "waiting for the server to answer PING".into(),
                    waited: START_TIMEOUT,
                    log_tail: log_tail(&self.log_path, LOG_TAIL_LINES),
                }));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Always `"127.0.0.1"`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The TCP port; it stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.lease.as_ref().map(PortLease::port).unwrap_or(0)
    }

    /// `redis://[:password@]127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        match &self.opts.password {
            Some(pw) => self.url_with_password(pw),
            None => format!("redis://{HOST}:{}/0", self.port()),
        }
    }

    /// The URL with another password for the default user, e.g. a wrong one.
    pub fn url_with_password(&self, pw: &str) -> String {
        format!("redis://:{}@{HOST}:{}/0", percent_encode(pw), self.port())
    }

    /// The URL for an ACL user: `redis://user:password@127.0.0.1:PORT/0`.
    pub fn url_for_user(&self, user: &str, pw: &str) -> String {
        format!(
            "redis://{}:{}@{HOST}:{}/0",
            percent_encode(user),
            percent_encode(pw),
            self.port()
        )
    }

    /// The options the server was started with.
    pub fn options(&self) -> &RedisOptions {
        &self.opts
    }

    /// The server's own directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server log (appended across restarts).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The port of the unreachable master in replica mode.
    pub fn master_port(&self) -> Option<u16> {
        self.master.as_ref().map(ClosedPort::port)
    }

    /// Whether the server process runs (a frozen one counts as running).
    pub fn is_running(&self) -> bool {
        self.child.as_ref().is_some_and(ServerProcess::is_alive)
    }

    /// The server's pid, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child
            .as_ref()
            .filter(|c| c.is_alive())
            .map(ServerProcess::pid)
    }

    fn not_running(&self, step: &str) -> KitError {
        KitError::WrongState {
            server: self.label(),
            step: step.into(),
            state: "not running",
        }
    }

    /// Graceful stop (SIGTERM), waiting until the process is gone.
    pub fn stop(&mut self) -> Result<()> {
        let label = self.label();
        let log = self.log_path.clone();
        let child = match self.child.as_mut() {
            Some(c) if c.exit_status().is_none() => c,
            _ => return Err(self.not_running("stop")),
        };
        child
            .signal_leader(Signal::SIGTERM)
            .map_err(KitError::signal(&label, "stop", Signal::SIGTERM))?;
        child.signal_all(Signal::SIGCONT).map_err(KitError::signal(
            &label,
            "stop",
            Signal::SIGCONT,
        ))?;
        if child.wait_exit(STOP_TIMEOUT).is_none() || !child.wait_all_gone(KILL_TIMEOUT) {
            return Err(KitError::Timeout {
                server: label,
                step: "stop: waiting for the server to exit".into(),
                waited: STOP_TIMEOUT,
                log_tail: log_tail(&log, LOG_TAIL_LINES),
            });
        }
        self.child = None;
        Ok(())
    }

    /// SIGKILLs the server and waits until it is
    /// gone.
    pub fn kill9(&mut self) -> Result<()> {
        let label = self.label();
        let child = match self.child.as_mut() {
            Some(c) if c.exit_status().is_none() => c,
            _ => return Err(self.not_running("kill9")),
        };
        if !child.kill_all(KILL_TIMEOUT) {
            return Err(KitError::Timeout {
                server: label,
                step: "kill9: waiting for the process to die".into(),
                waited: KILL_TIMEOUT,
                log_tail: String::new(),
            });
        }
        self.child = None;
        Ok(())
    }

    /// Starts the server again on the same port (with no data: nothing is
    /// persisted) and waits until it answers.
    pub fn start_again(&mut self) -> Result<()> {
        if self.is_running() {
            return Err(KitError::WrongState {
                server: self.label(),
                step: "start_again".into(),
                state: "running",
            });
        }
        if let Some(mut c) = self.child.take() {
            c.kill_all(KILL_TIMEOUT);
        }
        match self.spawn_and_wait() {
            Ok(()) => Ok(()),
            Err(StartFailure::Fatal(e)) => Err(e),
            Err(StartFailure::PortTaken(log)) => Err(KitError::PortUnavailable {
                server: self.label(),
                attempts: 1,
                log_tail: log,
            }),
        }
    }

    /// [`stop`](Self::stop) then [`start_again`](Self::start_again).
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.start_again()
    }

    fn signal_all(&self, sig: Signal, step: &str) -> Result<()> {
        match self.child.as_ref() {
            Some(c) if c.exit_status().is_none() => {
                c.signal_all(sig)
                    .map_err(KitError::signal(&self.label(), step, sig))
            }
            _ => Err(self.not_running(step)),
        }
    }

    /// SIGSTOPs the server: connections are accepted by the kernel but
    /// nothing is answered.
    pub fn freeze(&self) -> Result<()> {
        self.signal_all(Signal::SIGSTOP, "freeze")
    }

    /// SIGCONTs a frozen server.
    pub fn thaw(&self) -> Result<()> {
        self.signal_all(Signal::SIGCONT, "thaw")
    }

    /// Opens a connection and authenticates as the default user if the
    /// server has a password.
    fn connect(&self, timeout: Duration) -> Result<RespConn> {
        let label = self.label();
        let mut conn =
            RespConn::connect(self.port(), timeout).map_err(KitError::io(&label, "connecting"))?;
        if let Some(pw) = &self.opts.password {
            let reply = conn
                .call(&["AUTH", pw])
                .map_err(KitError::io(&label, "AUTH"))?;
            if let RedisReply::Error(message) = reply {
                return Err(KitError::RedisReply {
                    server: label,
                    command: "AUTH".into(),
                    message,
                });
            }
        }
        Ok(conn)
    }

    /// Runs one command on a fresh connection (authenticated with the
    /// server's password) and returns the raw reply, error replies
    /// included. Connect and reply are bounded by `timeout`.
    pub fn cmd_reply_timeout(&self, args: &[&str], timeout: Duration) -> Result<RedisReply> {
        let mut conn = self.connect(timeout)?;
        let name = args.first().copied().unwrap_or_default();
        conn.call(args)
            .map_err(KitError::io(&self.label(), format!("running {name}")))
    }

    /// Like [`cmd`](Self::cmd), with a custom timeout (e.g. short, to see a
    /// frozen or busy server not answer).
    pub fn cmd_timeout(&self, args: &[&str], timeout: Duration) -> Result<String> {
        match self.cmd_reply_timeout(args, timeout)? {
            RedisReply::Error(message) => Err(KitError::RedisReply {
                server: self.label(),
                command: args.first().copied().unwrap_or_default().to_string(),
                message,
            }),
            reply => Ok(reply.to_text()),
        }
    }

    /// Runs one command on a fresh connection and returns the reply as text
    /// (see [`RedisReply::to_text`]). An error reply becomes
    /// [`KitError::RedisReply`], whose message starts with the error code
    /// (`MASTERDOWN ...`); see [`KitError::redis_reply`]. Bounded by 10 s.
    pub fn cmd(&self, args: &[&str]) -> Result<String> {
        self.cmd_timeout(args, CMD_TIMEOUT)
    }

    fn cmd_int(&self, args: &[&str]) -> Result<usize> {
        let text = self.cmd(args)?;
        text.parse().map_err(|_| KitError::Protocol {
            server: self.label(),
            step: args.join(" "),
            detail: format!("expected a number, got {text:?}"),
        })
    }

    /// Closes every normal client connection except the one asking
    /// (`CLIENT KILL TYPE normal SKIPME yes`); returns how many.
    pub fn client_kill_all(&self) -> Result<usize> {
        self.cmd_int(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])
    }

    /// How many clients are connected, not counting the one asking
    /// (from `CLIENT LIST`).
    pub fn client_count(&self) -> Result<usize> {
        let label = self.label();
        let mut conn = self.connect(CMD_TIMEOUT)?;
        let me = conn
            .call(&["CLIENT", "ID"])
            .map_err(KitError::io(&label, "CLIENT ID"))?
            .to_text();
        let list = conn
            .call(&["CLIENT", "LIST"])
            .map_err(KitError::io(&label, "CLIENT LIST"))?
            .to_text();
        let mine = format!("id={me} ");
        Ok(list
            .lines()
            .filter(|l| l.starts_with("id=") && !l.starts_with(&mine))
            .count())
    }

    /// Makes the server busy for `secs` seconds (`DEBUG SLEEP`), sent on a
    /// connection of its own; returns without waiting for the reply (about
    /// 20 ms after sending, so the server has started sleeping). A thread
    /// reads the reply later and closes that connection.
    pub fn debug_sleep(&self, secs: f64) -> Result<()> {
        let label = self.label();
        let mut conn = self.connect(CMD_TIMEOUT)?;
        conn.send(&["DEBUG", "SLEEP", &secs.to_string()])
            .map_err(KitError::io(&label, "sending DEBUG SLEEP"))?;
        conn.set_read_timeout(Some(
            Duration::from_secs_f64(secs.max(0.0)) + Duration::from_secs(30),
        ))
        .map_err(KitError::io(&label, "setting a timeout"))?;
        std::thread::Builder::new()
            .name("testkit-debug-sleep".into())
            .spawn(move || {
                let _ = conn.read();
            })
            .map_err(KitError::io(&label, "spawning a reader thread"))?;
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if !c.kill_all(KILL_TIMEOUT) {
                tracing::error!(dir = %self.dir.display(), "pool-testkit: redis survived SIGKILL");
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.dir.display(), error = %e, "pool-testkit: could not remove the server directory");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_conf_values() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
