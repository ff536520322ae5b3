//! [`RedisConn`]: the pooled Redis connection, watching what passes through
//! it so that the reset on return knows, without a round trip, what a
//! caller left behind.
//!
//! Every command a caller sends through the pool's handle (`AsyncCommands`,
//! `cmd(..).query_async(&mut *conn)`, pipelines) goes through
//! [`ConnectionLike`], where the wrapper notes, as the command is sent:
//! `MULTI` (a transaction opened), `EXEC`/`DISCARD` (closed, watches gone),
//! `WATCH`/`UNWATCH`, `SELECT` of another database than the configured one,
//! `RESET`; and whether a request is still in flight (its future was
//! dropped before the answer came: a `BLPOP` under a caller's timeout).
//! Commands sent on the inner connection itself (through `Deref`) are not
//! seen.

use bb8_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use bb8_redis::redis::{Cmd, Pipeline, RedisFuture, Value};

/// What a caller may have left on a connection, as far as the wrapper saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Left {
    /// A `MULTI` may be open.
    pub multi: bool,
    /// A `WATCH` may be active.
    pub watch: bool,
    /// Another database may be selected.
    pub db: bool,
}

impl Left {
    /// Nothing left behind.
    pub fn is_clean(&self) -> bool {
        *self == Left::default()
    }
}

/// A pooled Redis connection: redis-rs's multiplexed connection (it
/// dereferences to it) and what the pool watches of the commands sent
/// through it (see the module docs). Send commands through it
/// (`AsyncCommands`, `query_async(&mut *conn)`).
pub struct RedisConn {
    pub(crate) inner: MultiplexedConnection,
    /// The database the pool's connections are in (the URL's, or the last
    /// `SELECT` of the init commands).
    pub(crate) db: i64,
    pub(crate) left: Left,
    /// Requests sent and not answered (their futures dropped midway).
    pub(crate) in_flight: u32,
}

impl RedisConn {
    pub(crate) fn new(inner: MultiplexedConnection, db: i64) -> Self {
        RedisConn {
            inner,
            db,
            left: Left::default(),
            in_flight: 0,
        }
    }

    /// What a caller may have left on the connection.
    pub fn left(&self) -> Left {
        self.left
    }

    /// Requests sent through the wrapper and not answered.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Notes the effect of one command, as it is sent.
    fn note(&mut self, cmd: &Cmd) {
        note(&mut self.left, self.db, cmd);
    }
}

/// What `cmd` leaves on a connection in database `db` (see the module
/// docs): marked as it is sent, whatever its answer.
fn note(left: &mut Left, db: i64, cmd: &Cmd) {
    let mut args = cmd.args_iter().filter_map(|a| match a {
        bb8_redis::redis::Arg::Simple(b) => Some(b),
        _ => None,
    });
    let Some(name) = args.next() else { return };
    match name.to_ascii_uppercase().as_slice() {
        b"MULTI" => left.multi = true,
        b"EXEC" | b"DISCARD" => {
            left.multi = false;
            left.watch = false;
        }
        b"WATCH" => left.watch = true,
        b"UNWATCH" if !left.multi => left.watch = false,
        b"SELECT" => {
            let to = args
                .next()
                .and_then(|a| std::str::from_utf8(a).ok()?.trim().parse::<i64>().ok());
            // Inside a MULTI the SELECT waits for EXEC: marked all the same.
            if to != Some(db) || left.multi {
                left.db = true;
            }
        }
        b"RESET" => *left = Left::default(),
        _ => {}
    }
}

impl std::ops::Deref for RedisConn {
    type Target = MultiplexedConnection;

    fn deref(&self) -> &MultiplexedConnection {
        &self.inner
    }
}

impl std::ops::DerefMut for RedisConn {
    fn deref_mut(&mut self) -> &mut MultiplexedConnection {
        &mut self.inner
    }
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConn")
            .field("left", &self.left)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            self.note(cmd);
            // Counted from the first poll (when the request is sent) until
            // the answer: a future dropped midway leaves it counted.
            self.in_flight += 1;
            let out = self.inner.req_packed_command(cmd).await;
            self.in_flight -= 1;
            out
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            for cmd in pipeline.cmd_iter() {
                self.note(cmd);
            }
            self.in_flight += 1;
            let out = self
                .inner
                .req_packed_commands(pipeline, offset, count)
                .await;
            self.in_flight -= 1;
            out
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bb8_redis::redis::cmd;

    #[test]
    fn commands_mark_what_they_leave() {
        let mut left = Left::default();
        let mut step = |c: &mut Cmd| {
            note(&mut left, 0, c);
            left
        };
        assert!(step(cmd("GET").arg("k")).is_clean());
        assert!(step(cmd("select").arg(0)).is_clean());
        assert!(step(cmd("SELECT").arg(5)).db);
        assert!(step(cmd("SELECT").arg(0)).db, "stays marked");
        assert!(step(&mut cmd("MULTI")).multi);
        let l = step(&mut cmd("EXEC"));
        assert!(!l.multi && l.db);
        assert!(step(&mut cmd("RESET")).is_clean());
        assert!(step(cmd("WATCH").arg("k")).watch);
        assert!(!step(&mut cmd("UNWATCH")).watch);
    }
}
