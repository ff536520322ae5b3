//! Measurement: a workload's rows run in interleaved rounds (A B C, A B C,
//! ...) on one runtime against one server, so that noise from the rest of
//! the machine hits every row alike.
//!
//! [`Row`] wraps a subject for the exhaustion, validation and bookkeeping
//! workloads; [`TimeoutRow`] holds every connection of a pool so that each
//! try is one checkout that must time out.

use super::probe::process_cpu;
use crate::driver::{run, RunStats, Stop, Subject};
use crate::subjects::CONNECTIONS;
use pool_core::PoolCounters;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A boxed, sendable future.
pub type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

type RunFn = dyn Fn(usize, Stop, bool) -> BoxFut<RunStats> + Send + Sync;
type CountersFn = dyn Fn() -> PoolCounters + Send + Sync;

/// One row of a workload: a named subject.
#[derive(Clone)]
pub struct Row {
    /// The name shown in tables and bench ids.
    pub name: String,
    /// A short id for criterion (`ours`, `deadpool-fast`, ...).
    pub id: String,
    run: Arc<RunFn>,
    counters: Option<Arc<CountersFn>>,
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row").field("name", &self.name).finish()
    }
}

impl Row {
    /// A row running `subject`.
    pub fn new<S: Subject>(id: &str, name: &str, subject: S) -> Row {
        let subject = Arc::new(subject);
        Row {
            name: name.into(),
            id: id.into(),
            run: Arc::new(move |tasks, stop, record| {
                Box::pin(run(subject.clone(), tasks, stop, record))
            }),
            counters: None,
        }
    }

    /// Also read this pool's counters (pings per checkout).
    pub(crate) fn with_counters(
        mut self,
        f: impl Fn() -> PoolCounters + Send + Sync + 'static,
    ) -> Row {
        self.counters = Some(Arc::new(f));
        self
    }

    /// One run of the driver on this row.
    pub fn run(&self, tasks: usize, stop: Stop, record: bool) -> BoxFut<RunStats> {
        (self.run)(tasks, stop, record)
    }
}

/// How long and how often each row is measured.
#[derive(Debug, Clone)]
pub struct Plan {
    /// One measurement window.
    pub window: Duration,
    /// Interleaved rounds (each row runs `rounds` windows).
    pub rounds: usize,
    /// A run before the rounds that is not counted (opens the connections).
    pub warmup: Duration,
    /// Timed-out checkouts per pool in the timeout workload.
    pub timeout_tries: usize,
    /// `pool_timeout` in the timeout workload.
    pub timeout: Duration,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            window: Duration::from_millis(500),
            rounds: 8,
            warmup: Duration::from_millis(300),
            timeout_tries: 50,
            timeout: Duration::from_millis(50),
        }
    }
}

/// A row's result.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The row's name.
    pub name: String,
    /// Everything the driver saw, all rounds merged.
    pub stats: RunStats,
    /// CPU time of this process (pool, driver, client library) during the
    /// rounds; the server's is not included.
    pub cpu: Duration,
    /// Operations per second of each round, in order.
    pub round_rates: Vec<f64>,
    /// Validation pings per checkout during the rounds (our pools only).
    pub pings_per_checkout: Option<f64>,
}

/// Measures `rows` with `tasks` tasks each: a warm-up, then `plan.rounds`
/// interleaved windows.
pub async fn measure(rows: &[Row], tasks: usize, plan: &Plan, record: bool) -> Vec<Measured> {
    for row in rows {
        row.run(tasks, Stop::Window(plan.warmup), false).await;
    }
    let before: Vec<_> = rows
        .iter()
        .map(|r| r.counters.as_ref().map(|f| f()))
        .collect();
    let mut stats = vec![RunStats::default(); rows.len()];
    let mut cpu = vec![Duration::ZERO; rows.len()];
    let mut rates = vec![Vec::new(); rows.len()];
    for _ in 0..plan.rounds.max(1) {
        for (i, row) in rows.iter().enumerate() {
            let c0 = process_cpu();
            let one = row.run(tasks, Stop::Window(plan.window), record).await;
            cpu[i] += process_cpu().saturating_sub(c0);
            rates[i].push(one.ops_per_sec());
            stats[i].merge(one);
        }
    }
    rows.iter()
        .zip(stats)
        .zip(before)
        .zip(cpu)
        .zip(rates)
        .map(|((((row, stats), before), cpu), round_rates)| {
            let pings = match (&row.counters, before) {
                (Some(f), Some(b)) => {
                    let a = f();
                    let checkouts = a.checkouts - b.checkouts;
                    (checkouts > 0)
                        .then(|| (a.validations - b.validations) as f64 / checkouts as f64)
                }
                _ => None,
            };
            if let Some(e) = &stats.first_error {
                eprintln!("warning: {}: {} errors, first: {e}", row.name, stats.errors);
            }
            Measured {
                name: row.name.clone(),
                stats,
                cpu,
                round_rates,
                pings_per_checkout: pings,
            }
        })
        .collect()
}

