//! Picking loopback ports.
//!
//! A free port is found by binding a random port of [`PRIVATE_PORTS`] on
//! `127.0.0.1` and dropping the listener. The range lies below the kernel's
//! ephemeral range (32768-60999 on Linux): a client that reconnects to a
//! stopped server on an ephemeral port can be handed that very port as its
//! own source port, connect to itself, and keep the port busy for a minute,
//! so a restart of the server fails. Binding port 0 would pick exactly such a
//! port. Another process may grab it before our server binds it, so the server
//! starters retry with a new port when the bind fails. Within this process a
//! registry of ports held by live servers keeps two servers from being handed
//! the same port.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn};

fn reserved() -> MutexGuard<'static, BTreeSet<u16>> {
    static RESERVED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    // A panic while holding the lock cannot leave the set inconsistent.
    RESERVED.lock().unwrap_or_else(|e| e.into_inner())
}

/// A port reserved for one server of this process; released on drop.
#[derive(Debug)]
pub(crate) struct PortLease {
    port: u16,
}

impl PortLease {
    /// The leased port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        reserved().remove(&self.port);
    }
}

/// The ports private servers are given: below the kernel's ephemeral range
/// (32768-60999), above the ports well-known services use (the machine's own
/// PostgreSQL 5432 and Redis 6379 among them).
pub const PRIVATE_PORTS: std::ops::Range<u16> = 20000..32000;

/// A random port of [`PRIVATE_PORTS`] that binds on loopback right now.
fn bindable_private_port() -> Option<u16> {
    let port = fastrand::u16(PRIVATE_PORTS);
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).ok()?;
    Some(port)
}

/// Returns a loopback port of [`PRIVATE_PORTS`] nobody listens on right now
/// and that no other server of this process holds.
pub(crate) fn lease_free_port() -> std::io::Result<PortLease> {
    for _ in 0..256 {
        let Some(port) = bindable_private_port() else {
            continue;
        };
        if reserved().insert(port) {
            return Ok(PortLease { port });
        }
    }
    Err(std::io::Error::other(format!(
        "no free loopback port in {}..{} found in 256 tries",
        PRIVATE_PORTS.start, PRIVATE_PORTS.end
    )))
}

/// A loopback port that is bound but never listened on, so every connection
/// to it is refused at once, and nobody else can take it while this value
/// lives. Used as the unreachable master of a Redis replica.
#[derive(Debug)]
pub struct ClosedPort {
    /// Kept open so the port stays ours; never read.
    _socket: OwnedFd,
    port: u16,
}

impl ClosedPort {
    /// Binds a fresh loopback port of `PRIVATE_PORTS` without listening
    /// on it.
    pub fn bind() -> std::io::Result<ClosedPort> {
        let mut last = None;
        for _ in 0..256 {
            let fd = socket::socket(
                AddressFamily::Inet,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC,
                None,
            )?;
            let port = fastrand::u16(PRIVATE_PORTS);
            match socket::bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port)) {
                Ok(()) => return Ok(ClosedPort { _socket: fd, port }),
                Err(e) => last = Some(e),
            }
        }
        Err(std::io::Error::other(format!(
            "no free loopback port in {}..{} found in 256 tries: {}",
            PRIVATE_PORTS.start,
            PRIVATE_PORTS.end,
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    /// The port number.
    pub fn port(&self) -> u16 {
        self.port
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_distinct() {
        let a = lease_free_port().unwrap();
        let b = lease_free_port().unwrap();
        assert_ne!(a.port(), b.port());
    }

    #[test]
    fn ports_stay_below_the_ephemeral_range() {
        let leases: Vec<_> = (0..50).map(|_| lease_free_port().unwrap()).collect();
        for lease in &leases {
            assert!(PRIVATE_PORTS.contains(&lease.port()), "{}", lease.port());
            assert!(lease.port() < 32768);
        }
        let closed = ClosedPort::bind().unwrap();
        assert!(PRIVATE_PORTS.contains(&closed.port()), "{}", closed.port());
    }

    #[test]
    fn closed_port_refuses() {
        let c = ClosedPort::bind().unwrap();
        let err = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, c.port())).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
