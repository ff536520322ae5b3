//! The load driver: N tasks looping checkout → one round trip → return.
//!
//! It is generic over a [`Subject`] (a pool, or the no-pool ceiling) and
//! stops either after a number of operations (what a criterion iteration
//! needs: `iters` operations, their wall time) or after a fixed window (what
//! the report needs: throughput, checkout-wait distribution and starved
//! tasks over a few seconds).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Something that checks a connection out and does one round trip on it.
pub trait Subject: Send + Sync + 'static {
    /// What a checkout hands out; returning it = dropping it.
    type Conn<'a>: Send
    where
        Self: 'a;

    /// Checks a connection out. `task` is the calling task's index (the
    /// no-pool ceiling uses it to pick the task's own connection; pools
    /// ignore it).
    fn checkout(&self, task: usize) -> impl Future<Output = Result<Self::Conn<'_>, String>> + Send;

    /// One round trip on a checked-out connection.
    fn round_trip(
        &self,
        conn: &mut Self::Conn<'_>,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// When a run ends.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// After this many operations in all (each task takes a ticket before
    /// every operation).
    Ops(u64),
    /// After this wall time: no task starts an operation once it is over;
    /// operations under way (and checkouts still waiting) finish.
    Window(Duration),
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// Tasks in the run.
    pub tasks: usize,
    /// From the start signal until the last task ended.
    pub elapsed: Duration,
    /// Operations completed (checkout, round trip, return).
    pub ops: u64,
    /// Operations that failed (checkout or round trip error).
    pub errors: u64,
    /// The first error seen, for messages.
    pub first_error: Option<String>,
    /// Operations per task.
    pub per_task_ops: Vec<u64>,
    /// Every checkout wait in nanoseconds (empty unless recorded).
    pub waits_ns: Vec<u64>,
    /// Sum of the times connections were held (round trip + return), in
    /// nanoseconds (0 unless recorded).
    pub held_ns: u128,
    /// Tasks with at most one checkout, worst run (set by [`RunStats::merge`]
    /// from each run's own count).
    pub starved: usize,
}

impl RunStats {
    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        if self.elapsed.is_zero() {
            return 0.0;
        }
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    /// Mean wall time per operation.
    pub fn ns_per_op(&self) -> f64 {
        if self.ops == 0 {
            return f64::NAN;
        }
        self.elapsed.as_nanos() as f64 / self.ops as f64
    }

    /// Mean time a connection was held (round trip + return).
    pub fn mean_held(&self) -> Duration {
        if self.ops == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos((self.held_ns / u128::from(self.ops)) as u64)
    }

    /// Tasks that got at most one checkout in this run.
    fn count_starved(&self) -> usize {
        self.per_task_ops.iter().filter(|&&n| n <= 1).count()
    }

    /// Adds another run of the same workload (rounds of the report).
    pub fn merge(&mut self, other: RunStats) {
        let starved = other.count_starved();
        if self.tasks == 0 {
            self.starved = starved;
        } else {
            self.starved = self.starved.max(starved);
        }
        self.tasks = other.tasks;
        self.elapsed += other.elapsed;
        self.ops += other.ops;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        if self.per_task_ops.len() < other.per_task_ops.len() {
            self.per_task_ops.resize(other.per_task_ops.len(), 0);
        }
        for (a, b) in self.per_task_ops.iter_mut().zip(&other.per_task_ops) {
            *a += b;
        }
        self.waits_ns.extend(other.waits_ns);
        self.held_ns += other.held_ns;
    }

    /// The checkout wait at quantile `q` (0..=1), nearest rank.
    pub fn wait_quantile(&mut self, q: f64) -> Duration {
        quantile(&mut self.waits_ns, q)
    }
}

/// Nearest-rank quantile of nanosecond samples (sorts them).
pub fn quantile(samples: &mut [u64], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    if !samples.is_sorted() {
        samples.sort_unstable();
    }
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    Duration::from_nanos(samples[rank - 1])
}

