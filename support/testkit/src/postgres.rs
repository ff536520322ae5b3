//! A private PostgreSQL server for one test.

use std::fs::OpenOptions;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::bins::{pg_bins, PgBins};
use crate::certs::{ServerCert, TestCerts};
use crate::error::{KitError, Result};
use crate::pgdata::{self, AuthMode, RunAs};
use crate::pgwire::{self, LoginProbe};
use crate::process::{log_tail, run_bounded};
use crate::server::{self, Instance, Lifecycle, KILL_TIMEOUT, LOG_TAIL_LINES};
use crate::workdir;
use crate::{percent_encode, HOST};

/// How long a shutdown may take before it is an error.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `psql` helper calls may take.
const PSQL_TIMEOUT: Duration = Duration::from_secs(30);

/// How a [`PgServer`] is set up.
#[derive(Clone)]
pub struct PgOptions {
    /// Password of the `postgres` superuser. `None` means trust
    /// authentication; `Some` means SCRAM-SHA-256 for every TCP login (the
    /// server's private Unix socket stays trusted for the kit's own probes).
    pub password: Option<String>,
    /// `max_connections` (default 100). Reserved superuser slots are set to
    /// 0, so this is exactly how many sessions fit.
    pub max_connections: u32,
    /// Start as a standby with `hot_standby = off` and no primary: the
    /// server listens, but answers every login with SQLSTATE 57P03
    /// `the database system is not accepting connections` (detail
    /// `Hot standby mode is disabled.`).
    pub standby_57p03: bool,
    /// Extra `postgresql.conf` settings, written after the kit's own (so
    /// they win). Values are quoted for you.
    pub extra_conf: Vec<(String, String)>,
    /// Serve TLS (`ssl = on`) with a certificate from [`TestCerts`], and
    /// the `pg_hba.conf` that [`PgTls::hba`] names. The kit's own `psql`
    /// calls then use the server's Unix socket (always trusted).
    pub tls: Option<PgTls>,
}

/// The TLS setup of a test PostgreSQL server.
#[derive(Debug, Clone)]
pub struct PgTls {
    /// Where the certificates come from.
    pub certs: TestCerts,
    /// Which server certificate is presented.
    pub server_cert: ServerCert,
    /// Which TCP logins `pg_hba.conf` accepts.
    pub hba: HbaTls,
}

impl PgTls {
    /// TLS with the valid `localhost` certificate and `hba`.
    pub fn new(certs: &TestCerts, hba: HbaTls) -> PgTls {
        PgTls {
            certs: certs.clone(),
            server_cert: ServerCert::Valid,
            hba,
        }
    }
}

/// Which TCP logins a TLS test server's `pg_hba.conf` accepts (the
/// authentication method is SCRAM with a password, trust without).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HbaTls {
    /// `hostssl` only: a plaintext login is refused with SQLSTATE 28000
    /// (`no pg_hba.conf entry ... no encryption`).
    SslOnly,
    /// `hostssl` and `host`: both are accepted.
    SslOrPlain,
    /// `hostssl ... clientcert=verify-full`: TLS with a client certificate
    /// signed by the test CA whose CN is the user name (`postgres`).
    ClientCert,
}

impl HbaTls {
    /// The `pg_hba.conf` for this mode; `method` is the auth method.
    fn render(self, method: &str) -> String {
        let mut s = String::from("# pool-testkit TLS\nlocal all all trust\n");
        match self {
            HbaTls::SslOnly => s.push_str(&format!("hostssl all all 127.0.0.1/32 {method}\n")),
            HbaTls::SslOrPlain => s.push_str(&format!(
                "hostssl all all 127.0.0.1/32 {method}\nhost all all 127.0.0.1/32 {method}\n"
            )),
            HbaTls::ClientCert => s.push_str(&format!(
                "hostssl all all 127.0.0.1/32 {method} clientcert=verify-full\n"
            )),
        }
        s
    }
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            password: None,
            max_connections: 100,
            standby_57p03: false,
            extra_conf: Vec::new(),
            tls: None,
        }
    }
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("max_connections", &self.max_connections)
            .field("standby_57p03", &self.standby_57p03)
            .field("extra_conf", &self.extra_conf)
            .field("tls", &self.tls)
            .finish()
    }
}

