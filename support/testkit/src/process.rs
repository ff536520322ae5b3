//! Server processes: spawning, signals, `/proc` inspection and bounded
//! command runs.
//!
//! Every server is spawned as the leader of its own process group, so
//! signals aimed at the test process's group (a terminal's Ctrl-C, say) do
//! not reach it. A process group is not enough to find all of a server's
//! processes, though: PostgreSQL backends call `setsid()` and so each lead a
//! group of their own. The kit therefore finds a server's processes in
//! `/proc`: a process is ours only if its working directory lies inside the
//! server's private directory (the postmaster changes into its data
//! directory and every backend inherits that; Redis changes into its `dir`)
//! *and* its executable is a `postgres` or `redis` binary. Nothing else is
//! ever signalled.
//!
//! To signal every process of a running server without missing a backend
//! forked at the same moment, the leader is stopped first (a stopped
//! postmaster cannot fork), then the others are signalled, then the leader.
//!
//! A server never outlives the test process that started it, even one
//! killed with SIGKILL (no destructor runs): each server directory gets a
//! [`watchdog`], a small `sh` loop in its own process group that polls its
//! parent; when the test process is gone (the watchdog was reparented), it
//! shuts the server down by the same rule (working directory inside the
//! server's directory and a `postgres`/`redis` executable: SIGQUIT, which
//! is PostgreSQL's immediate shutdown, then SIGKILL) and removes the
//! directory. It exits by itself once the directory is gone (the server
//! was dropped normally).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// How often bounded waits poll.
pub(crate) const POLL: Duration = Duration::from_millis(10);

/// A server's leading process (our child) and the processes it forks.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Child,
    exit: Option<ExitStatus>,
    dir: PathBuf,
}

impl ServerProcess {
    /// Spawns `cmd` as the leader of a new process group. `dir` is the
    /// server's private directory: the server must keep its working
    /// directory in it.
    pub(crate) fn spawn(cmd: &mut Command, dir: &Path) -> std::io::Result<ServerProcess> {
        let child = cmd.process_group(0).spawn()?;
        Ok(ServerProcess {
            child,
            exit: None,
            dir: dir.to_path_buf(),
        })
    }

    /// The leader's pid (also its process group id).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the leader still runs (a zombie counts as dead).
    pub(crate) fn is_alive(&self) -> bool {
        self.exit.is_none() && pid_alive(self.pid())
    }

    /// Reaps the leader if it exited; returns its status.
    pub(crate) fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exit = Some(st);
            }
        }
        self.exit
    }

    /// The exit status, if the leader was reaped.
    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        self.exit
    }

    /// Signals the leader only (no-op once it was reaped: its pid may have
    /// been reused).
    pub(crate) fn signal_leader(&self, sig: Signal) -> nix::Result<()> {
        if self.exit.is_some() {
            return Ok(());
        }
        match signal::kill(Pid::from_raw(self.pid() as i32), sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Signals every process of the server (see the module docs for how
    /// they are found and why the leader is stopped first).
    pub(crate) fn signal_all(&self, sig: Signal) -> nix::Result<()> {
        let leader_alive = self.exit.is_none();
        if leader_alive && sig != Signal::SIGCONT {
            self.signal_leader(Signal::SIGSTOP)?;
            wait_stopped(self.pid(), Duration::from_secs(2));
        }
        let leader = self.pid();
        for pid in server_processes(&self.dir) {
            if pid != leader {
                let _ = signal::kill(Pid::from_raw(pid as i32), sig);
            }
        }
        if leader_alive {
            self.signal_leader(sig)?;
        }
        Ok(())
    }

    /// Waits until the leader exits, up to `timeout`.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_exit() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the leader is reaped and no other process of the server
    /// is left, up to `timeout`.
    pub(crate) fn wait_all_gone(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.try_exit().is_some() && server_processes(&self.dir).is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILLs every process of the server and waits (bounded) until all
    /// are gone. Returns whether they are.
    pub(crate) fn kill_all(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let _ = self.signal_all(Signal::SIGKILL);
        loop {
            if self.wait_all_gone(Duration::from_millis(200)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            // A process forked while we were signalling: try again.
            let _ = self.signal_all(Signal::SIGKILL);
        }
    }
}

/// The watchdog's script: `$1` the owner's pid, `$2` the server directory.
const WATCHDOG: &str = r#"
owner=$1; dir=$2
while [ -d "$dir" ]; do
    stat=$(cat /proc/$$/stat) || break
    rest=${stat##*) }
    set -- $rest
    [ "$2" = "$owner" ] || break
    sleep 0.2
done
[ -d "$dir" ] || exit 0
signal_server() {
    for p in /proc/[0-9]*; do
        cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
        case "$cwd" in "$dir"|"$dir"/*) ;; *) continue ;; esac
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        case "${exe##*/}" in postgres*|redis*) kill -"$1" "${p#/proc/}" 2>/dev/null ;; esac
    done
}
signal_server QUIT
sleep 1
signal_server KILL
sleep 0.2
rm -rf "$dir"
"#;

/// Starts the watchdog of the server directory `dir` (see the module
/// docs): the server in it and the directory itself go when this process
/// does, however it ends.
pub(crate) fn watchdog(dir: &Path) -> std::io::Result<Child> {
    let dir = std::fs::canonicalize(dir)?;
    Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("pool-testkit-watchdog")
        .arg(std::process::id().to_string())
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
}

/// Waits until `pid` is stopped (or gone), up to `timeout`.
fn wait_stopped(pid: u32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match proc_stat(pid) {
            Some(s) if !matches!(s.state, 'T' | 't' | 'Z' | 'X') => {
                std::thread::sleep(Duration::from_millis(1))
            }
            _ => return,
        }
    }
}

/// Live processes that belong to the server in `dir`: working directory
/// inside `dir` and a `postgres`/`redis` executable.
pub(crate) fn server_processes(dir: &Path) -> Vec<u32> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let in_dir =
                std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|c| c.starts_with(&dir));
            in_dir
                && std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
                    let name = exe
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    name.starts_with("postgres") || name.starts_with("redis")
                })
                && pid_alive(pid)
        })
        .collect()
}

