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
//!
//! The wrapper also bounds each answer. redis-rs applies one response
//! timeout to every command of a connection, so a blocking command (`BLPOP
//! key 2`) longer than it fails; here redis-rs's is off and the limit is per
//! command: `REDIS_COMMAND_TIMEOUT` for an ordinary command, a blocking
//! command's own timeout plus that for a blocking one, no limit for a
//! blocking command that blocks forever (its timeout `0`) or when the
//! setting is `0`. A pipeline gets the sum of its blocking commands' own
//! timeouts plus the setting once (the server runs them one after the
//! other).
//!
//! redis-rs does not say whether a multiplexed connection's driver has
//! stopped, but it says so in the errors it returns: a command that fails
//! because the connection dropped, or that timed out (its answer may still
//! come and the connection is in an unknown state), marks the connection
//! closed for [`crate::RedisManager`]'s `is_closed`, so the pool discards it
//! at its return even when the caller did not pass the error through
//! `Pooled::observe`.

use bb8_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use bb8_redis::redis::{Arg, Cmd, Pipeline, RedisError, RedisFuture, Value};
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

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
    /// Requests sent and not answered (their futures dropped midway, or
    /// timed out).
    pub(crate) in_flight: u32,
    /// `REDIS_COMMAND_TIMEOUT`.
    limit: CommandTimeout,
    /// A command failed because the connection dropped or timed out.
    closed: bool,
}

/// The configured command timeout and the variable that set it, for errors.
#[derive(Clone, Debug)]
pub(crate) struct CommandTimeout {
    pub(crate) timeout: Option<Duration>,
    /// `REDIS_COMMAND_TIMEOUT` (or the pool's own prefix).
    pub(crate) variable: Arc<str>,
}

impl RedisConn {
    pub(crate) fn new(inner: MultiplexedConnection, db: i64, limit: CommandTimeout) -> Self {
        RedisConn {
            inner,
            db,
            left: Left::default(),
            in_flight: 0,
            limit,
            closed: false,
        }
    }

    /// True once a command sent through the wrapper failed because the
    /// connection dropped, or got no answer within `REDIS_COMMAND_TIMEOUT`:
    /// the pool closes the connection at its return.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The command timeout of `cmds`, run one after the other: `None` for
    /// no limit.
    fn limit_for<'a>(&self, cmds: impl Iterator<Item = &'a Cmd>) -> Option<Duration> {
        let mut limit = self.limit.timeout?;
        for cmd in cmds {
            match blocking_timeout(cmd) {
                Blocks::No => {}
                Blocks::For(d) => limit = limit.saturating_add(d),
                Blocks::Forever => return None,
            }
        }
        Some(limit)
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

/// Awaits `answer` within `limit`, counted in `in_flight` from the first
/// poll until the answer (a future dropped midway, or one that timed out,
/// leaves it counted); marks `closed` when the connection dropped or timed
/// out.
async fn send<T>(
    in_flight: &mut u32,
    closed: &mut bool,
    variable: &str,
    limit: Option<Duration>,
    answer: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, RedisError> {
    *in_flight += 1;
    let out = match limit {
        None => answer.await,
        Some(d) => match tokio::time::timeout(d, answer).await {
            Ok(r) => r,
            Err(_) => {
                *closed = true;
                return Err(timed_out(variable, d));
            }
        },
    };
    *in_flight -= 1;
    if let Err(e) = &out {
        if e.is_timeout() || e.is_connection_dropped() || e.is_unrecoverable_error() {
            *closed = true;
        }
    }
    out
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
            .field("command_timeout", &self.limit.timeout)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            self.note(cmd);
            let limit = self.limit_for(std::iter::once(cmd));
            let RedisConn {
                inner,
                in_flight,
                closed,
                limit: CommandTimeout { variable, .. },
                ..
            } = self;
            let answer = inner.req_packed_command(cmd);
            send(in_flight, closed, variable, limit, answer).await
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
            let limit = self.limit_for(pipeline.cmd_iter());
            let RedisConn {
                inner,
                in_flight,
                closed,
                limit: CommandTimeout { variable, .. },
                ..
            } = self;
            let answer = inner.req_packed_commands(pipeline, offset, count);
            send(in_flight, closed, variable, limit, answer).await
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

/// The error of a command that got no answer in time: an I/O timeout (so
/// classified `timeout`), naming the setting.
fn timed_out(variable: &str, limit: Duration) -> RedisError {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "no answer within {} s ({variable}); the connection is discarded",
            limit.as_secs_f64()
        ),
    )
    .into()
}

/// How long a command may block on the server by its own arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blocks {
    /// Not a blocking command (or its timeout does not parse: the server
    /// answers such a command with an error at once).
    No,
    /// Up to this long.
    For(Duration),
    /// Until something arrives (its timeout is `0`).
    Forever,
}