/// A private PostgreSQL server on a free loopback port, in its own
/// directory under `temp_dir()/pool-testkit/`, run from the installed
/// binaries as the `postgres` user (when we are root).
///
/// [`freeze`](Self::freeze) and [`kill9`](Self::kill9) reach the postmaster
/// and every backend (backends call `setsid()`, so they are found by their
/// working directory, which lies in the server's directory; the postmaster
/// is stopped first so that it cannot fork while we look). Dropping the
/// value SIGKILLs all of them, waits until they are gone and removes the
/// directory.
pub struct PgServer {
    opts: PgOptions,
    bins: PgBins,
    run_as: Option<RunAs>,
    data_dir: PathBuf,
    inst: Instance,
}

impl std::fmt::Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer")
            .field("addr", &format_args!("{HOST}:{}", self.port()))
            .field("pid", &self.pid())
            .field("dir", &self.inst.dir)
            .field("options", &self.opts)
            .finish()
    }
}

impl PgServer {
    /// Starts a server with default options (trust authentication).
    pub fn start() -> Result<PgServer> {
        Self::start_with(PgOptions::default())
    }

    /// Starts a server with `opts` and waits until it accepts connections
    /// (or, for [`PgOptions::standby_57p03`], until it answers logins with
    /// 57P03).
    pub fn start_with(opts: PgOptions) -> Result<PgServer> {
        workdir::sweep_stale();
        let bins = pg_bins()?;
        let run_as = RunAs::for_postgres()?;
        let auth = if opts.password.is_some() {
            AuthMode::Scram
        } else {
            AuthMode::Trust
        };
        let template = pgdata::template(&bins, auth, run_as)?;
        let dir = workdir::new_server_dir("pg")?;
        let mut server = PgServer {
            opts,
            bins,
            run_as,
            data_dir: dir.join("data"),
            inst: Instance::new(dir, "postgres.log"),
        };
        // From here on, Drop cleans up whatever failed.
        server.prepare(&template)?;
        server::start_on_free_port(&mut server)?;
        Ok(server)
    }

    fn prepare(&mut self, template: &Path) -> Result<()> {
        let who = self.label();
        if let Some(r) = self.run_as {
            r.chown(&self.inst.dir)
                .map_err(KitError::io(&who, "chown the server directory"))?;
        }
        pgdata::copy_template(template, &self.data_dir, &who)?;
        let mut extra = Vec::new();
        if let Some(tls) = &self.opts.tls {
            extra = self.prepare_tls(tls)?;
        }
        extra.extend(self.opts.extra_conf.iter().cloned());
        let conf = pgdata::settings(
            &self.inst.dir,
            self.opts.max_connections,
            self.opts.standby_57p03,
            &extra,
        );
        let mut f = OpenOptions::new()
            .append(true)
            .open(self.data_dir.join("postgresql.conf"))
            .map_err(KitError::io(&who, "opening postgresql.conf"))?;
        std::io::Write::write_all(&mut f, conf.as_bytes())
            .map_err(KitError::io(&who, "writing postgresql.conf"))?;
        if let Some(pw) = &self.opts.password {
            pgdata::set_password(
                &self.bins,
                &self.data_dir,
                &self.inst.dir,
                self.run_as,
                pw,
                &who,
            )?;
        }
        if self.opts.standby_57p03 {
            let signal = self.data_dir.join("standby.signal");
            std::fs::write(&signal, b"").map_err(KitError::io(&who, "writing standby.signal"))?;
            if let Some(r) = self.run_as {
                r.chown(&signal)
                    .map_err(KitError::io(&who, "chown standby.signal"))?;
            }
        }
        Ok(())
    }

