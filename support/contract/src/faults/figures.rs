//! Turning a run's op records into the figures the tests assert and the
//! report prints.

use super::driver::{OpRecord, Outcome, Snapshot};
use pool_core::PoolCounters;
use std::time::{Duration, Instant};

/// When the fault hit and when the server was back.
#[derive(Debug, Clone)]
pub struct FaultTimes {
    /// When the fault was injected.
    pub fire: Instant,
    /// When the server was back (restart done, thaw, slots freed...);
    /// `None` if it never came back during the run.
    pub back: Option<Instant>,
    /// What the fault code observed (how long a restart took, whether
    /// `LOADING` was seen...).
    pub notes: Vec<String>,
}

/// How the ops of one run split up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every op.
    pub ops: usize,
    /// Ops that worked.
    pub ok: usize,
    /// Failed ops that were in flight at the fault (started before it, or
    /// during a one-shot kill): these may fail by nature.
    pub in_flight: usize,
    /// Failed ops started after the fault whose checkout worked but whose
    /// first round trip failed: the pool handed out a connection that was
    /// already dead (or not ready).
    pub handout: usize,
    /// Failed checkouts started after the fault that could not have
    /// worked: the server was not back before their `pool_timeout` ran out.
    /// A bounded timeout, as promised.
    pub outage: usize,
    /// Failed checkouts started after the fault although the server was
    /// back in time (with one backoff cap of grace): contract violations.
    pub unexpected: usize,
    /// Ops that ran past the outer bound (`pool_timeout` + validation
    /// timeout + slack) and were cancelled.
    pub hung: usize,
}

impl Counts {
    /// All failed ops, hung ones included.
    pub fn errors(&self) -> usize {
        self.in_flight + self.handout + self.outage + self.unexpected + self.hung
    }

    /// Failed ops that started after the fault, hung ones excluded.
    pub fn after(&self) -> usize {
        self.handout + self.outage + self.unexpected
    }
}

/// Splits the ops of a run (see [`Counts`]).
///
/// - `instant`: the fault is a one-shot kill whose exact moment lies
///   somewhere between `fire` and `back` (a `psql` call terminating
///   sessions), so ops started before `back` count as in flight.
/// - `budget`: the checkout bound (`pool_timeout`).
/// - `grace`: how long after `back` a checkout may take to notice it (one
///   backoff cap plus slack).
pub fn classify(
    ops: &[OpRecord],
    t: &FaultTimes,
    instant: bool,
    budget: Duration,
    grace: Duration,
) -> Counts {
    let cut = if instant {
        t.back.unwrap_or(t.fire)
    } else {
        t.fire
    };
    let mut c = Counts {
        ops: ops.len(),
        ..Counts::default()
    };
    for op in ops {
        match op.outcome {
            Outcome::Ok => c.ok += 1,
            Outcome::Hung => c.hung += 1,
            _ if op.start < cut => c.in_flight += 1,
            Outcome::RoundTripError => c.handout += 1,
            Outcome::CheckoutError => {
                let in_time = t.back.is_some_and(|b| b + grace <= op.start + budget);
                if in_time {
                    c.unexpected += 1;
                } else {
                    c.outage += 1;
                }
            }
        }
    }
    c
}

/// Time from the server being back to the first checkout that completed
/// after it and whose round trip worked.
pub fn recovery(ops: &[OpRecord], t: &FaultTimes) -> Option<Duration> {
    let back = t.back?;
    ops.iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .filter_map(|o| o.checked_out)
        .filter(|c| *c >= back)
        .min()
        .map(|c| c - back)
}

/// How long after the fault the last dead connection was handed out
/// (checkout time of the latest [`Counts::handout`] op).
pub fn handout_last(ops: &[OpRecord], t: &FaultTimes, instant: bool) -> Option<Duration> {
    let cut = if instant {
        t.back.unwrap_or(t.fire)
    } else {
        t.fire
    };
    ops.iter()
        .filter(|o| o.outcome == Outcome::RoundTripError && o.start >= cut)
        .filter_map(|o| o.checked_out)
        .max()
        .map(|c| c.saturating_duration_since(t.fire))
}

/// Up to `n` distinct error messages (cut to 600 characters), in order of
/// first appearance, with how often each appeared.
pub fn error_samples(ops: &[OpRecord], n: usize) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String, String)> = Vec::new();
    for e in ops.iter().filter_map(|o| o.error.as_deref()) {
        // Group by the text without numbers (waited times, pool state).
        let key: String = e
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .take(120)
            .collect();
        if let Some(entry) = out.iter_mut().find(|(_, k, _)| *k == key) {
            entry.0 += 1;
        } else {
            out.push((1, key, e.chars().take(600).collect()));
        }
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.0));
    out.into_iter().take(n).map(|(c, _, m)| (c, m)).collect()
}

