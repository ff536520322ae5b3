//! Running the built `wait-for-db` binary with a time bound.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// No test run may take longer than this; past it the child is killed and
/// the test fails instead of hanging.
pub const HARD_LIMIT: Duration = Duration::from_secs(60);

/// The binary, with a clean environment for the variables it reads.
pub fn wait_for_db() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wait-for-db"));
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "DATABASE_URL_FILE",
        "REDIS_URL_FILE",
        "WAIT_FOR_DB_LOG",
        "DB_POOL_SIZE",
        "DB_MAX_OVERFLOW",
        "DB_SSLMODE",
        "DB_SSLROOTCERT",
        "DB_SSLCERT",
        "DB_SSLKEY",
        "REDIS_TLS_CA_FILE",
        "REDIS_TLS_CERT_FILE",
        "REDIS_TLS_KEY_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// What a finished run left.
#[derive(Debug)]
pub struct Out {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
    /// Its pid.
    pub pid: u32,
}

impl Out {
    /// Asserts the exit code, showing the output when it differs.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts that stderr contains `needle`.
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    /// Asserts that neither stream contains `secret`.
    pub fn never_shows(&self, secret: &str) -> &Self {
        assert!(
            !self.stderr.contains(secret) && !self.stdout.contains(secret),
            "{secret:?} leaked:\n{}\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// stdout parsed as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// A running binary whose stderr lines can be awaited.
pub struct Running {
    child: Child,
    started: Instant,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stdout: thread::JoinHandle<String>,
}

impl Running {
    /// Spawns `cmd` with piped output.
    pub fn spawn(mut cmd: Command) -> Running {
        let started = Instant::now();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wait-for-db");
        let stderr = child.stderr.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdout = thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        Running {
            child,
            started,
            lines,
            seen: Vec::new(),
            stdout,
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a stderr line contains `needle`; panics after `limit`.
    pub fn wait_for_line(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no stderr line with {needle:?} within {limit:?}; got:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid()).unwrap());
        nix::sys::signal::kill(pid, signal).expect("signal the child");
    }

    /// Waits for the exit (at most [`HARD_LIMIT`] from the start).
    pub fn finish(mut self) -> Out {
        let pid = self.pid();
        let status = wait_bounded(&mut self.child, self.started + HARD_LIMIT);
        let elapsed = self.started.elapsed();
        // The stderr thread ends at EOF; collect what is left.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        let stdout = self.stdout.join().unwrap_or_default();
        Out {
            code: status.code(),
            stdout,
            stderr: self.seen.join("\n"),
            elapsed,
            pid,
        }
    }
}

fn wait_bounded(child: &mut Child, deadline: Instant) -> ExitStatus {
    loop {
        if let Some(status) = child.try_wait().expect("wait for wait-for-db") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wait-for-db ran longer than {HARD_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `wait-for-db ARGS` to the end.
pub fn run(args: &[&str]) -> Out {
    let mut cmd = wait_for_db();
    cmd.args(args);
    Running::spawn(cmd).finish()
}

/// A loopback port that accepts connections (the kernel completes the
/// handshake from the backlog): a `tcp://` target that is ready at once.
pub fn listening() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://127.0.0.1:{}", l.local_addr().unwrap().port());
    (l, url)
}

/// A loopback port that refuses every connection.
pub fn refusing() -> (pool_testkit::ClosedPort, String) {
    let p = pool_testkit::ClosedPort::bind().unwrap();
    let url = format!("tcp://127.0.0.1:{}", p.port());
    (p, url)
}