    /// Copies the certificate files into the server directory (owned by
    /// the server's user), writes `pg_hba.conf`, and returns the TLS
    /// settings for `postgresql.conf`.
    fn prepare_tls(&self, tls: &PgTls) -> Result<Vec<(String, String)>> {
        let who = self.label();
        let files = tls.certs.install_server(tls.server_cert, &self.inst.dir)?;
        if let Some(r) = self.run_as {
            for f in [&files.cert, &files.key, &files.ca] {
                r.chown(f)
                    .map_err(KitError::io(&who, format!("chown {}", f.display())))?;
            }
        }
        let method = if self.opts.password.is_some() {
            "scram-sha-256"
        } else {
            "trust"
        };
        let hba = self.data_dir.join("pg_hba.conf");
        std::fs::write(&hba, tls.hba.render(method))
            .map_err(KitError::io(&who, "writing pg_hba.conf"))?;
        let path = |p: &Path| p.display().to_string();
        Ok(vec![
            ("ssl".into(), "on".into()),
            ("ssl_cert_file".into(), path(&files.cert)),
            ("ssl_key_file".into(), path(&files.key)),
            ("ssl_ca_file".into(), path(&files.ca)),
        ])
    }

    /// The URL with another host name (e.g. `localhost`, the only name the
    /// test certificates are valid for), with the server's password.
    pub fn url_at(&self, host: &str) -> String {
        let auth = match &self.opts.password {
            Some(pw) => format!("postgres:{}", percent_encode(pw)),
            None => "postgres".into(),
        };
        format!("postgres://{auth}@{host}:{}/postgres", self.port())
    }

