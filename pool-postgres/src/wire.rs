//! A thin watcher of the PostgreSQL protocol under tokio-postgres: it reads
//! message headers (a type byte and a 4-byte length, across read and write
//! boundaries) as the bytes pass, and keeps two facts libpq and psycopg keep
//! but tokio-postgres does not expose:
//!
//! - the transaction status of the last `ReadyForQuery` (`Z`): `I` idle,
//!   `T` in a transaction, `E` in a failed transaction;
//! - whether a request is still in flight: every simple `Query` (`Q`) and
//!   every `Sync` (`S`) the client writes is answered by exactly one
//!   `ReadyForQuery`, so more written than answered means the server is
//!   still working on something.
//!
//! The reset on return ([`crate::PgManager`]) decides from them, without a
//! round trip, whether a returned connection is clean. It sits above TLS
//! (it sees the plaintext protocol) and on plain sockets alike: the pool
//! opens its own socket and hands it to tokio-postgres's `connect_raw`
//! ([`crate::tls`]).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// What the watcher learnt about one connection.
#[derive(Debug)]
pub struct Wire {
    /// Requests written that expect a `ReadyForQuery` (the startup counts
    /// as one).
    sent: AtomicU64,
    /// `ReadyForQuery` messages read.
    answered: AtomicU64,
    /// The status byte of the last `ReadyForQuery`.
    status: AtomicU8,
    /// Woken at every `ReadyForQuery`.
    ready: Notify,
}

impl Wire {
    pub(crate) fn new() -> Arc<Wire> {
        Arc::new(Wire {
            sent: AtomicU64::new(1),
            answered: AtomicU64::new(0),
            status: AtomicU8::new(b'I'),
            ready: Notify::new(),
        })
    }

    /// Requests written and not yet answered.
    pub fn in_flight(&self) -> u64 {
        // `answered` first: a request answered between the two loads then
        // shows as still in flight, never the other way round.
        let answered = self.answered.load(Relaxed);
        self.sent.load(Relaxed).saturating_sub(answered)
    }

    /// The transaction status of the last `ReadyForQuery`: `b'I'` idle,
    /// `b'T'` in a transaction block, `b'E'` in a failed one.
    pub fn status(&self) -> u8 {
        self.status.load(Relaxed)
    }

    /// Waits until nothing is in flight.
    pub(crate) async fn settled(&self) {
        loop {
            let ready = self.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            if self.in_flight() == 0 {
                return;
            }
            ready.await;
        }
    }
}

/// Splits a byte stream into protocol messages, reporting each message's
/// type (and, for `Z`, its status byte).
#[derive(Debug, Default)]
struct Framer {
    /// Leading raw bytes that belong to no message (the server's one-byte
    /// answer to an `SSLRequest`).
    skip: usize,
    /// Messages still to come without a type byte (the client's
    /// `SSLRequest` and startup message).
    untyped: u8,
    hdr: [u8; 6],
    have: usize,
    /// Body bytes of the current message still to pass.
    body: usize,
}

impl Framer {
    /// Header bytes the current message needs.
    fn need(&self) -> usize {
        if self.untyped > 0 {
            4
        } else if self.have >= 1 && self.hdr[0] == b'Z' {
            6
        } else {
            5
        }
    }

    fn feed(&mut self, mut buf: &[u8], mut on: impl FnMut(u8, u8)) {
        while !buf.is_empty() {
            if self.skip > 0 || self.body > 0 {
                let pending = if self.skip > 0 {
                    &mut self.skip
                } else {
                    &mut self.body
                };
                let n = (*pending).min(buf.len());
                *pending -= n;
                buf = &buf[n..];
                continue;
            }
            let n = (self.need() - self.have).min(buf.len());
            self.hdr[self.have..self.have + n].copy_from_slice(&buf[..n]);
            self.have += n;
            buf = &buf[n..];
            // Known once the type byte is in (a `Z` header takes its
            // status byte too).
            let need = self.need();
            if self.have < need {
                continue;
            }
            self.have = 0;
            if self.untyped > 0 {
                self.untyped -= 1;
                let len = u32::from_be_bytes([self.hdr[0], self.hdr[1], self.hdr[2], self.hdr[3]]);
                self.body = (len as usize).saturating_sub(4);
            } else {
                let len = u32::from_be_bytes([self.hdr[1], self.hdr[2], self.hdr[3], self.hdr[4]]);
                self.body = (len as usize).saturating_sub(4 + need - 5);
                on(self.hdr[0], self.hdr[5]);
            }
        }
    }
}

