//! PostgreSQL data directories: the cached `initdb` template, copying it,
//! and the settings each test server gets.
//!
//! `initdb` takes a second or more, so it runs once per (major version,
//! authentication mode) into `temp_dir()/pool-testkit/template-pg<N>-<auth>`.
//! The template is built under a temporary name and renamed into place, so a
//! half-built template is never used; if another process finished first, its
//! template is used and ours is thrown away. Each server gets a `cp -a` copy.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use crate::bins::PgBins;
use crate::error::{KitError, Result};
use crate::process::run_bounded;
use crate::workdir::base_dir;

/// How `initdb` sets up authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthMode {
    /// Trust everywhere.
    Trust,
    /// SCRAM over TCP, trust over the server's private Unix socket.
    Scram,
}

impl AuthMode {
    fn name(self) -> &'static str {
        match self {
            AuthMode::Trust => "trust",
            AuthMode::Scram => "scram",
        }
    }
}

/// The unprivileged user PostgreSQL runs as when we are root.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunAs {
    uid: u32,
    gid: u32,
}

impl RunAs {
    /// `Some(postgres user)` when running as root (PostgreSQL refuses to
    /// run as root), `None` otherwise (run as ourselves).
    pub(crate) fn for_postgres() -> Result<Option<RunAs>> {
        if !nix::unistd::Uid::effective().is_root() {
            return Ok(None);
        }
        let user = nix::unistd::User::from_name("postgres")
            .ok()
            .flatten()
            .ok_or_else(|| KitError::MissingUser("postgres".into()))?;
        Ok(Some(RunAs {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }))
    }

    /// Makes `cmd` run as this user.
    pub(crate) fn apply(self, cmd: &mut Command) {
        cmd.uid(self.uid).gid(self.gid);
    }

    /// Gives `path` to this user.
    pub(crate) fn chown(self, path: &Path) -> std::io::Result<()> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
    }
}

/// Returns the template data directory for `auth`, building it if needed.
pub(crate) fn template(bins: &PgBins, auth: AuthMode, run_as: Option<RunAs>) -> Result<PathBuf> {
    static BUILD: Mutex<()> = Mutex::new(());
    let base = base_dir()?;
    let path = base.join(format!("template-pg{}-{}", bins.major, auth.name()));
    if path.join("PG_VERSION").is_file() {
        return Ok(path);
    }
    // One build per process at a time; other processes race via rename.
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if path.join("PG_VERSION").is_file() {
        return Ok(path);
    }
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let build = base.join(format!(
        "template-pg{}-{}.building-{}-{nonce}",
        bins.major,
        auth.name(),
        std::process::id()
    ));
    let result = build_template(bins, auth, run_as, &build, &path);
    let _ = std::fs::remove_dir_all(&build);
    result?;
    Ok(path)
}

fn build_template(
    bins: &PgBins,
    auth: AuthMode,
    run_as: Option<RunAs>,
    build: &Path,
    dest: &Path,
) -> Result<()> {
    let who = "postgres template";
    let data = build.join("data");
    std::fs::create_dir(build)
        .map_err(KitError::io(who, format!("creating {}", build.display())))?;
    std::fs::set_permissions(build, std::fs::Permissions::from_mode(0o700))
        .map_err(KitError::io(who, "setting permissions"))?;
    if let Some(r) = run_as {
        r.chown(build)
            .map_err(KitError::io(who, format!("chown {}", build.display())))?;
    }
    let mut cmd = Command::new(&bins.initdb);
    cmd.arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
        .current_dir(build)
        .env("LC_ALL", "C");
    match auth {
        AuthMode::Trust => {
            cmd.args(["--auth-local=trust", "--auth-host=trust"]);
        }
        AuthMode::Scram => {
            // initdb insists on a password for password auth. Each server
            // sets its real password before its first start.
            let pwfile = build.join("pwfile");
            std::fs::write(&pwfile, format!("template-{}\n", std::process::id()))
                .map_err(KitError::io(who, "writing the password file"))?;
            if let Some(r) = run_as {
                r.chown(&pwfile)
                    .map_err(KitError::io(who, "chown the password file"))?;
            }
            cmd.args(["--auth-local=trust", "--auth-host=scram-sha-256"])
                .arg(format!("--pwfile={}", pwfile.display()));
        }
    }
    if let Some(r) = run_as {
        r.apply(&mut cmd);
    }
    let out = run_bounded(&mut cmd, None, Duration::from_secs(120)).map_err(KitError::io(
        who,
        format!("running {}", bins.initdb.display()),
    ))?;
    if !out.success() {
        return Err(KitError::CommandFailed {
            server: who.into(),
            step: format!("initdb ({})", bins.initdb.display()),
            status: out.status_text(),
            output: out.combined(),
        });
    }
    match std::fs::rename(&data, dest) {
        Ok(()) => Ok(()),
        // Someone else finished first: use theirs.
        Err(_) if dest.join("PG_VERSION").is_file() => Ok(()),
        Err(e) => Err(KitError::io(
            who,
            format!("moving the template to {}", dest.display()),
        )(e)),
    }
}