    /// Always `"127.0.0.1"`: servers listen on loopback only.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The TCP port; it stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.inst.port()
    }

    /// `postgres://postgres[:password]@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        match &self.opts.password {
            Some(pw) => self.url_with_password(pw),
            None => format!("postgres://postgres@{HOST}:{}/postgres", self.port()),
        }
    }

    /// The URL with another password, e.g. a wrong one for auth tests.
    pub fn url_with_password(&self, pw: &str) -> String {
        format!(
            "postgres://postgres:{}@{HOST}:{}/postgres",
            percent_encode(pw),
            self.port()
        )
    }

    /// The options the server was started with.
    pub fn options(&self) -> &PgOptions {
        &self.opts
    }

    /// The server's own directory (data dir, socket, log).
    pub fn dir(&self) -> &Path {
        &self.inst.dir
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server log (stdout and stderr of every run, appended).
    pub fn log_path(&self) -> &Path {
        &self.inst.log_path
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.inst.log_path, lines)
    }

    /// The directory of the server's Unix socket (trusted even in password
    /// mode).
    pub fn socket_dir(&self) -> &Path {
        &self.inst.dir
    }

    /// Whether the postmaster is running (a frozen one counts as running).
    pub fn is_running(&self) -> bool {
        self.inst.is_running()
    }

    /// The postmaster's pid, while running.
    pub fn pid(&self) -> Option<u32> {
        self.inst.pid()
    }

    /// Sends `sig` to the postmaster and waits until every process of the
    /// server is gone.
    fn shutdown(&mut self, sig: Signal, step: &str) -> Result<()> {
        let label = self.label();
        let child = server::running_child(self, step)?;
        child
            .signal_leader(sig)
            .map_err(KitError::signal(&label, step, sig))?;
        // A frozen server must run to act on the signal.
        child.signal_all(Signal::SIGCONT).map_err(KitError::signal(
            &label,
            step,
            Signal::SIGCONT,
        ))?;
        if child.wait_exit(STOP_TIMEOUT).is_none() {
            return Err(KitError::Timeout {
                server: label,
                step: format!("{step}: waiting for the postmaster to exit"),
                waited: STOP_TIMEOUT,
                log_tail: log_tail(&self.inst.log_path, LOG_TAIL_LINES),
            });
        }
        let gone = child.wait_all_gone(KILL_TIMEOUT) || child.kill_all(KILL_TIMEOUT);
        if !gone {
            return Err(KitError::Timeout {
                server: label,
                step: format!("{step}: waiting for the backends to exit"),
                waited: KILL_TIMEOUT,
                log_tail: log_tail(&self.inst.log_path, LOG_TAIL_LINES),
            });
        }
        self.inst.child = None;
        Ok(())
    }

    /// Fast shutdown (SIGINT): sessions are cut, a checkpoint is written.
    pub fn stop_fast(&mut self) -> Result<()> {
        self.shutdown(Signal::SIGINT, "stop_fast")
    }

    /// Immediate shutdown (SIGQUIT): no checkpoint; the next start runs
    /// crash recovery.
    pub fn stop_immediate(&mut self) -> Result<()> {
        self.shutdown(Signal::SIGQUIT, "stop_immediate")
    }

    /// SIGKILLs the postmaster and every backend at once (the whole process
    /// group), like a machine losing power, and waits until all are gone.
    pub fn kill9(&mut self) -> Result<()> {
        server::kill9(self)
    }

    /// Starts the server again on the same data directory and port, and
    /// waits until it accepts connections.
    pub fn start_again(&mut self) -> Result<()> {
        server::start_again(self)
    }

    /// [`stop_fast`](Self::stop_fast) then [`start_again`](Self::start_again).
    pub fn restart_fast(&mut self) -> Result<()> {
        self.stop_fast()?;
        self.start_again()
    }

    /// [`stop_immediate`](Self::stop_immediate) then
    /// [`start_again`](Self::start_again).
    pub fn restart_immediate(&mut self) -> Result<()> {
        self.stop_immediate()?;
        self.start_again()
    }

    /// SIGSTOPs the postmaster and every backend: the port still accepts
    /// TCP connections (the kernel queues them) but nothing answers, like a
    /// hung server or a network black hole.
    pub fn freeze(&self) -> Result<()> {
        server::signal_all(self, Signal::SIGSTOP, "freeze")
    }

    /// SIGCONTs every process frozen by [`freeze`](Self::freeze).
    pub fn thaw(&self) -> Result<()> {
        server::signal_all(self, Signal::SIGCONT, "thaw")
    }

    /// A `psql` command preset for this server: `-h 127.0.0.1 -p PORT -U
    /// postgres -d postgres -X -A -t -q -w -v ON_ERROR_STOP=1`, with
    /// `PGPASSWORD` set to `password` (or unset for `None`), a 5 s connect
    /// timeout, no `.pgpass` file, and stdin from /dev/null. Add `-c SQL` and run
    /// it. Useful for tests that need a session of their own.
    pub fn psql_command(&self, password: Option<&str>) -> Command {
        let mut cmd = Command::new(&self.bins.psql);
        // A TLS server may refuse plaintext TCP logins: use its socket.
        let host = match &self.opts.tls {
            Some(_) => self.inst.dir.display().to_string(),
            None => HOST.to_string(),
        };
        cmd.args(["-h", &host, "-p"])
            .arg(self.port().to_string())
            .args([
                "-U", "postgres", "-d", "postgres", "-X", "-A", "-t", "-q", "-w",
            ])
            .args(["-v", "ON_ERROR_STOP=1"])
            .env("PGCONNECT_TIMEOUT", "5")
            .env("PGSSLMODE", "disable")
            .env("PGPASSFILE", self.inst.dir.join("no-such-pgpass"))
            .env("PGAPPNAME", "pool-testkit-psql")
            .env("LC_ALL", "C")
            .env_remove("PGOPTIONS")
            .env_remove("PGSERVICE")
            .stdin(Stdio::null());
        match password {
            Some(pw) => cmd.env("PGPASSWORD", pw),
            None => cmd.env_remove("PGPASSWORD"),
        };
        cmd
    }

    /// Runs `sql` with `psql` (with the server's password) and returns what
    /// it printed, trimmed (unaligned, tuples only: one row per line, `|`
    /// between columns).
    pub fn psql(&self, sql: &str) -> Result<String> {
        let mut cmd = self.psql_command(self.opts.password.as_deref());
        cmd.arg("-c").arg(sql);
        let out = run_bounded(&mut cmd, None, PSQL_TIMEOUT).map_err(KitError::io(
            &self.label(),
            format!("running {}", self.bins.psql.display()),
        ))?;
        if !out.success() {
            return Err(KitError::CommandFailed {
                server: self.label(),
                step: format!("psql -c {sql:?}"),
                status: out.status_text(),
                output: out.combined(),
            });
        }
        Ok(out.stdout.trim().to_string())
    }

    fn psql_count(&self, sql: &str) -> Result<usize> {
        let text = self.psql(sql)?;
        text.parse().map_err(|_| KitError::Protocol {
            server: self.label(),
            step: format!("psql -c {sql:?}"),
            detail: format!("expected a count, got {text:?}"),
        })
    }

    /// Terminates every client backend except the one asking, waiting (up
    /// to 5 s each) until they are gone; returns how many were terminated.
    pub fn terminate_backends(&self) -> Result<usize> {
        self.psql_count(
            "select count(*) filter (where t) from (select pg_terminate_backend(pid, 5000) as t \
             from pg_stat_activity where backend_type = 'client backend' \
             and pid <> pg_backend_pid()) s",
        )
    }

    /// How many client backends are connected, not counting the one asking.
    pub fn client_sessions(&self) -> Result<usize> {
        self.psql_count(
            "select count(*) from pg_stat_activity where backend_type = 'client backend' \
             and pid <> pg_backend_pid()",
        )
    }

    /// Tries one login as `postgres` over TCP and reports what the server
    /// said, without a password: [`LoginProbe::Ready`] (trust),
    /// [`LoginProbe::AuthRequested`] (password mode) or
    /// [`LoginProbe::Rejected`] with the SQLSTATE (e.g. 57P03 from a
    /// standby). Times out after `timeout` (e.g. on a frozen server).
    pub fn probe_login(&self, timeout: Duration) -> Result<LoginProbe> {
        let label = self.label();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port()));
        let stream = std::net::TcpStream::connect_timeout(&addr, timeout)
            .map_err(KitError::io(&label, "probe: connecting"))?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(KitError::io(&label, "probe: setting timeouts"))?;
        pgwire::probe(stream).map_err(KitError::io(&label, "probe: login"))
    }
}

