//! The lifecycle every private server shares: starting on a free port,
//! waiting until it is ready, SIGKILL, starting again, the running checks
//! and the cleanup on drop.
//!
//! A server type implements [`Lifecycle`] with what is its own (its command
//! line, its readiness probe, how its log says the port was taken, its
//! timings); the functions here do the rest, the same way for PostgreSQL and
//! Redis. Graceful stops stay with each server: they use other signals and
//! wait for other things.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::error::{KitError, Result};
use crate::ports::{lease_free_port, PortLease};
use crate::process::{log_tail, ServerProcess};
use crate::workdir::{self, OwnerRecord};
use crate::HOST;

/// How long SIGKILL may take to clear a server's processes.
pub(crate) const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// How many ports the first start tries before giving up.
const PORT_ATTEMPTS: usize = 5;
/// Lines of log shown in errors.
pub(crate) const LOG_TAIL_LINES: usize = 30;

/// Why a start attempt failed.
enum StartFailure {
    /// The port was taken by someone else: try another one.
    PortTaken(String),
    /// Anything else.
    Fatal(KitError),
}

/// What every server keeps about itself: its private directory, its log,
/// its port and its running process.
pub(crate) struct Instance {
    /// The server's own directory (its processes' working directory).
    pub(crate) dir: PathBuf,
    /// The log every run appends its stdout and stderr to.
    pub(crate) log_path: PathBuf,
    /// The leased port; it stays the same across restarts.
    pub(crate) lease: Option<PortLease>,
    /// The leading process of the current run, if any.
    pub(crate) child: Option<ServerProcess>,
    /// The directory's watchdog (started with the first run): it stops the
    /// server and removes the directory if this process dies.
    pub(crate) watchdog: Option<std::process::Child>,
}

impl Instance {
    /// A server in `dir` that logs to `dir/log_name`, with no port and no
    /// process yet.
    pub(crate) fn new(dir: PathBuf, log_name: &str) -> Instance {
        Instance {
            log_path: dir.join(log_name),
            dir,
            lease: None,
            child: None,
            watchdog: None,
        }
    }

    /// The leased port (0 before the first lease).
    pub(crate) fn port(&self) -> u16 {
        self.lease.as_ref().map(PortLease::port).unwrap_or(0)
    }

    /// Whether the leading process runs (a frozen one counts as running).
    pub(crate) fn is_running(&self) -> bool {
        self.child.as_ref().is_some_and(ServerProcess::is_alive)
    }

    /// The leading process's pid, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child
            .as_ref()
            .filter(|c| c.is_alive())
            .map(ServerProcess::pid)
    }

    /// For `Drop`: SIGKILLs whatever still runs of the server and waits
    /// until it is gone, logging an error naming `what` if some survives.
    pub(crate) fn kill_on_drop(&mut self, what: &str) {
        if let Some(mut c) = self.child.take() {
            if !c.kill_all(KILL_TIMEOUT) {
                tracing::error!(dir = %self.dir.display(), "pool-testkit: {what} survived SIGKILL");
            }
        }
    }

    /// For `Drop`: removes the server's directory (a warning if that fails).
    pub(crate) fn remove_dir(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.dir.display(), error = %e, "pool-testkit: could not remove the server directory");
            }
        }
        // The server is gone: its watchdog has nothing left to guard (it
        // would exit by itself at its next poll; this also reaps it).
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// What one kind of server brings to the shared lifecycle.
pub(crate) trait Lifecycle {
    /// The kind as messages name it (`postgres`, `redis`).
    const NAME: &'static str;
    /// The kind written to the owner record (`pg`, `redis`).
    const KIND: &'static str;
    /// How long a start may take before it is an error.
    const START_TIMEOUT: Duration;
    /// How often readiness is polled during a start.
    const READY_POLL: Duration;
    /// What a start waits for, named in its timeout error.
    const READY_STEP: &'static str;
    /// What [`kill9`] waits for, named in its timeout error.
    const KILL9_STEP: &'static str;
    /// Texts in the log of an exited start that mean the port was taken.
    const PORT_TAKEN: &'static [&'static str];

    /// The directory, log, port and process of this server.
    fn instance(&self) -> &Instance;
    /// The same, to change.
    fn instance_mut(&mut self) -> &mut Instance;
    /// The command that runs the server in the foreground; its working
    /// directory and stdio are set by the caller.
    fn command(&self) -> Command;
    /// Whether the server answers as a ready one does.
    fn probe_ready(&self) -> bool;

    /// Called when a new port was leased, before the server is spawned on
    /// it (e.g. to write a config file that names the port).
    fn port_changed(&mut self) -> Result<()> {
        Ok(())
    }

    /// A name for messages: kind, address and directory.
    fn label(&self) -> String {
        let inst = self.instance();
        format!(
            "{} {HOST}:{} ({})",
            Self::NAME,
            inst.port(),
            inst.dir.display()
        )
    }
}

