//! Finding the server binaries.
//!
//! PostgreSQL binaries are looked up on `PATH` first and then in the highest
//! `/usr/lib/postgresql/<version>/bin` (Debian puts them only there). Redis is
//! looked up on `PATH`, then in `/usr/bin` and `/usr/local/bin`. A missing
//! binary is an error that names the install command: tests must fail loudly
//! on a machine without the servers, never skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::error::{KitError, Result};

/// The command that installs the PostgreSQL server binaries.
pub const POSTGRES_INSTALL: &str = "apt-get install -y postgresql";
/// The command that installs the Redis server binary.
pub const REDIS_INSTALL: &str = "apt-get install -y redis-server";

/// The PostgreSQL programs the kit uses, all from one installation.
#[derive(Debug, Clone)]
pub struct PgBins {
    /// The `postgres` server binary.
    pub postgres: PathBuf,
    /// `initdb`, from the same directory as `postgres` when possible.
    pub initdb: PathBuf,
    /// `psql` (any version works as a client).
    pub psql: PathBuf,
    /// Major version of the server, e.g. `15`.
    pub major: u32,
}

/// Finds the PostgreSQL binaries (cached after the first successful call).
pub fn pg_bins() -> Result<PgBins> {
    static CACHE: OnceLock<PgBins> = OnceLock::new();
    if let Some(b) = CACHE.get() {
        return Ok(b.clone());
    }
    let found = find_pg_bins(&path_dirs(), &pg_lib_dirs())?;
    Ok(CACHE.get_or_init(|| found).clone())
}

/// Finds `redis-server`.
pub fn redis_server() -> Result<PathBuf> {
    let extra = [PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")];
    find_redis_server(&path_dirs(), &extra)
}

fn find_redis_server(path: &[PathBuf], extra: &[PathBuf]) -> Result<PathBuf> {
    find_in(path, "redis-server")
        .or_else(|| find_in(extra, "redis-server"))
        .ok_or_else(|| KitError::MissingBinary {
            binary: "redis-server".into(),
            searched: "PATH, /usr/bin, /usr/local/bin".into(),
            install: REDIS_INSTALL,
        })
}

fn find_pg_bins(path: &[PathBuf], lib: &[PathBuf]) -> Result<PgBins> {
    let searched = "PATH and /usr/lib/postgresql/*/bin";
    let missing = |name: &str| KitError::MissingBinary {
        binary: name.to_string(),
        searched: searched.to_string(),
        install: POSTGRES_INSTALL,
    };
    let postgres = find_in(path, "postgres")
        .or_else(|| find_in(lib, "postgres"))
        .ok_or_else(|| missing("postgres"))?;
    // Prefer the initdb that sits next to the real server binary, so the
    // data directory it makes matches the server's version.
    let real_dir = std::fs::canonicalize(&postgres)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let initdb = real_dir
        .as_ref()
        .and_then(|d| find_in(std::slice::from_ref(d), "initdb"))
        .or_else(|| find_in(path, "initdb"))
        .or_else(|| find_in(lib, "initdb"))
        .ok_or_else(|| missing("initdb"))?;
    let psql = find_in(path, "psql")
        .or_else(|| {
            real_dir
                .as_ref()
                .and_then(|d| find_in(std::slice::from_ref(d), "psql"))
        })
        .or_else(|| find_in(lib, "psql"))
        .ok_or_else(|| missing("psql"))?;
    let major = server_major(&postgres)?;
    Ok(PgBins {
        postgres,
        initdb,
        psql,
        major,
    })
}

/// Runs `postgres --version` and parses the major version.
fn server_major(postgres: &Path) -> Result<u32> {
    let out = Command::new(postgres)
        .arg("--version")
        .output()
        .map_err(KitError::io(
            "postgres",
            format!("running {} --version", postgres.display()),
        ))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    parse_major(&text).ok_or_else(|| KitError::Protocol {
        server: "postgres".into(),
        step: format!("parsing `{} --version`", postgres.display()),
        detail: format!("unexpected output {text:?}"),
    })
}

/// `postgres (PostgreSQL) 15.20 (Debian ...)` -> 15.
fn parse_major(text: &str) -> Option<u32> {
    let rest = text.split(')').nth(1)?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

/// `/usr/lib/postgresql/*/bin`, highest version first.
fn pg_lib_dirs() -> Vec<PathBuf> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let key: Vec<u32> = name
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            Some((key, e.path().join("bin")))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, p)| p).collect()
}

fn find_in(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    dirs.iter().map(|d| d.join(name)).find(|p| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            parse_major("postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(parse_major("postgres (PostgreSQL) 17beta1\n"), Some(17));
        assert_eq!(parse_major("garbage"), None);
    }

    #[test]
    fn missing_binaries_name_the_install_command() {
        let nowhere = [PathBuf::from("/nonexistent")];
        let e = find_pg_bins(&nowhere, &nowhere).unwrap_err().to_string();
        assert!(e.contains("`postgres` was not found"), "{e}");
        assert!(e.contains("`apt-get install -y postgresql`"), "{e}");
        let e = find_redis_server(&nowhere, &nowhere)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`apt-get install -y redis-server`"), "{e}");
    }

    #[test]
    fn finds_the_installed_binaries() {
        let b = pg_bins().unwrap();
        assert!(b.major >= 10, "{b:?}");
        assert!(b.initdb.ends_with("initdb"));
        assert!(redis_server().unwrap().ends_with("redis-server"));
    }
}
