//! A minimal blocking RESP2 client, enough for the kit's Redis helpers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A TCP or Unix-socket stream (a TLS-only server is reached over its
/// Unix socket).
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn try_clone(&self) -> std::io::Result<Stream> {
        match self {
            Stream::Tcp(s) => s.try_clone().map(Stream::Tcp),
            Stream::Unix(s) => s.try_clone().map(Stream::Unix),
        }
    }

    fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s
                .set_read_timeout(read)
                .and_then(|()| s.set_write_timeout(write)),
            Stream::Unix(s) => s
                .set_read_timeout(read)
                .and_then(|()| s.set_write_timeout(write)),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// One Redis reply (RESP2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisReply {
    /// `+OK`, `+PONG`, ...
    Status(String),
    /// `-ERR ...`, `-MASTERDOWN ...`: the text after the `-`.
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$...`; `None` is the nil bulk string.
    Bulk(Option<Vec<u8>>),
    /// `*...`; `None` is the nil array.
    Array(Option<Vec<RedisReply>>),
}

impl RedisReply {
    /// The reply as text: status and bulk strings as they are, integers in
    /// decimal, nil as `(nil)`, array elements one per line, errors as their
    /// message.
    pub fn to_text(&self) -> String {
        match self {
            RedisReply::Status(s) | RedisReply::Error(s) => s.clone(),
            RedisReply::Integer(i) => i.to_string(),
            RedisReply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            RedisReply::Bulk(None) | RedisReply::Array(None) => "(nil)".to_string(),
            RedisReply::Array(Some(items)) => items
                .iter()
                .map(RedisReply::to_text)
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

fn bad(detail: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, detail.into())
}

/// One connection to a Redis server.
#[derive(Debug)]
pub(crate) struct RespConn {
    reader: BufReader<Stream>,
    writer: Stream,
}

impl RespConn {
    /// Connects with `timeout` for the connect and for every read/write.
    pub(crate) fn connect(port: u16, timeout: Duration) -> std::io::Result<RespConn> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        Self::over(Stream::Tcp(stream), timeout)
    }

    /// Connects to the Unix socket at `path`, with `timeout` for every
    /// read/write.
    pub(crate) fn connect_unix(path: &Path, timeout: Duration) -> std::io::Result<RespConn> {
        Self::over(Stream::Unix(UnixStream::connect(path)?), timeout)
    }

    fn over(stream: Stream, timeout: Duration) -> std::io::Result<RespConn> {
        stream.set_timeouts(Some(timeout), Some(timeout))?;
        Ok(RespConn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Changes the read timeout.
    pub(crate) fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match &self.writer {
            Stream::Tcp(s) => s.set_read_timeout(t),
            Stream::Unix(s) => s.set_read_timeout(t),
        }
    }

    /// Sends one command without reading the reply.
    pub(crate) fn send(&mut self, args: &[&str]) -> std::io::Result<()> {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&buf)
    }

    /// Reads one reply.
    pub(crate) fn read(&mut self) -> std::io::Result<RedisReply> {
        let line = self.line()?;
        let mut chars = line.chars();
        let kind = chars.next().unwrap_or(' ');
        let rest = chars.as_str();
        match kind {
            '+' => Ok(RedisReply::Status(rest.to_string())),
            '-' => Ok(RedisReply::Error(rest.to_string())),
            ':' => rest
                .parse()
                .map(RedisReply::Integer)
                .map_err(|_| bad(format!("bad integer {rest:?}"))),
            '$' => {
                let len: i64 = rest
                    .parse()
                    .map_err(|_| bad(format!("bad length {rest:?}")))?;
                if len < 0 {
                    return Ok(RedisReply::Bulk(None));
                }
                let mut data = vec![0u8; len as usize + 2];
                self.reader.read_exact(&mut data)?;
                data.truncate(len as usize);
                Ok(RedisReply::Bulk(Some(data)))
            }
            '*' => {
                let n: i64 = rest
                    .parse()
                    .map_err(|_| bad(format!("bad count {rest:?}")))?;
                if n < 0 {
                    return Ok(RedisReply::Array(None));
                }
                let items = (0..n)
                    .map(|_| self.read())
                    .collect::<std::io::Result<_>>()?;
                Ok(RedisReply::Array(Some(items)))
            }
            _ => Err(bad(format!("unexpected reply {line:?}"))),
        }
    }

    /// Sends one command and reads its reply.
    pub(crate) fn call(&mut self, args: &[&str]) -> std::io::Result<RedisReply> {
        self.send(args)?;
        self.read()
    }

    fn line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            return Err(bad("empty reply line"));
        }
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms() {
        let a = RedisReply::Array(Some(vec![
            RedisReply::Bulk(Some(b"a".to_vec())),
            RedisReply::Integer(3),
            RedisReply::Bulk(None),
        ]));
        assert_eq!(a.to_text(), "a\n3\n(nil)");
    }
}
