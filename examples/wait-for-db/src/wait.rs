//! Waiting for every target at once, with signals and a final report.

use crate::exit;
use crate::targets::{Kind, Target};
use pool_core::startup::{Failure, WaitError, WaitOptions};
use serde::Serialize;
use std::io;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::task::JoinSet;

/// The signals that end a wait: `SIGTERM` (`docker stop`), `SIGINT`
/// (Ctrl-C), `SIGHUP` and `SIGQUIT`. Installed before the first attempt,
/// so as PID 1 of a container (where unhandled signals are ignored) the
/// wait still stops at once.
#[derive(Debug)]
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
    quit: Signal,
}

/// A signal that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caught {
    /// Its number.
    pub number: i32,
    /// Its name.
    pub name: &'static str,
}

impl Signals {
    /// Installs the handlers (needs a tokio runtime).
    pub fn install() -> io::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            quit: signal(SignalKind::quit())?,
        })
    }

    /// The next signal.
    pub async fn recv(&mut self) -> Caught {
        let (kind, name) = tokio::select! {
            _ = self.term.recv() => (SignalKind::terminate(), "SIGTERM"),
            _ = self.int.recv() => (SignalKind::interrupt(), "SIGINT"),
            _ = self.hup.recv() => (SignalKind::hangup(), "SIGHUP"),
            _ = self.quit.recv() => (SignalKind::quit(), "SIGQUIT"),
        };
        Caught {
            number: kind.as_raw_value(),
            name,
        }
    }
}

/// How long an attempt may run past the deadline before it is abandoned.
const DEADLINE_GRACE: Duration = Duration::from_millis(250);

/// How one target's wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It answered.
    Ready,
    /// The deadline passed (or the single `--once` attempt failed).
    NotReady,
    /// An error waiting cannot fix.
    Fatal,
    /// Its wait was stopped: another target failed fatally, a signal
    /// arrived, or an attempt was still running well past the deadline.
    Cancelled,
}

/// One target in the final report.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// The target, redacted.
    pub target: String,
    /// Its kind.
    pub kind: Kind,
    /// How its wait ended.
    pub outcome: Outcome,
    /// Attempts made (`null` when cancelled mid-wait).
    pub attempts: Option<u32>,
    /// Time spent on it.
    pub waited_ms: u64,
    /// The last failure (`null` when ready or cancelled).
    pub last_failure: Option<Failure>,
}

/// The final report (`--json` prints it on stdout).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `ready`, `timeout`, `not_ready` (`--once`), `fatal` or `interrupted`.
    pub outcome: &'static str,
    /// The exit code (before an exec replaces the process).
    pub exit_code: i32,
    /// Time from the start of the wait.
    pub waited_ms: u64,
    /// The signal that interrupted the wait, if any.
    pub signal: Option<&'static str>,
    /// Each target, in the order given.
    pub targets: Vec<TargetReport>,
}