/// A pool whose checkouts time out after `T`, for the timeout workload.
#[derive(Clone)]
pub struct TimeoutRow {
    /// The name shown.
    pub name: String,
    /// A short id for criterion.
    pub id: String,
    try_once: Arc<dyn Fn() -> BoxFut<Result<Duration, String>> + Send + Sync>,
    /// Dropping the last clone lets the holder task return the connections.
    _release: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for TimeoutRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutRow")
            .field("name", &self.name)
            .finish()
    }
}

impl TimeoutRow {
    /// Checks out every connection of `subject` and keeps them; each try is
    /// then one checkout that must time out.
    pub async fn new<S: Subject>(id: &str, name: &str, subject: S) -> Result<TimeoutRow, String> {
        let subject = Arc::new(subject);
        // Hold all connections for the row's lifetime, from a task that
        // owns its own reference to the subject.
        let (held_tx, held_rx) = tokio::sync::oneshot::channel();
        let holder = subject.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            for i in 0..CONNECTIONS {
                match holder.checkout(i).await {
                    Ok(c) => held.push(c),
                    Err(e) => {
                        let _ = held_tx.send(Err(e));
                        return;
                    }
                }
            }
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let _ = held_tx.send(Ok(stop_tx));
            let _ = stop_rx.await;
            drop(held);
        });
        let release = held_rx
            .await
            .map_err(|_| "holder task died".to_string())??;
        let try_once = move || -> BoxFut<Result<Duration, String>> {
            let subject = subject.clone();
            Box::pin(async move {
                let t0 = Instant::now();
                match subject.checkout(0).await {
                    Ok(_) => Err("checkout succeeded with every connection held".into()),
                    Err(_) => Ok(t0.elapsed()),
                }
            })
        };
        Ok(TimeoutRow {
            name: name.into(),
            id: id.into(),
            try_once: Arc::new(try_once),
            _release: Arc::new(release),
        })
    }

    /// One checkout that times out; returns how long it took.
    pub fn try_once(&self) -> BoxFut<Result<Duration, String>> {
        (self.try_once)()
    }
}

/// Busy-waits up to 1 ms (a different phase each try) so that tries do not
/// all start at the same point of tokio's 1 ms timer tick.
fn dephase(i: usize) {
    let until = Instant::now() + Duration::from_micros(((i * 137) % 1000) as u64);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// A timeout row's result.
#[derive(Debug, Clone)]
pub struct TimeoutMeasured {
    /// The row's name.
    pub name: String,
    /// How long each timed-out checkout took.
    pub took: Vec<Duration>,
    /// Errors (a checkout that succeeded).
    pub errors: Vec<String>,
}

/// Runs `tries` timed-out checkouts on each row, interleaved.
pub async fn measure_timeouts(rows: &[TimeoutRow], tries: usize) -> Vec<TimeoutMeasured> {
    let mut out: Vec<TimeoutMeasured> = rows
        .iter()
        .map(|r| TimeoutMeasured {
            name: r.name.clone(),
            took: Vec::new(),
            errors: Vec::new(),
        })
        .collect();
    for i in 0..tries {
        for (row, m) in rows.iter().zip(out.iter_mut()) {
            dephase(i);
            match row.try_once().await {
                Ok(d) => m.took.push(d),
                Err(e) => m.errors.push(e),
            }
        }
    }
    out
}