/// A stream whose protocol messages are watched (see the module docs);
/// inactive (a plain pass-through) below TLS.
#[derive(Debug)]
pub struct Watched<S> {
    inner: S,
    wire: Option<Arc<Wire>>,
    read: Framer,
    write: Framer,
}

impl<S> Watched<S> {
    /// Watches `inner`: the first message the client writes is the startup
    /// message (no type byte), preceded by an `SSLRequest` and its one-byte
    /// answer when `ssl_request`.
    pub(crate) fn new(inner: S, wire: Arc<Wire>, ssl_request: bool) -> Self {
        Watched {
            inner,
            wire: Some(wire),
            read: Framer {
                skip: usize::from(ssl_request),
                ..Framer::default()
            },
            write: Framer {
                untyped: 1 + u8::from(ssl_request),
                ..Framer::default()
            },
        }
    }

    /// Stops watching: TLS starts on top of this stream, and a watcher above
    /// it sees the plaintext.
    pub(crate) fn stop(&mut self) {
        self.wire = None;
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let out = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(wire)) = (&out, &this.wire) {
            let mut any = false;
            this.read.feed(&buf.filled()[before..], |kind, status| {
                if kind == b'Z' {
                    wire.status.store(status, Relaxed);
                    wire.answered.fetch_add(1, Relaxed);
                    any = true;
                }
            });
            if any {
                wire.ready.notify_waiters();
            }
        }
        out
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let out = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let (Poll::Ready(Ok(n)), Some(wire)) = (&out, &this.wire) {
            this.write.feed(&buf[..*n], |kind, _| {
                if kind == b'Q' || kind == b'S' {
                    wire.sent.fetch_add(1, Relaxed);
                }
            });
        }
        out
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: tokio_postgres::tls::TlsStream + Unpin> tokio_postgres::tls::TlsStream for Watched<S> {
    fn channel_binding(&self) -> tokio_postgres::tls::ChannelBinding {
        self.inner.channel_binding()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// Headers split at every byte boundary are still read right.
    #[test]
    fn headers_across_read_boundaries() {
        let mut stream = Vec::new();
        stream.extend(msg(b'R', &[0, 0, 0, 0]));
        stream.extend(msg(b'Z', b"I"));
        stream.extend(msg(b'C', b"BEGIN\0"));
        stream.extend(msg(b'Z', b"T"));
        stream.extend(msg(b'D', &[b'Z'; 300]));
        stream.extend(msg(b'Z', b"E"));
        for chunk in 1..stream.len() {
            let mut f = Framer::default();
            let mut seen = Vec::new();
            for part in stream.chunks(chunk) {
                f.feed(part, |k, s| {
                    if k == b'Z' {
                        seen.push(s)
                    }
                });
            }
            assert_eq!(seen, b"ITE", "chunks of {chunk}");
        }
    }

    #[test]
    fn the_untyped_startup_and_the_ssl_answer_are_skipped() {
        let mut client = Framer {
            untyped: 2,
            ..Framer::default()
        };
        let mut out = Vec::new();
        let mut bytes = vec![0, 0, 0, 8, 4, 210, 22, 47]; // SSLRequest
        bytes.extend([0, 0, 0, 9, 0, 3, 0, 0, b'x']); // startup
        bytes.extend(msg(b'Q', b"SELECT 1\0"));
        bytes.extend(msg(b'P', b"\0SELECT 1\0\0\0"));
        bytes.extend(msg(b'S', b""));
        client.feed(&bytes, |k, _| out.push(k));
        assert_eq!(out, b"QPS");
        let mut server = Framer {
            skip: 1,
            ..Framer::default()
        };
        let mut out = Vec::new();
        let mut bytes = vec![b'N'];
        bytes.extend(msg(b'Z', b"I"));
        server.feed(&bytes, |k, s| out.push((k, s)));
        assert_eq!(out, [(b'Z', b'I')]);
    }
}