/// Waits for every target in parallel until all are ready, one fails
/// fatally, the deadline passes or a signal arrives.
pub async fn wait_all(targets: &[Target], opts: &WaitOptions, signals: &mut Signals) -> Report {
    let start = Instant::now();
    let mut set = JoinSet::new();
    for (i, target) in targets.iter().enumerate() {
        let target = target.clone();
        let opts = opts.clone();
        set.spawn(async move { (i, target.wait(&opts).await) });
    }
    let mut reports: Vec<Option<TargetReport>> = vec![None; targets.len()];
    let mut caught = None;
    // Each stage of an attempt is bounded by the time left, but the stages
    // add up: past the deadline (and a little grace) stop whatever still runs.
    let overrun = async {
        match opts.deadline {
            Some(d) => tokio::time::sleep_until((start + d + DEADLINE_GRACE).into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(overrun);
    loop {
        tokio::select! {
            biased;
            sig = signals.recv() => {
                caught = Some(sig);
                break;
            }
            () = &mut overrun => break,
            next = set.join_next() => match next {
                None => break,
                Some(Ok((i, result))) => {
                    let report = target_report(&targets[i], result, start);
                    let fatal = report.outcome == Outcome::Fatal;
                    reports[i] = Some(report);
                    if fatal {
                        break;
                    }
                }
                Some(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Some(Err(_)) => break,
            }
        }
    }
    set.abort_all();
    let waited_ms = millis(start);
    let targets: Vec<TargetReport> = reports
        .into_iter()
        .zip(targets)
        .map(|(r, t)| {
            r.unwrap_or_else(|| TargetReport {
                target: t.describe(),
                kind: t.kind(),
                outcome: Outcome::Cancelled,
                attempts: None,
                waited_ms,
                last_failure: None,
            })
        })
        .collect();
    let has = |o: Outcome| targets.iter().any(|t| t.outcome == o);
    let (outcome, exit_code) = if let Some(sig) = caught {
        ("interrupted", exit::signal(sig.number))
    } else if has(Outcome::Fatal) {
        ("fatal", exit::FATAL)
    } else if has(Outcome::NotReady) || has(Outcome::Cancelled) {
        if opts.once {
            ("not_ready", exit::NOT_READY)
        } else {
            ("timeout", exit::TIMEOUT)
        }
    } else {
        ("ready", exit::READY)
    };
    Report {
        outcome,
        exit_code,
        waited_ms,
        signal: caught.map(|c| c.name),
        targets,
    }
}

fn target_report(
    target: &Target,
    result: Result<pool_core::startup::Ready, WaitError>,
    start: Instant,
) -> TargetReport {
    let (outcome, attempts, waited_ms, last_failure) = match result {
        Ok(ready) => (Outcome::Ready, ready.attempts, ready.waited_ms, None),
        Err(WaitError::NotReady {
            last,
            attempts,
            waited_ms,
            ..
        }) => (Outcome::NotReady, attempts, waited_ms, Some(last)),
        Err(WaitError::Fatal {
            failure, attempts, ..
        }) => (Outcome::Fatal, attempts, millis(start), Some(failure)),
    };
    TargetReport {
        target: target.describe(),
        kind: target.kind(),
        outcome,
        attempts: Some(attempts),
        waited_ms,
        last_failure,
    }
}

/// Logs the verdict: one line per target that is not ready, so the reason
/// shows even with `--quiet` (fatal errors are logged at error level by
/// `pool_core::startup` itself).
pub fn log_verdict(report: &Report, opts: &WaitOptions) {
    match report.outcome {
        "ready" => tracing::info!(
            "all {} target(s) ready in {:.1}s",
            report.targets.len(),
            report.waited_ms as f64 / 1000.0
        ),
        "interrupted" => tracing::error!(
            "{} received while waiting; exiting with {}",
            report.signal.unwrap_or("signal"),
            report.exit_code
        ),
        _ => {
            for t in &report.targets {
                if t.outcome == Outcome::Cancelled {
                    if report.outcome == "fatal" {
                        tracing::warn!(
                            "{}: wait cancelled: another target failed fatally",
                            t.target
                        );
                    } else {
                        tracing::error!(
                            "{}: still not ready when the deadline passed (an attempt was still running)",
                            t.target
                        );
                    }
                }
                let Some(failure) = &t.last_failure else {
                    continue;
                };
                let attempts = t.attempts.unwrap_or(0);
                match t.outcome {
                    // pool_core::startup logged it at error level already.
                    Outcome::Fatal => {}
                    Outcome::NotReady if opts.once => {
                        tracing::error!("{}: not ready: {failure}", t.target)
                    }
                    Outcome::NotReady => tracing::error!(
                        "{}: still not ready when the deadline ({}) passed, after {attempts} attempt(s); last error: {failure}",
                        t.target,
                        opts.deadline
                            .map(|d| format!("{}s", d.as_secs_f64()))
                            .unwrap_or_else(|| "none".into())
                    ),
                    Outcome::Ready | Outcome::Cancelled => {}
                }
            }
        }
    }
}

fn millis(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}
