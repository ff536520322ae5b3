//! Logging to stderr: one plain line per event, readable in `docker logs`.
//!
//! The attempt lines come from `pool_core::startup`'s tracing events; this
//! formatter puts the target and the attempt number first:
//!
//! ```text
//! wait-for-db: WARN  postgres://app@db:5432/app: attempt 3: not ready: tcp: connect to db:5432 (172.18.0.2:5432) failed: Connection refused (os error 111) (hint: ...) [retry_in_ms=180]
//! ```
//!
//! A warning repeats its hint only when it changed since the target's
//! previous warning, so a long wait does not bury the log in the same
//! advice; errors (the final verdict) always carry theirs.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The variable that overrides the log filter (`RUST_LOG` is left to the
/// application started after the wait).
pub const FILTER_VAR: &str = "WAIT_FOR_DB_LOG";

/// Installs the stderr subscriber: progress and errors by default, errors
/// only with `quiet`.
pub fn init(quiet: bool) {
    let default = if quiet {
        "error"
    } else {
        "warn,pool_core=info,pool_postgres=info,pool_redis=info,wait_for_db=info"
    };
    let filter = std::env::var(FILTER_VAR)
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(Line::default())
        // A closed stderr (`wait-for-db ... 2>&1 | head -1`): tracing would
        // report the failed write with eprintln!, which panics (exit 101).
        .log_internal_errors(false);
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .init();
}

/// The one-line event format.
#[derive(Debug, Default)]
pub struct Line {
    /// The last hint shown in a warning, per target.
    hints: Mutex<HashMap<String, String>>,
}

/// Where a `Failure`'s hint starts in its `Display`.
const HINT: &str = " (hint: ";

impl Line {
    /// `message`, without its hint when it is a warning that repeats the
    /// hint last shown for `target`.
    fn dedupe<'m>(&self, level: Level, target: Option<&str>, message: &'m str) -> &'m str {
        let (Some(target), Some(at)) = (target, message.find(HINT)) else {
            return message;
        };
        if level != Level::WARN {
            return message;
        }
        let hint = &message[at..];
        let mut hints = self.hints.lock().unwrap_or_else(|e| e.into_inner());
        if hints.get(target).map(String::as_str) == Some(hint) {
            return &message[..at];
        }
        hints.insert(target.to_string(), hint.to_string());
        message
    }
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let tag = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARN ",
            Level::INFO => "INFO ",
            Level::DEBUG => "DEBUG",
            Level::TRACE => "TRACE",
        };
        write!(writer, "wait-for-db: {tag} ")?;
        if let Some(target) = &fields.target_url {
            write!(writer, "{target}: ")?;
        }
        if let Some(attempt) = &fields.attempt {
            write!(writer, "attempt {attempt}: ")?;
        }
        let level = *event.metadata().level();
        writer.write_str(self.dedupe(level, fields.target_url.as_deref(), &fields.message))?;
        if !fields.rest.is_empty() {
            write!(writer, " [{}]", fields.rest)?;
        }
        writeln!(writer)
    }
}

/// The fields of one event, sorted into the parts of the line.
#[derive(Debug, Default)]
struct Fields {
    message: String,
    target_url: Option<String>,
    attempt: Option<String>,
    rest: String,
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = value,
            "target_url" => self.target_url = Some(value),
            "attempt" => self.attempt = Some(value),
            // The stage starts every `Failure` message already.
            "stage" => {}
            name => {
                if !self.rest.is_empty() {
                    self.rest.push(' ');
                }
                let _ = write!(self.rest, "{name}={value}");
            }
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_repeat_a_hint_only_when_it_changes() {
        let line = Line::default();
        let a = "not ready: tcp: refused (hint: start it)";
        let b = "not ready: dns: no such name (hint: fix the name)";
        let t = Some("tcp://db:1");
        assert_eq!(line.dedupe(Level::WARN, t, a), a);
        assert_eq!(line.dedupe(Level::WARN, t, a), "not ready: tcp: refused");
        assert_eq!(line.dedupe(Level::WARN, Some("tcp://other:1"), a), a);
        assert_eq!(line.dedupe(Level::WARN, t, b), b);
        assert_eq!(line.dedupe(Level::WARN, t, a), a);
        assert_eq!(line.dedupe(Level::ERROR, t, a), a);
        assert_eq!(line.dedupe(Level::ERROR, t, a), a);
    }
}
