//! A TCP proxy that injects network faults between a client and a server.
//!
//! Where [`PgServer::freeze`](crate::PgServer::freeze) and friends break the
//! server, the proxy breaks the network: it can black-hole traffic while
//! keeping connections open, refuse new connections, add latency, and reset
//! every open connection with a TCP RST. It runs on the caller's tokio
//! runtime.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::error::{KitError, Result};

/// How long the proxy waits to connect to the upstream server.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes forwarded per chunk.
const CHUNK: usize = 16 * 1024;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Forward everything unchanged.
    #[default]
    Pass,
    /// Keep every connection open but silently drop all bytes, both ways,
    /// like a network partition without RSTs. New connections are accepted
    /// and never reach the server (they stay dead even after the mode
    /// changes back). Existing connections resume forwarding when the mode
    /// changes, but whatever was dropped stays lost.
    Blackhole,
    /// Accept new connections and close them at once (existing ones keep
    /// working).
    Refuse,
    /// Forward, but wait this long before forwarding each chunk read, in
    /// both directions.
    Latency(Duration),
}

/// Per-connection control.
#[derive(Debug, Default)]
struct ConnCtl {
    close: Notify,
    /// Close with RST (true) or with a normal FIN (false).
    rst: AtomicBool,
}

#[derive(Debug, Default)]
struct Shared {
    mode: Mutex<Mode>,
    conns: Mutex<HashMap<u64, Arc<ConnCtl>>>,
    next_id: AtomicU64,
}

impl Shared {
    fn mode(&self) -> Mode {
        *lock(&self.mode)
    }
}

/// Locks a mutex, ignoring poisoning (the data stay consistent: every
/// critical section is a single insert, remove or copy).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes a connection from the registry when its task ends.
struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.shared.conns).remove(&self.id);
    }
}

/// A fault-injecting TCP proxy on a free `127.0.0.1` port, forwarding to
/// one upstream address. Dropping it stops accepting and closes every
/// connection.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` on the current tokio runtime, in
    /// [`Mode::Pass`].
    pub async fn start(upstream: SocketAddr) -> Result<FaultProxy> {
        let who = format!("fault proxy to {upstream}");
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(KitError::io(&who, "binding 127.0.0.1:0"))?;
        let addr = listener
            .local_addr()
            .map_err(KitError::io(&who, "reading the bound address"))?;
        let shared = Arc::new(Shared::default());
        let accept_task = tokio::spawn(accept_loop(listener, upstream, shared.clone()));
        Ok(FaultProxy {
            addr,
            upstream,
            shared,
            accept_task,
        })
    }

    /// The address clients should connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Switches the fault mode; takes effect for the next chunk and the
    /// next connection.
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// Resets every open connection: both sockets (client side and server
    /// side) get `SO_LINGER` 0 and are closed, so both peers see a TCP RST
    /// (`connection reset by peer`). Returns how many connections were
    /// reset.
    pub fn reset_all(&self) -> usize {
        self.close_all(true)
    }

    /// How many client connections are open through the proxy.
    pub fn open_connections(&self) -> usize {
        lock(&self.shared.conns).len()
    }

    fn close_all(&self, rst: bool) -> usize {
        let conns: Vec<Arc<ConnCtl>> = lock(&self.shared.conns).values().cloned().collect();
        for c in &conns {
            c.rst.store(rst, Ordering::SeqCst);
            // notify_one keeps a permit if the task is not waiting yet.
            c.close.notify_one();
        }
        conns.len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.close_all(false);
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "fault proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let mode = shared.mode();
        if mode == Mode::Refuse {
            drop(client);
            continue;
        }
        let _ = client.set_nodelay(true);
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        let ctl = Arc::new(ConnCtl::default());
        lock(&shared.conns).insert(id, ctl.clone());
        let reg = Registration {
            shared: shared.clone(),
            id,
        };
        let task_shared = shared.clone();
        tokio::spawn(async move {
            let _reg = reg;
            if mode == Mode::Blackhole {
                blackhole(client, &ctl).await;
            } else {
                forward(client, upstream, &task_shared, &ctl).await;
            }
        });
    }
}

/// Sets `SO_LINGER` 0 so that closing the socket sends a RST.
fn set_zero_linger(stream: &TcpStream) {
    let linger = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let _ = nix::sys::socket::setsockopt(stream, nix::sys::socket::sockopt::Linger, &linger);
}

/// A connection accepted in black-hole mode: read and discard until the
/// client goes away or we are told to close.
async fn blackhole(mut client: TcpStream, ctl: &ConnCtl) {
    let mut buf = vec![0u8; CHUNK];
    let drain = async { while matches!(client.read(&mut buf).await, Ok(n) if n > 0) {} };
    let closed = tokio::select! {
        _ = ctl.close.notified() => true,
        _ = drain => false,
    };
    if closed && ctl.rst.load(Ordering::SeqCst) {
        set_zero_linger(&client);
    }
}

async fn forward(client: TcpStream, upstream: SocketAddr, shared: &Shared, ctl: &ConnCtl) {
    let server = tokio::select! {
        _ = ctl.close.notified() => {
            if ctl.rst.load(Ordering::SeqCst) {
                set_zero_linger(&client);
            }
            return;
        }
        r = tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(upstream)) => match r {
            Ok(Ok(s)) => s,
            // Upstream unreachable: close the client, like a dead server.
            _ => return,
        },
    };
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let closed = tokio::select! {
        _ = ctl.close.notified() => true,
        _ = async {
            tokio::join!(pipe(&mut cr, &mut sw, shared), pipe(&mut sr, &mut cw, shared))
        } => false,
    };
    if closed && ctl.rst.load(Ordering::SeqCst) {
        // Reunite first: dropping a write half on its own sends a FIN,
        // which the peer would see before the RST.
        for stream in [cr.reunite(cw), sr.reunite(sw)].into_iter().flatten() {
            set_zero_linger(&stream);
        }
    }
}

/// Copies `from` to `to` chunk by chunk, applying the current mode to each
/// chunk; on EOF or error, shuts down `to`'s write side.
async fn pipe(from: &mut OwnedReadHalf, to: &mut OwnedWriteHalf, shared: &Shared) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match shared.mode() {
            Mode::Blackhole => continue,
            Mode::Latency(d) => tokio::time::sleep(d).await,
            Mode::Pass | Mode::Refuse => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
