//! The load driver: `tasks` tasks doing "checkout + one round trip" on a
//! [`Target`] for as long as a fault controller runs, every op bounded by
//! an outer timeout so that a hang is counted, never waited on forever.

use pool_core::PoolCounters;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// What one checkout + round trip ended in.
#[derive(Debug, Clone)]
pub enum OpResult {
    /// The checkout and the round trip worked; `checked_out` is when the
    /// connection was in hand.
    Ok {
        /// When the checkout completed.
        checked_out: Instant,
    },
    /// The checkout failed (timeout, fatal error) with this message.
    CheckoutFailed(String),
    /// The checkout worked, the round trip failed.
    RoundTripFailed {
        /// When the checkout completed.
        checked_out: Instant,
        /// The error.
        error: String,
    },
}

/// A boxed op future.
pub type OpFuture = Pin<Box<dyn Future<Output = OpResult> + Send>>;

/// A pool's gauges, as far as it exposes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Connections open (idle + in use).
    pub open: u32,
    /// Connections checked out.
    pub in_use: u32,
    /// Checkouts queued (0 where the pool does not say).
    pub waiting: u32,
}

/// A pool the driver can load: ours or a raw one.
pub trait Target: Send + Sync + 'static {
    /// Short name for tables (`ours`, `deadpool-postgres`, `bb8-redis`).
    fn name(&self) -> &'static str;
    /// One checkout and one round trip; the round trip is bounded by
    /// `query_timeout` (the caller's own bound, as an application sets a
    /// statement timeout).
    fn op(&self, query_timeout: Duration) -> OpFuture;
    /// The pool's gauges now.
    fn snapshot(&self) -> Snapshot;
    /// The pool's counters, for pools that have ours.
    fn counters(&self) -> Option<PoolCounters> {
        None
    }
    /// The most connections the pool may open.
    fn max_size(&self) -> u32;
    /// Connections the pool keeps when idle.
    fn pool_size(&self) -> u32;
}

/// How the load looks.
#[derive(Debug, Clone)]
pub struct LoadShape {
    /// Concurrent tasks.
    pub tasks: usize,
    /// Pause of each task between two ops.
    pub think: Duration,
    /// The caller's bound on one round trip.
    pub query_timeout: Duration,
    /// The outer bound on a whole op: past it the op counts as hung.
    pub outer_timeout: Duration,
}

/// How an op ended, as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Worked.
    Ok,
    /// The checkout failed.
    CheckoutError,
    /// The checkout worked, the round trip failed.
    RoundTripError,
    /// Ran past the outer timeout (then cancelled).
    Hung,
}

/// One op as recorded.
#[derive(Debug, Clone)]
pub struct OpRecord {
    /// When it started.
    pub start: Instant,
    /// When it ended (or was cancelled as hung).
    pub end: Instant,
    /// When the checkout completed, if it did.
    pub checked_out: Option<Instant>,
    /// How it ended.
    pub outcome: Outcome,
    /// The error, if any.
    pub error: Option<String>,
}

/// Shared switches between the controller and the load tasks.
#[derive(Debug, Default)]
pub struct Gate {
    paused: AtomicBool,
    stop: AtomicBool,
}

impl Gate {
    /// Tasks start no new op until [`Gate::resume`].
    pub fn pause(&self) {
        self.paused.store(true, SeqCst);
    }

    /// Tasks go on.
    pub fn resume(&self) {
        self.paused.store(false, SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stop.load(SeqCst)
    }
}

/// Counts the tasks the fault code spawns, so a test can check that none
/// is left behind.
#[derive(Debug, Clone, Default)]
pub struct Tasks(Arc<AtomicUsize>);

impl Tasks {
    /// Spawns `f` on the current runtime, counted while it lives.
    pub fn spawn<F>(&self, f: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let guard = TaskGuard::new(self.0.clone());
        tokio::spawn(async move {
            let _guard = guard;
            f.await
        })
    }

    /// Tasks spawned through this counter that have not ended.
    pub fn live(&self) -> usize {
        self.0.load(SeqCst)
    }
}

/// Decrements the count when the task ends, is aborted or panics.
struct TaskGuard(Arc<AtomicUsize>);

impl TaskGuard {
    fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, SeqCst);
        TaskGuard(count)
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// A server-side session counter, sampled during the run.
pub trait Monitor: Send + 'static {
    /// Client sessions of the pool under test, `None` when the server does
    /// not answer right now.
    fn sample(&mut self) -> Pin<Box<dyn Future<Output = Option<usize>> + Send + '_>>;
}

