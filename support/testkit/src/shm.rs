//! Removing the System V shared memory segment of a killed PostgreSQL.
//!
//! PostgreSQL keeps a small System V segment as an interlock. A clean
//! shutdown removes it and a restart on the same data directory reuses or
//! removes it, but a server that is SIGKILLed and whose directory is then
//! deleted would leak it, and leaked segments add up over many test runs.
//! We remove a segment only if `postmaster.pid` names it, the kernel says our
//! postmaster created it, and nothing is attached to it any more.

use std::path::Path;
use std::process::Command;

/// Removes the segment recorded in `<data_dir>/postmaster.pid` if it was
/// created by the postmaster that wrote that file and has no attachments.
/// Call only once every process of the server is gone. Best effort.
pub(crate) fn remove_postgres_segment(data_dir: &Path) {
    let Ok(lock) = std::fs::read_to_string(data_dir.join("postmaster.pid")) else {
        return;
    };
    let Some(postmaster_pid) = lock
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<u32>().ok())
    else {
        return;
    };
    let Some(shmid) = lock
        .lines()
        .nth(6)
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return;
    };
    let Ok(table) = std::fs::read_to_string("/proc/sysvipc/shm") else {
        return;
    };
    let ours = table.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // key shmid perms size cpid lpid nattch ...
        f.len() > 6
            && f[1].parse::<u64>().ok() == Some(shmid)
            && f[4].parse::<u32>().ok() == Some(postmaster_pid)
            && f[6] == "0"
    });
    if ours {
        let _ = Command::new("ipcrm")
            .arg("-m")
            .arg(shmid.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
