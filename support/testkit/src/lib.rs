//! Private PostgreSQL and Redis servers for tests, benches and the demo,
//! with fault injection.
//!
//! Every server is started from the installed binaries on a free loopback
//! port, in its own directory under `std::env::temp_dir()/pool-testkit/`,
//! as the leader of its own process group. Faults hit all of a server's
//! processes at once: since PostgreSQL backends leave the postmaster's
//! process group (they call `setsid()`), a server's processes are found in
//! `/proc` by their working directory (inside the server's private
//! directory) and executable, and nothing else is ever signalled:
//!
//! - [`PgServer`]: PostgreSQL (run as the `postgres` user when we are root,
//!   because PostgreSQL refuses to run as root). Fast/immediate stops,
//!   SIGKILL of the whole server, restarts on the same port, SIGSTOP/SIGCONT
//!   ("freeze"), terminating client sessions, password auth (SCRAM), and a
//!   standby mode that answers every login with SQLSTATE 57P03.
//! - [`RedisServer`]: Redis. Stop/kill/restart, freeze, `CLIENT KILL`,
//!   `DEBUG SLEEP`, passwords and ACL users, and a replica mode whose master
//!   is unreachable so commands get `MASTERDOWN`.
//! - [`FaultProxy`]: a TCP proxy (on the caller's tokio runtime) that breaks
//!   the network instead of the server: black hole, refused connections,
//!   latency, and RST of every open connection.
//!
//! The machine's own services (ports 5432 and 6379) are never touched.
//!
//! Nothing outlives its owner: dropping a server SIGKILLs all its processes
//! and removes its directory, and every start first sweeps servers left
//! behind by test processes that died (see [`sweep_stale`]).
//!
//! The API is synchronous (`std::process`, `std::net`) so it works from
//! plain `#[test]`s, from async tests and from benches alike. A missing
//! binary is an error naming the install command, never a silent skip.
//!
//! ```no_run
//! let pg = pool_testkit::PgServer::start()?;
//! assert_eq!(pg.psql("select 1")?, "1");
//! let redis = pool_testkit::RedisServer::start()?;
//! assert_eq!(redis.cmd(&["PING"])?, "PONG");
//! # Ok::<(), pool_testkit::KitError>(())
//! ```

#![warn(missing_docs)]

pub mod bins;
mod certs;
mod error;
mod pgdata;
mod pgwire;
mod ports;
mod postgres;
mod process;
mod proxy;
mod redis;
mod resp;
pub mod samples;
mod server;
mod shm;
mod workdir;

pub use certs::{ServerCert, TestCerts, CLIENT_CN, TLS_HOST};
pub use error::{KitError, Result};
pub use pgwire::{LoginProbe, PgErrorReport};
pub use ports::ClosedPort;
pub use postgres::{HbaTls, PgOptions, PgServer, PgTls};
pub use proxy::{FaultProxy, Mode};
pub use redis::{RedisOptions, RedisServer, RedisTls};
pub use resp::RedisReply;
pub use workdir::{base_dir, sweep_stale};

/// The address every server listens on.
pub const HOST: &str = "127.0.0.1";

/// Percent-encodes `s` for the user-info part of a URL (everything but
/// unreserved characters is encoded).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_userinfo() {
        assert_eq!(super::percent_encode("a b@c:d/é"), "a%20b%40c%3Ad%2F%C3%A9");
        assert_eq!(super::percent_encode("plain-1.2_~"), "plain-1.2_~");
    }
}