/// Starts the server on a freshly leased port, and on another one (up to
/// `PORT_ATTEMPTS` in all) when someone else took the port before the
/// server could bind it.
pub(crate) fn start_on_free_port<S: Lifecycle>(server: &mut S) -> Result<()> {
    let mut last_log = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let lease =
            lease_free_port().map_err(KitError::io(&server.label(), "finding a free port"))?;
        server.instance_mut().lease = Some(lease);
        server.port_changed()?;
        match spawn_and_wait(server) {
            Ok(()) => return Ok(()),
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

/// Starts a stopped (or crashed) server again on the same port and waits
/// until it is ready.
pub(crate) fn start_again<S: Lifecycle>(server: &mut S) -> Result<()> {
    if server.instance().is_running() {
        return Err(KitError::WrongState {
            server: server.label(),
            step: "start_again".into(),
            state: "running",
        });
    }
    // Reap a server that died on its own, so nothing is left over.
    if let Some(mut c) = server.instance_mut().child.take() {
        c.kill_all(KILL_TIMEOUT);
    }
    match spawn_and_wait(server) {
        Ok(()) => Ok(()),
        Err(StartFailure::Fatal(e)) => Err(e),
        Err(StartFailure::PortTaken(log)) => Err(KitError::PortUnavailable {
            server: server.label(),
            attempts: 1,
            log_tail: log,
        }),
    }
}

/// Spawns the server on its current port and waits for readiness; a failed
/// attempt leaves nothing running.
fn spawn_and_wait<S: Lifecycle>(server: &mut S) -> std::result::Result<(), StartFailure> {
    let who = server.label();
    let dir = server.instance().dir.clone();
    let fatal = StartFailure::Fatal;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&server.instance().log_path)
        .map_err(|e| fatal(KitError::io(&who, "opening the log file")(e)))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let log2 = log
        .try_clone()
        .map_err(|e| fatal(KitError::io(&who, "opening the log file")(e)))?;
    let mut cmd = server.command();
    cmd.current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    let child = ServerProcess::spawn(&mut cmd, &dir).map_err(|e| {
        let program = Path::new(cmd.get_program()).display();
        fatal(KitError::io(&who, format!("spawning {program}"))(e))
    })?;
    let pgid = child.pid();
    server.instance_mut().child = Some(child);
    if server.instance().watchdog.is_none() {
        let watchdog = crate::process::watchdog(&dir)
            .map_err(|e| fatal(KitError::io(&who, "starting the watchdog")(e)))?;
        server.instance_mut().watchdog = Some(watchdog);
    }
    workdir::write_record(&dir, &OwnerRecord::ours(S::KIND, pgid))
        .map_err(|e| fatal(KitError::io(&who, "writing the owner record")(e)))?;
    let res = wait_ready(server, log_start);
    if res.is_err() {
        if let Some(mut c) = server.instance_mut().child.take() {
            c.kill_all(KILL_TIMEOUT);
        }
    }
    res
}

/// Polls [`Lifecycle::probe_ready`] until it says yes, the server exits
/// (telling a taken port from other failures by the log written since
/// `log_start`) or [`Lifecycle::START_TIMEOUT`] runs out.
fn wait_ready<S: Lifecycle>(
    server: &mut S,
    log_start: u64,
) -> std::result::Result<(), StartFailure> {
    let started = Instant::now();
    loop {
        if let Some(status) = server
            .instance_mut()
            .child
            .as_mut()
            .and_then(ServerProcess::try_exit)
        {
            let new_log = log_since(&server.instance().log_path, log_start);
            if S::PORT_TAKEN.iter().any(|text| new_log.contains(text)) {
                return Err(StartFailure::PortTaken(new_log));
            }
            return Err(StartFailure::Fatal(KitError::ServerExited {
                server: server.label(),
                step: "startup".into(),
                status: status.to_string(),
                log_tail: log_tail(&server.instance().log_path, LOG_TAIL_LINES),
            }));
        }
        if server.probe_ready() {
            return Ok(());
        }
        if started.elapsed() > S::START_TIMEOUT {
            return Err(StartFailure::Fatal(KitError::Timeout {
                server: server.label(),
                step: S::READY_STEP.into(),
                waited: S::START_TIMEOUT,
                log_tail: log_tail(&server.instance().log_path, LOG_TAIL_LINES),
            }));
        }
        std::thread::sleep(S::READY_POLL);
    }
}

/// What was appended to the log at `path` after `offset` bytes.
fn log_since(path: &Path, offset: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = (offset as usize).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// The leading process if it has not exited, else [`KitError::WrongState`]
/// for `step`.
pub(crate) fn running_child<'a, S: Lifecycle>(
    server: &'a mut S,
    step: &str,
) -> Result<&'a mut ServerProcess> {
    let label = server.label();
    match server.instance_mut().child.as_mut() {
        Some(c) if c.exit_status().is_none() => Ok(c),
        _ => Err(not_running(label, step)),
    }
}

fn not_running(server: String, step: &str) -> KitError {
    KitError::WrongState {
        server,
        step: step.into(),
        state: "not running",
    }
}

/// Sends `sig` to every process of the running server (see
/// [`ServerProcess::signal_all`]).
pub(crate) fn signal_all<S: Lifecycle>(server: &S, sig: Signal, step: &str) -> Result<()> {
    match server.instance().child.as_ref() {
        Some(c) if c.exit_status().is_none() => {
            c.signal_all(sig)
                .map_err(KitError::signal(&server.label(), step, sig))
        }
        _ => Err(not_running(server.label(), step)),
    }
}

/// SIGKILLs every process of the running server at once and waits until
/// all are gone.
pub(crate) fn kill9<S: Lifecycle>(server: &mut S) -> Result<()> {
    let label = server.label();
    let child = running_child(server, "kill9")?;
    if !child.kill_all(KILL_TIMEOUT) {
        return Err(KitError::Timeout {
            server: label,
            step: S::KILL9_STEP.into(),
            waited: KILL_TIMEOUT,
            log_tail: String::new(),
        });
    }
    server.instance_mut().child = None;
    Ok(())
}
