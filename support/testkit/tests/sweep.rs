//! The sweep of servers left behind by dead test processes.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{alive, wait_timeout};
use pool_testkit::{base_dir, bins, sweep_stale, RedisServer};

/// A pid that is certainly dead: a child we already reaped.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    c.wait().unwrap();
    c.id()
}

#[test]
fn sweeps_servers_of_dead_owners_only() {
    // A live server of ours must survive the sweep.
    let live = RedisServer::start().unwrap();

    // Fake a crashed test run: a server directory whose owner is dead, with
    // a redis-server (no TCP port) running in it.
    let dir = tempfile::Builder::new()
        .prefix("redis-")
        .tempdir_in(base_dir().unwrap())
        .unwrap()
        .keep();
    let mut orphan = Command::new(bins::redis_server().unwrap())
        .args(["--port", "0", "--save", "", "--appendonly", "no", "--dir"])
        .arg(&dir)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    assert!(common::eventually(Duration::from_secs(5), || {
        common::processes_in(&dir) == vec![orphan.id()]
    }));
    std::fs::write(
        dir.join("owner"),
        format!(
            "kind=redis\nowner_pid={}\nowner_start=1\nserver_pid={}\n",
            dead_pid(),
            orphan.id()
        ),
    )
    .unwrap();

    // An unrelated process that merely has its cwd in another stale
    // directory is not a server: it must not be killed.
    let dir2 = tempfile::Builder::new()
        .prefix("redis-")
        .tempdir_in(base_dir().unwrap())
        .unwrap()
        .keep();
    std::fs::write(
        dir2.join("owner"),
        format!(
            "kind=redis\nowner_pid={}\nowner_start=1\nserver_pid=0\n",
            dead_pid()
        ),
    )
    .unwrap();
    let mut bystander = Command::new("sleep")
        .arg("30")
        .current_dir(&dir2)
        .spawn()
        .unwrap();

    sweep_stale();

    assert!(
        wait_timeout(&mut orphan, Duration::from_secs(5)).is_some(),
        "orphan survived"
    );
    assert!(!dir.exists());
    assert!(!dir2.exists());
    assert!(alive(bystander.id()), "a non-server process was killed");
    bystander.kill().unwrap();
    bystander.wait().unwrap();

    assert!(live.is_running());
    assert!(live.dir().exists());
    assert_eq!(live.cmd(&["PING"]).unwrap(), "PONG");
}

/// Set in the child process of [`servers_of_a_killed_test_process_are_swept`].
const CHILD_ENV: &str = "POOL_TESTKIT_CRASH_CHILD";

/// In the child: start a server, report it, and wait to be SIGKILLed.
/// Does nothing in a normal run.
#[test]
fn crash_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let pg = pool_testkit::PgServer::start().unwrap();
    println!("SERVER {} {}", pg.pid().unwrap(), pg.dir().display());
    std::thread::sleep(Duration::from_secs(60));
    unreachable!("the parent kills us");
}

fn segments_created_by(pid: u32) -> usize {
    std::fs::read_to_string("/proc/sysvipc/shm")
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().nth(4) == Some(&pid.to_string()))
        .count()
}

#[test]
fn servers_of_a_killed_test_process_are_swept() {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap_or_default();
            // libtest prints "test crash_child ... " on the same line.
            if let Some((_, rest)) = line.split_once("SERVER ") {
                let _ = tx.send(rest.to_string());
                return;
            }
        }
    });
    let report = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("child never started its server");
    let (pid, dir) = report.split_once(' ').unwrap();
    let pid: u32 = pid.parse().unwrap();
    let dir = std::path::PathBuf::from(dir);

    // The test process dies without running any destructor.
    child.kill().unwrap();
    child.wait().unwrap();
    let orphans = common::processes_in(&dir);
    assert!(
        orphans.contains(&pid),
        "the server should outlive its owner: {orphans:?}"
    );
    assert_eq!(segments_created_by(pid), 1);

    sweep_stale();

    // Another test process may have swept it first: only the end state counts.
    assert!(common::eventually(Duration::from_secs(5), || orphans
        .iter()
        .all(|&p| !alive(p))));
    assert!(!dir.exists());
    assert_eq!(segments_created_by(pid), 0, "the SysV segment leaked");
}