/// Copies the template to `dest` (which must not exist), keeping owners and
/// permissions.
pub(crate) fn copy_template(template: &Path, dest: &Path, who: &str) -> Result<()> {
    let out = run_bounded(
        Command::new("cp").arg("-a").arg(template).arg(dest),
        None,
        Duration::from_secs(60),
    )
    .map_err(KitError::io(who, "running cp -a"))?;
    if !out.success() {
        return Err(KitError::CommandFailed {
            server: who.into(),
            step: format!("copying the template {}", template.display()),
            status: out.status_text(),
            output: out.combined(),
        });
    }
    Ok(())
}

/// Quotes a configuration value for `postgresql.conf`.
fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// The settings every test server gets, then the caller's extras (later
/// lines win).
pub(crate) fn settings(
    socket_dir: &Path,
    max_connections: u32,
    standby: bool,
    extra: &[(String, String)],
) -> String {
    let mut s = String::from("\n# --- pool-testkit ---\n");
    let sock = socket_dir.display().to_string();
    let mut base: Vec<(&str, String)> = vec![
        ("listen_addresses", "127.0.0.1".into()),
        ("unix_socket_directories", sock),
        ("max_connections", max_connections.to_string()),
        // All test logins are superusers; reserved slots would only make
        // small max_connections values impossible.
        ("superuser_reserved_connections", "0".into()),
        ("shared_buffers", "16MB".into()),
        ("fsync", "off".into()),
        ("synchronous_commit", "off".into()),
        ("full_page_writes", "off".into()),
        // Keep dynamic shared memory inside the data directory, so deleting
        // the directory after a SIGKILL leaves nothing in /dev/shm.
        ("dynamic_shared_memory_type", "mmap".into()),
        ("huge_pages", "off".into()),
        ("autovacuum", "off".into()),
        ("jit", "off".into()),
        ("logging_collector", "off".into()),
        ("log_line_prefix", "%m [%p] ".into()),
        ("lc_messages", "C".into()),
    ];
    if standby {
        base.push(("hot_standby", "off".into()));
    }
    for (k, v) in base {
        s.push_str(&format!("{k} = {}\n", quote(&v)));
    }
    for (k, v) in extra {
        s.push_str(&format!("{k} = {}\n", quote(v)));
    }
    s
}

/// Sets the `postgres` role's password by running the server once in
/// single-user mode (works even for a server that will refuse all logins).
pub(crate) fn set_password(
    bins: &PgBins,
    data: &Path,
    dir: &Path,
    run_as: Option<RunAs>,
    password: &str,
    who: &str,
) -> Result<()> {
    if password.contains(['\n', '\r', '\0']) {
        return Err(KitError::InvalidOption(
            "the PostgreSQL password must not contain line breaks or NUL".into(),
        ));
    }
    let mut cmd = Command::new(&bins.postgres);
    cmd.arg("--single")
        .arg("-D")
        .arg(data)
        .arg("postgres")
        .current_dir(dir);
    if let Some(r) = run_as {
        r.apply(&mut cmd);
    }
    let sql = format!("ALTER ROLE postgres PASSWORD {};\n", quote(password));
    let out = run_bounded(&mut cmd, Some(&sql), Duration::from_secs(60)).map_err(KitError::io(
        who,
        "running postgres --single to set the password",
    ))?;
    if !out.success() || out.combined().contains("ERROR") {
        return Err(KitError::CommandFailed {
            server: who.into(),
            step: "setting the password (postgres --single)".into(),
            status: out.status_text(),
            output: out.combined(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_values() {
        assert_eq!(quote("it's"), "'it''s'");
        let s = settings(
            Path::new("/tmp/x"),
            7,
            true,
            &[("work_mem".into(), "8MB".into())],
        );
        assert!(s.contains("max_connections = '7'"));
        assert!(s.contains("hot_standby = 'off'"));
        assert!(s.ends_with("work_mem = '8MB'\n"));
    }
}
