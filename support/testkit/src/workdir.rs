//! Server directories under `temp_dir()/pool-testkit/`, their owner records,
//! and the sweep of servers left behind by crashed test runs.
//!
//! Each server directory holds a file `owner` that records the pid and
//! start time of the test process that owns it and the pid of the server.
//! Before every start, directories whose owner is gone are claimed (renamed,
//! so that two sweepers never work on the same one), the server processes in
//! them are killed — only processes whose working directory lies inside the
//! directory and whose executable is a `postgres` or `redis` binary — and the
//! directory is removed.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{KitError, Result};
use crate::process;

const OWNER_FILE: &str = "owner";

/// `temp_dir()/pool-testkit`, created if needed.
pub fn base_dir() -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join("pool-testkit");
    std::fs::create_dir_all(&dir).map_err(KitError::io(
        "testkit",
        format!("creating {}", dir.display()),
    ))?;
    // Servers running as the `postgres` user must be able to traverse it.
    if let Ok(meta) = std::fs::metadata(&dir) {
        if meta.permissions().mode() & 0o005 != 0o005 {
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
        }
    }
    Ok(dir)
}

/// What the `owner` file of a server directory says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnerRecord {
    pub(crate) kind: String,
    pub(crate) owner_pid: u32,
    pub(crate) owner_start: u64,
    /// Pid of the server process (leader); 0 while not started.
    pub(crate) server_pid: u32,
}

impl OwnerRecord {
    /// A record for a server of this process.
    pub(crate) fn ours(kind: &str, server_pid: u32) -> OwnerRecord {
        let pid = std::process::id();
        OwnerRecord {
            kind: kind.to_string(),
            owner_pid: pid,
            owner_start: process::proc_stat(pid).map(|s| s.start_time).unwrap_or(0),
            server_pid,
        }
    }

    fn render(&self) -> String {
        format!(
            "kind={}\nowner_pid={}\nowner_start={}\nserver_pid={}\n",
            self.kind, self.owner_pid, self.owner_start, self.server_pid
        )
    }

    fn parse(text: &str) -> Option<OwnerRecord> {
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::trim)
        };
        Some(OwnerRecord {
            kind: get("kind")?.to_string(),
            owner_pid: get("owner_pid")?.parse().ok()?,
            owner_start: get("owner_start")?.parse().ok()?,
            server_pid: get("server_pid")?.parse().ok()?,
        })
    }

    /// Whether the owning process still runs (same pid and start time).
    fn owner_alive(&self) -> bool {
        match process::proc_stat(self.owner_pid) {
            Some(s) => s.start_time == self.owner_start && s.state != 'Z' && s.state != 'X',
            None => false,
        }
    }
}

/// Writes the owner record atomically (write then rename).
pub(crate) fn write_record(dir: &Path, rec: &OwnerRecord) -> std::io::Result<()> {
    let tmp = dir.join(format!("{OWNER_FILE}.tmp"));
    std::fs::write(&tmp, rec.render())?;
    std::fs::rename(&tmp, dir.join(OWNER_FILE))
}

/// Creates a fresh server directory `<base>/<kind>-XXXXXX` with an owner
/// record (server not started yet).
pub(crate) fn new_server_dir(kind: &str) -> Result<PathBuf> {
    let base = base_dir()?;
    let dir = tempfile::Builder::new()
        .prefix(&format!("{kind}-"))
        .tempdir_in(&base)
        .map_err(KitError::io(
            "testkit",
            format!("creating a {kind} directory in {}", base.display()),
        ))?
        .keep();
    write_record(&dir, &OwnerRecord::ours(kind, 0)).map_err(KitError::io(
        "testkit",
        format!("writing the owner record in {}", dir.display()),
    ))?;
    Ok(dir)
}

/// Removes stale server directories (and their processes) of dead owners.
/// Best effort: problems are logged, never returned.
pub fn sweep_stale() {
    let Ok(base) = base_dir() else { return };
    let Ok(entries) = std::fs::read_dir(&base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let path = entry.path();
        if name.starts_with("pg-") || name.starts_with("redis-") || name.starts_with("certs-") {
            sweep_server_dir(&base, &name, &path);
        } else if let Some(pid) = building_owner(&name) {
            // An unfinished template build whose builder died.
            if !process::pid_alive(pid) && older_than(&path, Duration::from_secs(5)) {
                let _ = std::fs::remove_dir_all(&path);
            }
        } else if name.starts_with("dead-") && older_than(&path, Duration::from_secs(60)) {
            // A claimed directory whose sweeper died half-way.
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// `template-...building-<pid>-...` -> pid.
fn building_owner(name: &str) -> Option<u32> {
    let rest = name.split(".building-").nth(1)?;
    rest.split('-').next()?.parse().ok()
}

fn older_than(path: &Path, age: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(|t| SystemTime::now().duration_since(t).unwrap_or_default() > age)
        .unwrap_or(false)
}

fn sweep_server_dir(base: &Path, name: &str, path: &Path) {
    let rec = std::fs::read_to_string(path.join(OWNER_FILE))
        .ok()
        .and_then(|t| OwnerRecord::parse(&t));
    match &rec {
        Some(r) if r.owner_alive() => return,
        // No record yet: maybe being created right now; leave young ones be.
        None if !older_than(path, Duration::from_secs(60)) => return,
        _ => {}
    }
    // Claim it: only one sweeper wins the rename.
    let claimed = base.join(format!("dead-{name}-{}", std::process::id()));
    if std::fs::rename(path, &claimed).is_err() {
        return;
    }
    let killed = kill_until_gone(&claimed);
    if killed > 0 {
        tracing::warn!(
            dir = %path.display(),
            killed,
            "pool-testkit: killed a server left behind by a dead test process ({:?})",
            rec
        );
    }
    if name.starts_with("pg-") {
        crate::shm::remove_postgres_segment(&claimed.join("data"));
    }
    let _ = std::fs::remove_dir_all(&claimed);
}

/// Kills the server processes in `dir` until none is left (bounded).
fn kill_until_gone(dir: &Path) -> usize {
    let mut total = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        let n = process::kill_server_processes(dir);
        if n == 0 {
            break;
        }
        total += n;
        std::thread::sleep(process::POLL);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let r = OwnerRecord::ours("pg", 1234);
        assert_eq!(OwnerRecord::parse(&r.render()), Some(r.clone()));
        assert!(r.owner_alive());
        let dead = OwnerRecord {
            owner_start: r.owner_start + 1,
            ..r
        };
        assert!(!dead.owner_alive());
    }

    #[test]
    fn building_names() {
        assert_eq!(
            building_owner("template-pg15-trust.building-77-abc"),
            Some(77)
        );
        assert_eq!(building_owner("pg-abc"), None);
    }
}