/// Everything measured for one pool in one scenario.
#[derive(Debug, Clone)]
pub struct Figures {
    /// The scenario's id.
    pub scenario: &'static str,
    /// The pool (`ours`, `deadpool-postgres`, `bb8-redis`).
    pub pool: &'static str,
    /// What the fault did, as run (durations included).
    pub fault_as_run: String,
    /// How the ops split.
    pub counts: Counts,
    /// Server back → first good checkout.
    pub recovery: Option<Duration>,
    /// Whether the server came back during the run.
    pub healed: bool,
    /// Fault injected → server back.
    pub outage: Option<Duration>,
    /// The pool's gauges after the run (once settled).
    pub end: Snapshot,
    /// Whether the pool got back to its baseline (nothing in use or
    /// waiting, open ≤ pool size) within a few seconds.
    pub settled: bool,
    /// The pool's limit.
    pub max_size: u32,
    /// Most server-side sessions sampled during the run.
    pub sessions_max: Option<usize>,
    /// Server-side sessions after the run.
    pub sessions_end: Option<usize>,
    /// Session samples taken.
    pub session_samples: usize,
    /// Load tasks that panicked.
    pub panics: usize,
    /// Load tasks that did not stop.
    pub stuck: usize,
    /// Tasks of the fault code still alive after the run.
    pub live_tasks: usize,
    /// Our pool's counters after the run.
    pub counters: Option<PoolCounters>,
    /// The most frequent error messages.
    pub errors: Vec<(usize, String)>,
    /// Fault → the last dead connection handed out.
    pub handout_last: Option<Duration>,
    /// What the fault code observed.
    pub notes: Vec<String>,
}

impl Figures {
    /// A one-paragraph summary for logs and assertion messages.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        let mut s = format!(
            "[{} / {}] {}: ops {} ok {}; errors in flight {}, after {} (handout {} (last {} after the fault), outage timeouts {}, unexpected {}); hung {}; \
             recovery {}; outage {}; end open={} in_use={} waiting={} settled={}; sessions max {:?} end {:?} ({} samples); \
             panics {} stuck {} live tasks {}",
            self.scenario,
            self.pool,
            self.fault_as_run,
            c.ops,
            c.ok,
            c.in_flight,
            c.after(),
            c.handout,
            fmt_opt_ms(self.handout_last),
            c.outage,
            c.unexpected,
            c.hung,
            fmt_opt_ms(self.recovery),
            fmt_opt_ms(self.outage),
            self.end.open,
            self.end.in_use,
            self.end.waiting,
            self.settled,
            self.sessions_max,
            self.sessions_end,
            self.session_samples,
            self.panics,
            self.stuck,
            self.live_tasks,
        );
        for n in &self.notes {
            s.push_str("; ");
            s.push_str(n);
        }
        for (count, e) in &self.errors {
            s.push_str(&format!("\n    {count}x {e}"));
        }
        s
    }
}

/// `123 ms` or `-`.
pub fn fmt_opt_ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{} ms", d.as_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(start_ms: u64, outcome: Outcome, base: Instant) -> OpRecord {
        let start = base + Duration::from_millis(start_ms);
        OpRecord {
            start,
            end: start + Duration::from_millis(1),
            checked_out: match outcome {
                Outcome::Ok | Outcome::RoundTripError => Some(start),
                _ => None,
            },
            outcome,
            error: None,
        }
    }

    #[test]
    fn ops_are_split_by_when_they_started() {
        let base = Instant::now();
        let t = FaultTimes {
            fire: base + Duration::from_millis(1000),
            back: Some(base + Duration::from_millis(4000)),
            notes: vec![],
        };
        let budget = Duration::from_secs(2);
        let grace = Duration::from_millis(500);
        let ops = [
            op(0, Outcome::Ok, base),
            op(900, Outcome::RoundTripError, base), // in flight
            op(1100, Outcome::RoundTripError, base), // handout
            op(1200, Outcome::CheckoutError, base), // back 4.0 + 0.5 > 1.2 + 2: outage
            op(2600, Outcome::CheckoutError, base), // 4.5 <= 4.6: unexpected
            op(3000, Outcome::Hung, base),
            op(4100, Outcome::Ok, base),
        ];
        let c = classify(&ops, &t, false, budget, grace);
        assert_eq!(
            c,
            Counts {
                ops: 7,
                ok: 2,
                in_flight: 1,
                handout: 1,
                outage: 1,
                unexpected: 1,
                hung: 1,
            }
        );
        assert_eq!(recovery(&ops, &t), Some(Duration::from_millis(100)));
        // A one-shot kill: everything started before `back` was in flight.
        let c = classify(&ops, &t, true, budget, grace);
        assert_eq!((c.in_flight, c.handout, c.outage), (4, 0, 0));
    }

    #[test]
    fn a_fault_that_never_heals_makes_every_checkout_failure_an_outage() {
        let base = Instant::now();
        let t = FaultTimes {
            fire: base,
            back: None,
            notes: vec![],
        };
        let ops = [op(10, Outcome::CheckoutError, base)];
        let c = classify(&ops, &t, false, Duration::from_secs(1), Duration::ZERO);
        assert_eq!((c.outage, c.unexpected), (1, 0));
        assert_eq!(recovery(&ops, &t), None);
    }
}