/// One sample, given up after a second (a frozen server answers nothing).
pub async fn bounded_sample(monitor: &mut dyn Monitor) -> Option<usize> {
    tokio::time::timeout(Duration::from_secs(1), monitor.sample())
        .await
        .ok()
        .flatten()
}

/// What [`drive`] saw.
#[derive(Debug, Default)]
pub struct DriveResult {
    /// Every op.
    pub ops: Vec<OpRecord>,
    /// Load tasks that panicked.
    pub panics: usize,
    /// Load tasks that did not end within the outer timeout after the stop.
    pub stuck: usize,
    /// The most sessions sampled on the server.
    pub sessions_max: Option<usize>,
    /// Successful session samples.
    pub session_samples: usize,
}

/// How often the session monitor samples.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// Runs the load until `controller` completes, then stops the tasks and
/// collects every op. The monitor (if any) samples the server meanwhile.
pub async fn drive<C: Send>(
    target: Arc<dyn Target>,
    shape: &LoadShape,
    gate: Arc<Gate>,
    tasks: &Tasks,
    monitor: Option<&mut dyn Monitor>,
    controller: impl Future<Output = C> + Send,
) -> (DriveResult, C) {
    let records: Arc<Mutex<Vec<OpRecord>>> = Arc::default();
    let mut handles = Vec::new();
    for _ in 0..shape.tasks {
        let (target, gate, records) = (target.clone(), gate.clone(), records.clone());
        let shape = shape.clone();
        handles.push(tasks.spawn(async move {
            while !gate.stopped() {
                if gate.paused.load(SeqCst) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                let rec = one_op(target.as_ref(), &shape).await;
                records.lock().unwrap().push(rec);
                tokio::time::sleep(shape.think).await;
            }
        }));
    }

    let sampling = AtomicBool::new(true);
    let sampler = async {
        let mut max: Option<usize> = None;
        let mut samples = 0;
        if let Some(m) = monitor {
            while sampling.load(SeqCst) {
                if let Some(n) = bounded_sample(m).await {
                    samples += 1;
                    max = Some(max.map_or(n, |x| x.max(n)));
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        }
        (max, samples)
    };
    let run = async {
        let out = controller.await;
        gate.stop.store(true, SeqCst);
        let limit = shape.outer_timeout + shape.think + Duration::from_secs(1);
        let (panics, stuck) = join_load(handles, limit).await;
        sampling.store(false, SeqCst);
        (out, panics, stuck)
    };
    let ((max, samples), (out, panics, stuck)) = tokio::join!(sampler, run);
    let mut ops = std::mem::take(&mut *records.lock().unwrap());
    ops.sort_by_key(|r| r.start);
    (
        DriveResult {
            ops,
            panics,
            stuck,
            sessions_max: max,
            session_samples: samples,
        },
        out,
    )
}

/// Waits for each load task (told to stop) to end, `limit` at most each,
/// and aborts the ones still running; returns how many panicked and how
/// many were stuck.
pub async fn join_load(handles: Vec<JoinHandle<()>>, limit: Duration) -> (usize, usize) {
    let (mut panics, mut stuck) = (0, 0);
    for h in handles {
        let abort = h.abort_handle();
        match tokio::time::timeout(limit, h).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.is_panic() => panics += 1,
            Ok(Err(_)) => {}
            Err(_) => {
                stuck += 1;
                abort.abort();
            }
        }
    }
    (panics, stuck)
}

/// One op on `target`, bounded by the shape's outer timeout.
pub async fn one_op(target: &dyn Target, shape: &LoadShape) -> OpRecord {
    let start = Instant::now();
    let r = tokio::time::timeout(shape.outer_timeout, target.op(shape.query_timeout)).await;
    let end = Instant::now();
    let (outcome, checked_out, error) = match r {
        Err(_) => (
            Outcome::Hung,
            None,
            Some("hung past the outer bound".into()),
        ),
        Ok(OpResult::Ok { checked_out }) => (Outcome::Ok, Some(checked_out), None),
        Ok(OpResult::CheckoutFailed(e)) => (Outcome::CheckoutError, None, Some(e)),
        Ok(OpResult::RoundTripFailed { checked_out, error }) => {
            (Outcome::RoundTripError, Some(checked_out), Some(error))
        }
    };
    OpRecord {
        start,
        end,
        checked_out,
        outcome,
        error,
    }
}
