//! A private Redis server for one test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::bins;
use crate::certs::{ServerCert, TestCerts};
use crate::error::{KitError, Result};
use crate::ports::ClosedPort;
use crate::process::{log_tail, POLL};
use crate::resp::{RedisReply, RespConn};
use crate::server::{self, Instance, Lifecycle, KILL_TIMEOUT, LOG_TAIL_LINES};
use crate::workdir;
use crate::{percent_encode, HOST};

/// How long a graceful stop may take before it is an error.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Connect and reply timeout of [`RedisServer::cmd`].
const CMD_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Serve TLS only: `port 0`, `tls-port` on the leased port, a
    /// certificate from [`TestCerts`]. The kit's own commands then go
    /// through a private Unix socket.
    pub tls: Option<RedisTls>,
}

/// The TLS setup of a test Redis server.
#[derive(Debug, Clone)]
pub struct RedisTls {
    /// Where the certificates come from.
    pub certs: TestCerts,
    /// Which server certificate is presented.
    pub server_cert: ServerCert,
    /// `tls-auth-clients yes`: clients must present a certificate signed by
    /// the test CA (`no`: they must not need one).
    pub auth_clients: bool,
}

impl RedisTls {
    /// TLS with the valid `localhost` certificate.
    pub fn new(certs: &TestCerts, auth_clients: bool) -> RedisTls {
        RedisTls {
            certs: certs.clone(),
            server_cert: ServerCert::Valid,
            auth_clients,
        }
    }
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
            .field("tls", &self.tls)
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
    master: Option<ClosedPort>,
    inst: Instance,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("addr", &format_args!("{HOST}:{}", self.port()))
            .field("pid", &self.pid())
            .field("dir", &self.inst.dir)
            .field("options", &self.opts)
            .finish()
    }
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
            master,
            inst: Instance::new(dir, "redis.log"),
        };
        server::start_on_free_port(&mut server)?;
        Ok(server)
    }

    fn conf_path(&self) -> PathBuf {
        self.inst.dir.join("redis.conf")
    }

    fn write_conf(&self) -> Result<()> {
        let mut c = format!(
            "bind 127.0.0.1\nsave \"\"\nappendonly no\ndir {}\ndaemonize no\n\
             enable-debug-command yes\nlogfile \"\"\n",
            quote(&self.inst.dir.display().to_string())
        );
        match &self.opts.tls {
            None => c.push_str(&format!("port {}\n", self.port())),
            Some(tls) => {
                let files = tls.certs.install_server(tls.server_cert, &self.inst.dir)?;
                let q = |p: &Path| quote(&p.display().to_string());
                c.push_str(&format!(
                    "port 0\ntls-port {}\ntls-cert-file {}\ntls-key-file {}\n\
                     tls-ca-cert-file {}\ntls-auth-clients {}\nunixsocket {}\nunixsocketperm 700\n",
                    self.port(),
                    q(&files.cert),
                    q(&files.key),
                    q(&files.ca),
                    if tls.auth_clients { "yes" } else { "no" },
                    q(&self.socket_path()),
                ));
            }
        }
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

    /// The private Unix socket of a TLS server (the kit's own commands use
    /// it).
    fn socket_path(&self) -> PathBuf {
        self.inst.dir.join("redis.sock")
    }

    /// `rediss://[:password@]localhost:PORT/0` for a TLS server (the test
    /// certificates are valid for `localhost` only); `None` without TLS.
    pub fn tls_url(&self) -> Option<String> {
        self.opts.tls.as_ref()?;
        let auth = match &self.opts.password {
            Some(pw) => format!(":{}@", percent_encode(pw)),
            None => String::new(),
        };
        Some(format!(
            "rediss://{auth}{}:{}/0",
            crate::TLS_HOST,
            self.port()
        ))
    }

    /// Always `"127.0.0.1"`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The TCP port; it stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.inst.port()
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
        &self.inst.dir
    }

    /// The server log (appended across restarts).
    pub fn log_path(&self) -> &Path {
        &self.inst.log_path
    }

    /// The port of the unreachable master in replica mode.
    pub fn master_port(&self) -> Option<u16> {
        self.master.as_ref().map(ClosedPort::port)
    }

    /// Whether the server process runs (a frozen one counts as running).
    pub fn is_running(&self) -> bool {
        self.inst.is_running()
    }

    /// The server's pid, while running.
    pub fn pid(&self) -> Option<u32> {
        self.inst.pid()
    }

    /// Graceful stop (SIGTERM), waiting until the process is gone.
    pub fn stop(&mut self) -> Result<()> {
        let label = self.label();
        let log = self.inst.log_path.clone();
        let child = server::running_child(self, "stop")?;
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
        self.inst.child = None;
        Ok(())
    }

    /// SIGKILLs the server and waits until it is
    /// gone.
    pub fn kill9(&mut self) -> Result<()> {
        server::kill9(self)
    }

    /// Starts the server again on the same port (with no data: nothing is
    /// persisted) and waits until it answers.
    pub fn start_again(&mut self) -> Result<()> {
        server::start_again(self)
    }

    /// [`stop`](Self::stop) then [`start_again`](Self::start_again).
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// SIGSTOPs the server: connections are accepted by the kernel but
    /// nothing is answered.
    pub fn freeze(&self) -> Result<()> {
        server::signal_all(self, Signal::SIGSTOP, "freeze")
    }

    /// SIGCONTs a frozen server.
    pub fn thaw(&self) -> Result<()> {
        server::signal_all(self, Signal::SIGCONT, "thaw")
    }

    /// Opens a connection and authenticates as the default user if the
    /// server has a password.
    fn connect(&self, timeout: Duration) -> Result<RespConn> {
        let label = self.label();
        let conn = match &self.opts.tls {
            None => RespConn::connect(self.port(), timeout),
            Some(_) => RespConn::connect_unix(&self.socket_path(), timeout),
        };
        let mut conn = conn.map_err(KitError::io(&label, "connecting"))?;
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

impl Lifecycle for RedisServer {
    const NAME: &'static str = "redis";
    const KIND: &'static str = "redis";
    const START_TIMEOUT: Duration = Duration::from_secs(15);
    const READY_POLL: Duration = POLL;
    const READY_STEP: &'static str = "waiting for the server to answer PING";
    const KILL9_STEP: &'static str = "kill9: waiting for the process to die";
    const PORT_TAKEN: &'static [&'static str] = &["Address already in use"];

    fn instance(&self) -> &Instance {
        &self.inst
    }

    fn instance_mut(&mut self) -> &mut Instance {
        &mut self.inst
    }

    /// `redis.conf` names the port: write it anew.
    fn port_changed(&mut self) -> Result<()> {
        self.write_conf()
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg(self.conf_path());
        cmd
    }

    /// `PING` gets any answer but `LOADING` (`MASTERDOWN` in replica mode
    /// counts as ready).
    fn probe_ready(&self) -> bool {
        match self.cmd_reply_timeout(&["PING"], Duration::from_secs(1)) {
            Ok(RedisReply::Error(e)) => !e.starts_with("LOADING"),
            Ok(_) => true,
            Err(_) => false,
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.inst.kill_on_drop("redis");
        self.inst.remove_dir();
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