struct TaskResult {
    ops: u64,
    errors: u64,
    first_error: Option<String>,
    waits_ns: Vec<u64>,
    held_ns: u128,
}

/// Runs `tasks` tasks on the current tokio runtime, each looping checkout →
/// round trip → return until `stop`. With `record`, every checkout wait and
/// hold time is measured (two extra clock reads per operation).
pub async fn run<S: Subject>(subject: Arc<S>, tasks: usize, stop: Stop, record: bool) -> RunStats {
    let tasks = tasks.max(1);
    let tickets = Arc::new(AtomicU64::new(0));
    let over = Arc::new(AtomicBool::new(false));
    // Every task first reaches `ready`; the clock starts; then `gate` lets
    // them all go (a task must not run operations before the clock starts,
    // which it could on a current-thread runtime if it were the barrier's
    // last arrival).
    let ready = Arc::new(tokio::sync::Barrier::new(tasks + 1));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let limit = match stop {
        Stop::Ops(n) => Some(n),
        Stop::Window(_) => None,
    };
    let mut handles = Vec::with_capacity(tasks);
    for task in 0..tasks {
        let subject = subject.clone();
        let tickets = tickets.clone();
        let over = over.clone();
        let ready = ready.clone();
        let gate = gate.clone();
        handles.push(tokio::spawn(async move {
            let mut r = TaskResult {
                ops: 0,
                errors: 0,
                first_error: None,
                waits_ns: Vec::new(),
                held_ns: 0,
            };
            ready.wait().await;
            drop(gate.acquire().await);
            loop {
                let done = match limit {
                    Some(n) => tickets.fetch_add(1, Relaxed) >= n,
                    None => over.load(Relaxed),
                };
                if done {
                    break;
                }
                let outcome = if record {
                    let t0 = Instant::now();
                    match subject.checkout(task).await {
                        Ok(mut conn) => {
                            let t1 = Instant::now();
                            let rt = subject.round_trip(&mut conn).await;
                            drop(conn);
                            let t2 = Instant::now();
                            r.waits_ns.push((t1 - t0).as_nanos() as u64);
                            r.held_ns += (t2 - t1).as_nanos();
                            rt
                        }
                        Err(e) => Err(e),
                    }
                } else {
                    match subject.checkout(task).await {
                        Ok(mut conn) => subject.round_trip(&mut conn).await,
                        Err(e) => Err(e),
                    }
                };
                match outcome {
                    Ok(()) => r.ops += 1,
                    Err(e) => {
                        r.errors += 1;
                        r.first_error.get_or_insert(e);
                        // A failing subject must not spin the run at full
                        // speed; errors are reported, not measured.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
            r
        }));
    }
    ready.wait().await;
    let began = Instant::now();
    gate.add_permits(tasks);
    if let Stop::Window(window) = stop {
        tokio::time::sleep(window).await;
        over.store(true, Relaxed);
    }
    let mut stats = RunStats {
        tasks,
        ..RunStats::default()
    };
    let mut results = Vec::with_capacity(tasks);
    for h in handles {
        results.push(h.await.expect("load task panicked"));
    }
    stats.elapsed = began.elapsed();
    for r in results {
        stats.ops += r.ops;
        stats.errors += r.errors;
        if stats.first_error.is_none() {
            stats.first_error = r.first_error;
        }
        stats.per_task_ops.push(r.ops);
        stats.waits_ns.extend(r.waits_ns);
        stats.held_ns += r.held_ns;
    }
    stats.starved = stats.count_starved();
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(quantile(&mut v, 0.5), Duration::from_nanos(50));
        assert_eq!(quantile(&mut v, 0.99), Duration::from_nanos(99));
        assert_eq!(quantile(&mut v, 1.0), Duration::from_nanos(100));
        assert_eq!(quantile(&mut v, 0.0), Duration::from_nanos(1));
        assert_eq!(quantile(&mut [], 0.5), Duration::ZERO);
    }
}