/// The blocking commands of Redis 7 and where their timeout is.
fn blocking_timeout(cmd: &Cmd) -> Blocks {
    let mut args = cmd.args_iter().filter_map(|a| match a {
        Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let name = match args.next() {
        // Every blocking command's name starts with B, W or X.
        Some(n) if matches!(n.first(), Some(b'B' | b'b' | b'W' | b'w' | b'X' | b'x')) => {
            String::from_utf8_lossy(n).to_ascii_uppercase()
        }
        _ => return Blocks::No,
    };
    let rest: Vec<&[u8]> = args.collect();
    let seconds = |arg: Option<&&[u8]>| timeout_arg(arg, 1.0);
    let millis = |arg: Option<&&[u8]>| timeout_arg(arg, 0.001);
    match name.as_str() {
        "BLPOP" | "BRPOP" | "BRPOPLPUSH" | "BLMOVE" | "BZPOPMIN" | "BZPOPMAX" => {
            seconds(rest.last())
        }
        "BLMPOP" | "BZMPOP" => seconds(rest.first()),
        "WAIT" | "WAITAOF" => millis(rest.last()),
        "XREAD" | "XREADGROUP" => {
            // `BLOCK ms` comes before `STREAMS`; after it come key names
            // and IDs, which may be spelt BLOCK too.
            let options = rest
                .iter()
                .take_while(|a| !a.eq_ignore_ascii_case(b"STREAMS"));
            let mut options = options.skip_while(|a| !a.eq_ignore_ascii_case(b"BLOCK"));
            match options.next() {
                Some(_) => millis(options.next()),
                None => Blocks::No,
            }
        }
        _ => Blocks::No,
    }
}

/// A timeout argument in `unit` seconds: `0` blocks forever.
fn timeout_arg(arg: Option<&&[u8]>, unit: f64) -> Blocks {
    let Some(value) = arg
        .and_then(|a| std::str::from_utf8(a).ok())
        .and_then(|a| a.trim().parse::<f64>().ok())
    else {
        return Blocks::No;
    };
    if value == 0.0 {
        return Blocks::Forever;
    }
    Duration::try_from_secs_f64(value * unit).map_or(Blocks::No, Blocks::For)
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

    fn parse(parts: &[&str]) -> Blocks {
        let mut c = cmd(parts[0]);
        c.arg(&parts[1..]);
        blocking_timeout(&c)
    }

    #[test]
    fn blocking_commands_are_known_by_their_own_timeout() {
        let s = |secs: f64| Blocks::For(Duration::from_secs_f64(secs));
        let cases: &[(&[&str], Blocks)] = &[
            (&["BLPOP", "a", "b", "2"], s(2.0)),
            (&["brpop", "a", "0.5"], s(0.5)),
            (&["BRPOPLPUSH", "a", "b", "3"], s(3.0)),
            (&["BLMOVE", "a", "b", "LEFT", "RIGHT", "1.5"], s(1.5)),
            (&["BZPOPMIN", "z", "4"], s(4.0)),
            (&["BZPOPMAX", "z", "0"], Blocks::Forever),
            (&["BLMPOP", "2", "2", "a", "b", "LEFT"], s(2.0)),
            (&["BZMPOP", "0", "1", "z", "MIN"], Blocks::Forever),
            (&["WAIT", "1", "250"], s(0.25)),
            (&["WAITAOF", "1", "0", "100"], s(0.1)),
            (
                &["XREAD", "COUNT", "2", "BLOCK", "1500", "STREAMS", "s", "$"],
                s(1.5),
            ),
            (
                &[
                    "XREADGROUP",
                    "GROUP",
                    "g",
                    "c",
                    "block",
                    "0",
                    "STREAMS",
                    "s",
                    ">",
                ],
                Blocks::Forever,
            ),
            // A stream named BLOCK is not an option.
            (&["XREAD", "STREAMS", "BLOCK", "5", "0", "0"], Blocks::No),
            (&["GET", "2"], Blocks::No),
            (&["BLPOP", "a", "soon"], Blocks::No),
        ];
        for (parts, want) in cases {
            assert_eq!(parse(parts), *want, "{parts:?}");
        }
    }

    #[test]
    fn the_timeout_error_is_a_timeout_naming_the_setting() {
        let e = timed_out("REDIS_COMMAND_TIMEOUT", Duration::from_millis(300));
        assert!(e.is_timeout(), "{e}");
        assert_eq!(crate::classify(&e), pool_core::ErrorClass::Timeout);
        let text = crate::classify::error_message(&e);
        assert!(
            text.contains("REDIS_COMMAND_TIMEOUT") && text.contains("0.3 s"),
            "{text}"
        );
    }
}
