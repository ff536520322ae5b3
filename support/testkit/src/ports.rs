//! Picking loopback ports.
//!
//! A free port is found by binding `127.0.0.1:0` and dropping the listener.
//! Another process may grab it before our server binds it, so the server
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

/// Returns a loopback port nobody listens on right now and that no other
/// server of this process holds.
pub(crate) fn lease_free_port() -> std::io::Result<PortLease> {
    for _ in 0..64 {
        let port = {
            let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            l.local_addr()?.port()
        };
        // Never hand out the machine's own PostgreSQL and Redis ports.
        if matches!(port, 5432 | 6379) {
            continue;
        }
        if reserved().insert(port) {
            return Ok(PortLease { port });
        }
    }
    Err(std::io::Error::other(
        "no free loopback port found in 64 tries",
    ))
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
    /// Binds a fresh loopback port without listening on it.
    pub fn bind() -> std::io::Result<ClosedPort> {
        let fd = socket::socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let any = SockaddrIn::new(127, 0, 0, 1, 0);
        socket::bind(fd.as_raw_fd(), &any)?;
        let bound: SockaddrIn = socket::getsockname(fd.as_raw_fd())?;
        Ok(ClosedPort {
            _socket: fd,
            port: bound.port(),
        })
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
    fn closed_port_refuses() {
        let c = ClosedPort::bind().unwrap();
        let err = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, c.port())).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