/// SIGKILLs every process of the (ownerless) server in `dir`. Returns how
/// many were signalled.
pub(crate) fn kill_server_processes(dir: &Path) -> usize {
    let pids = server_processes(dir);
    for &pid in &pids {
        let _ = signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    pids.len()
}

/// Fields of `/proc/<pid>/stat` we care about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcStat {
    pub(crate) state: char,
    pub(crate) start_time: u64,
}

/// Reads `/proc/<pid>/stat`.
pub(crate) fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    // The command name may hold spaces and parentheses: cut after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); pgrp is field 5, starttime field 22.
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Whether `pid` is a live (not zombie) process.
pub(crate) fn pid_alive(pid: u32) -> bool {
    matches!(proc_stat(pid), Some(s) if s.state != 'Z' && s.state != 'X')
}

/// What a bounded command run produced.
#[derive(Debug)]
pub(crate) struct RunOutput {
    pub(crate) status: Option<ExitStatus>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl RunOutput {
    /// Whether the command exited with status 0 in time.
    pub(crate) fn success(&self) -> bool {
        matches!(self.status, Some(s) if s.success())
    }

    /// Status as text: `exit status: 2`, or `timed out`.
    pub(crate) fn status_text(&self) -> String {
        match self.status {
            Some(s) => s.to_string(),
            None => "timed out, killed".to_string(),
        }
    }

    /// stdout and stderr together, for error messages.
    pub(crate) fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
            .trim_end()
            .to_string()
    }
}

/// Runs `cmd` with stdin from `input` (or none), capturing output; kills it
/// if it runs longer than `timeout` (then `status` is `None`).
pub(crate) fn run_bounded(
    cmd: &mut Command,
    input: Option<&str>,
    timeout: Duration,
) -> std::io::Result<RunOutput> {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        use std::io::Write;
        // Small inputs fit in the pipe buffer; ignore EPIPE if it exits early.
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = reader_thread(child.stdout.take());
    let err = reader_thread(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(POLL);
    };
    Ok(RunOutput {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

fn reader_thread<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The last `lines` lines of a log file (empty if unreadable).
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let s = parse_stat(
            "42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10",
        )
        .unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.start_time, 12345);
    }

    #[test]
    fn own_process_is_alive() {
        assert!(pid_alive(std::process::id()));
    }

    #[test]
    fn bounded_run_times_out() {
        let out = run_bounded(
            Command::new("sleep").arg("5"),
            None,
            Duration::from_millis(100),
        )
        .unwrap();
        assert!(out.status.is_none());
        let out =
            run_bounded(&mut Command::new("cat"), Some("hi"), Duration::from_secs(5)).unwrap();
        assert!(out.success());
        assert_eq!(out.stdout, "hi");
    }
}
