//! The demo's private servers never outlive it: however the demo ends
//! (Ctrl-C, `kill`, `kill -9`), its PostgreSQL and Redis processes and
//! their directories are gone within seconds (the test kit's watchdog).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Server directories (under the kit's base directory) owned by `pid`.
fn servers_of(pid: u32) -> Vec<PathBuf> {
    let base = pool_testkit::base_dir().unwrap();
    let mut dirs = Vec::new();
    for e in std::fs::read_dir(base).unwrap().flatten() {
        let owner = std::fs::read_to_string(e.path().join("owner")).unwrap_or_default();
        if owner.lines().any(|l| l == format!("owner_pid={pid}")) {
            dirs.push(e.path());
        }
    }
    dirs
}

/// Live processes whose working directory is inside `dir`.
fn processes_in(dir: &Path) -> Vec<u32> {
    // As text: the working directory of a process whose directory was
    // removed reads `... (deleted)`.
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd"))
                .is_ok_and(|c| c.to_string_lossy().starts_with(&dir))
                && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| !s[s.rfind(')').unwrap() + 1..].trim_start().starts_with('Z'))
        })
        .collect()
}

fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// Runs the demo with its own servers, waits until both run, sends `sig`,
/// and checks that nothing of them is left.
fn nothing_left_after(sig: Signal) {
    let mut demo = Command::new(env!("CARGO_BIN_EXE_demo"))
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env("DEMO_SECONDS", "120")
        .env("DEMO_TASKS", "4")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = demo.id();
    let started = eventually(Duration::from_secs(60), || {
        let dirs = servers_of(pid);
        dirs.len() >= 2 && dirs.iter().all(|d| !processes_in(d).is_empty())
    });
    let dirs = servers_of(pid);
    if !started {
        let _ = demo.kill();
        panic!("the demo did not start its two servers within 60 s: {dirs:?}");
    }
    kill(Pid::from_raw(pid as i32), sig).unwrap();
    demo.wait().unwrap();
    let gone = eventually(Duration::from_secs(15), || {
        dirs.iter()
            .all(|d| !d.exists() && processes_in(d).is_empty())
    });
    let left: Vec<_> = dirs
        .iter()
        .map(|d| (d, d.exists(), processes_in(d)))
        .collect();
    assert!(
        gone,
        "after {sig:?} to the demo, left behind (dir, exists, processes): {left:?}"
    );
}

#[test]
fn sigint_leaves_no_server_and_no_directory() {
    nothing_left_after(Signal::SIGINT);
}

#[test]
fn sigterm_leaves_no_server_and_no_directory() {
    nothing_left_after(Signal::SIGTERM);
}

#[test]
fn sigkill_leaves_no_server_and_no_directory() {
    nothing_left_after(Signal::SIGKILL);
}