impl Lifecycle for PgServer {
    const NAME: &'static str = "postgres";
    const KIND: &'static str = "pg";
    const START_TIMEOUT: Duration = Duration::from_secs(30);
    const READY_POLL: Duration = Duration::from_millis(20);
    const READY_STEP: &'static str = "waiting for the server to accept connections";
    const KILL9_STEP: &'static str = "kill9: waiting for the processes to die";
    const PORT_TAKEN: &'static [&'static str] = &[
        "Address already in use",
        "could not create any TCP/IP sockets",
    ];

    fn instance(&self) -> &Instance {
        &self.inst
    }

    fn instance_mut(&mut self) -> &mut Instance {
        &mut self.inst
    }

    /// The postmaster on the data directory and port, as the `postgres`
    /// user when we are root.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bins.postgres);
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-p")
            .arg(self.port().to_string())
            .env("LC_ALL", "C");
        if let Some(r) = self.run_as {
            r.apply(&mut cmd);
        }
        cmd
    }

    /// A login over the private Unix socket gets an answer that means the
    /// server is up (for a standby: that it is not accepting connections).
    fn probe_ready(&self) -> bool {
        let socket = self.inst.dir.join(format!(".s.PGSQL.{}", self.port()));
        match probe_unix(&socket) {
            Ok(LoginProbe::Ready | LoginProbe::AuthRequested) => true,
            Ok(LoginProbe::Rejected(e)) if e.code == "57P03" => {
                // "starting up" until recovery begins; a standby
                // without hot standby then says "not accepting".
                self.opts.standby_57p03 && e.message.contains("not accepting connections")
            }
            Ok(LoginProbe::Rejected(_)) => true,
            Err(_) => false,
        }
    }
}

fn probe_unix(socket: &Path) -> std::io::Result<LoginProbe> {
    let stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    pgwire::probe(stream)
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.inst.kill_on_drop("postgres processes");
        crate::shm::remove_postgres_segment(&self.data_dir);
        self.inst.remove_dir();
    }
}
