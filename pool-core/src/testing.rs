//! Test support: a scriptable fake [`Manager`] for deterministic engine
//! tests.
//!
//! Built for `pool-core`'s own tests and, with the `test-support` feature,
//! for other crates' tests. Never a stand-in for a real server where one
//! matters: it proves the *engine's* logic (every race and await point, with
//! `tokio::time::pause`), while the backend crates prove integration against
//! real PostgreSQL and Redis.
//!
//! Each operation (connect, ping, health check) follows a script: a queue of
//! [`Step`]s taken one per call, then a default step. A step succeeds,
//! fails with an [`ErrorClass`], hangs forever, sleeps first (on tokio's
//! clock, so paused time makes it exact), or waits for a [`Gate`] the test
//! opens. Connections are [`FakeConn`]s that count themselves: the manager
//! knows how many are open right now (dropped = closed), so a test can
//! prove that nothing leaked.

use crate::health::HealthCheck;
use crate::{ErrorClass, Manager};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// A door a scripted step waits behind until the test opens it.
#[derive(Debug, Clone)]
pub struct Gate(Arc<Semaphore>);

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Gate(Arc::new(Semaphore::new(0)))
    }

    /// Lets one waiting (or future) step through.
    pub fn open_one(&self) {
        self.0.add_permits(1);
    }

    /// Lets every step through, now and later.
    pub fn open(&self) {
        self.0.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    async fn pass(&self) {
        self.0.acquire().await.expect("gate never closed").forget();
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

/// What one call of a scripted operation does.
#[derive(Debug, Clone)]
pub enum Step {
    /// Succeeds at once.
    Ok,
    /// Fails at once with an error of this class.
    Fail(ErrorClass),
    /// Never finishes.
    Hang,
    /// Sleeps, then does the inner step.
    After(Duration, Box<Step>),
    /// Waits for the gate, then does the inner step.
    Wait(Gate, Box<Step>),
}

impl Step {
    /// Succeeds after `d`.
    pub fn ok_after(d: Duration) -> Step {
        Step::After(d, Box::new(Step::Ok))
    }

    /// Fails with `class` after `d`.
    pub fn fail_after(d: Duration, class: ErrorClass) -> Step {
        Step::After(d, Box::new(Step::Fail(class)))
    }

    /// Succeeds once `gate` is opened.
    pub fn ok_when(gate: &Gate) -> Step {
        Step::Wait(gate.clone(), Box::new(Step::Ok))
    }

    /// Runs the step.
    async fn run(self) -> Result<(), FakeError> {
        let mut step = self;
        loop {
            step = match step {
                Step::Ok => return Ok(()),
                Step::Fail(class) => return Err(FakeError(class)),
                Step::Hang => std::future::pending().await,
                Step::After(d, next) => {
                    tokio::time::sleep(d).await;
                    *next
                }
                Step::Wait(gate, next) => {
                    gate.pass().await;
                    *next
                }
            }
        }
    }
}

/// The steps of one operation: queued ones first, then the default.
#[derive(Debug)]
struct Script {
    queue: VecDeque<Step>,
    default: Step,
}

impl Script {
    fn new() -> Self {
        Script {
            queue: VecDeque::new(),
            default: Step::Ok,
        }
    }

    fn next(&mut self) -> Step {
        self.queue
            .pop_front()
            .unwrap_or_else(|| self.default.clone())
    }
}

/// The fake's error: carries its class; its text holds a password so tests
/// can prove messages are redacted.
#[derive(Debug)]
pub struct FakeError(pub ErrorClass);

impl std::fmt::Display for FakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fake {} error from postgres://app:hunter2@db/app",
            self.0
        )
    }
}

impl std::error::Error for FakeError {}

/// Simple whole-manager behaviours, for tests that need no script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeMode {
    /// Everything works.
    Ok,
    /// Connects are refused (unavailable).
    Refuse,
    /// Connects fail with a fatal error.
    Fatal,
    /// Connects hang.
    Hang,
    /// Connects work; the health check fails (disconnected).
    CheckFails,
    /// Connects work; the health check hangs.
    CheckHangs,
}

/// Which operation a script belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// [`Manager::connect`].
    Connect,
    /// [`Manager::ping`].
    Ping,
    /// [`HealthCheck::check`].
    Check,
    /// [`Manager::after_connect`].
    Init,
    /// [`Manager::reset`].
    Reset,
}

#[derive(Debug)]
struct Shared {
    /// Connections alive now (created and not yet dropped).
    open: AtomicU64,
    /// Ids of the connections dropped so far, in order.
    closed: Mutex<Vec<u64>>,
}

/// A fake connection: an id that counts itself open until dropped.
#[derive(Debug)]
pub struct FakeConn {
    /// Its id (1, 2, ... in connect order).
    pub id: u64,
    shared: Arc<Shared>,
}

impl Drop for FakeConn {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Relaxed);
        self.shared.closed.lock().unwrap().push(self.id);
    }
}

/// A [`Manager`] whose every operation follows a script.
#[derive(Debug)]
pub struct FakeManager {
    connect: Mutex<Script>,
    ping: Mutex<Script>,
    check: Mutex<Script>,
    init: Mutex<Script>,
    reset: Mutex<Script>,
    /// What `on_return` answers for a connection at its next return (then
    /// it is clean again).
    left: Mutex<std::collections::HashMap<u64, crate::pool::Returned>>,
    /// `(id, how)` of every reset started, in order.
    resets: Mutex<Vec<(u64, crate::pool::Returned)>>,
    /// Ids passed to `on_close`, in order.
    released: Mutex<Vec<u64>>,
    /// Connections the "server" dropped: `is_closed` is true for them.
    dead: Mutex<HashSet<u64>>,
    next: AtomicU64,
    connects: AtomicU64,
    pings: AtomicU64,
    shared: Arc<Shared>,
}

impl FakeManager {
    /// A manager in one of the simple modes.
    pub fn new(mode: FakeMode) -> Self {
        let m = FakeManager {
            connect: Mutex::new(Script::new()),
            ping: Mutex::new(Script::new()),
            check: Mutex::new(Script::new()),
            init: Mutex::new(Script::new()),
            reset: Mutex::new(Script::new()),
            left: Mutex::new(std::collections::HashMap::new()),
            resets: Mutex::new(Vec::new()),
            released: Mutex::new(Vec::new()),
            dead: Mutex::new(HashSet::new()),
            next: AtomicU64::new(1),
            connects: AtomicU64::new(0),
            pings: AtomicU64::new(0),
            shared: Arc::new(Shared {
                open: AtomicU64::new(0),
                closed: Mutex::new(Vec::new()),
            }),
        };
        m.set_mode(mode);
        m
    }

    /// A manager where everything works until scripted otherwise.
    pub fn working() -> Self {
        FakeManager::new(FakeMode::Ok)
    }

    /// Switches to one of the simple modes (the defaults of every script;
    /// queued steps are kept).
    pub fn set_mode(&self, mode: FakeMode) {
        let (connect, check) = match mode {
            FakeMode::Ok => (Step::Ok, Step::Ok),
            FakeMode::Refuse => (Step::Fail(ErrorClass::Unavailable), Step::Ok),
            FakeMode::Fatal => (Step::Fail(ErrorClass::Fatal), Step::Ok),
            FakeMode::Hang => (Step::Hang, Step::Ok),
            FakeMode::CheckFails => (Step::Ok, Step::Fail(ErrorClass::Disconnected)),
            FakeMode::CheckHangs => (Step::Ok, Step::Hang),
        };
        self.set_default(Op::Connect, connect);
        self.set_default(Op::Check, check);
        self.set_default(Op::Ping, Step::Ok);
    }

    fn script(&self, op: Op) -> &Mutex<Script> {
        match op {
            Op::Connect => &self.connect,
            Op::Ping => &self.ping,
            Op::Check => &self.check,
            Op::Init => &self.init,
            Op::Reset => &self.reset,
        }
    }

    /// What every later call of `op` does once its queue is empty.
    pub fn set_default(&self, op: Op, step: Step) {
        self.script(op).lock().unwrap().default = step;
    }

    /// Queues `step` for the next call of `op` (after those already queued).
    pub fn push(&self, op: Op, step: Step) {
        self.script(op).lock().unwrap().queue.push_back(step);
    }

    /// Steps still queued for `op`.
    pub fn queued(&self, op: Op) -> usize {
        self.script(op).lock().unwrap().queue.len()
    }

    /// Drops the steps queued for `op`.
    pub fn clear_queue(&self, op: Op) {
        self.script(op).lock().unwrap().queue.clear();
    }

    /// Marks a connection dead, as if the server had closed it:
    /// `is_closed` is true for it from now on.
    pub fn kill(&self, id: u64) {
        self.dead.lock().unwrap().insert(id);
    }

    /// Makes `on_return` answer `how` at the next return of connection `id`
    /// (as if its caller had left a transaction open, or a request in
    /// flight).
    pub fn leave(&self, id: u64, how: crate::pool::Returned) {
        self.left.lock().unwrap().insert(id, how);
    }

    /// `(id, how)` of every reset started so far, in order.
    pub fn resets(&self) -> Vec<(u64, crate::pool::Returned)> {
        self.resets.lock().unwrap().clone()
    }

    /// Connections alive now (opened and not dropped).
    pub fn open_connections(&self) -> u64 {
        self.shared.open.load(Relaxed)
    }

    /// Ids of the connections dropped so far, in order.
    pub fn closed_ids(&self) -> Vec<u64> {
        self.shared.closed.lock().unwrap().clone()
    }

    /// Ids of the connections passed to `on_close`, in order.
    pub fn released_ids(&self) -> Vec<u64> {
        self.released.lock().unwrap().clone()
    }

    /// Connect calls so far.
    pub fn connects(&self) -> u64 {
        self.connects.load(Relaxed)
    }

    /// Ping calls so far.
    pub fn pings(&self) -> u64 {
        self.pings.load(Relaxed)
    }
}

impl Manager for FakeManager {
    type Connection = FakeConn;
    type Error = FakeError;

    async fn connect(&self) -> Result<FakeConn, FakeError> {
        self.connects.fetch_add(1, Relaxed);
        let step = self.connect.lock().unwrap().next();
        step.run().await?;
        self.shared.open.fetch_add(1, Relaxed);
        Ok(FakeConn {
            id: self.next.fetch_add(1, Relaxed),
            shared: self.shared.clone(),
        })
    }

    async fn ping(&self, conn: &mut FakeConn) -> Result<(), FakeError> {
        self.pings.fetch_add(1, Relaxed);
        let step = self.ping.lock().unwrap().next();
        step.run().await?;
        if self.dead.lock().unwrap().contains(&conn.id) {
            return Err(FakeError(ErrorClass::Disconnected));
        }
        Ok(())
    }

    async fn after_connect(&self, _conn: &mut FakeConn) -> Result<(), FakeError> {
        let step = self.init.lock().unwrap().next();
        step.run().await
    }

    fn on_return(&self, conn: &mut FakeConn) -> crate::pool::Returned {
        self.left
            .lock()
            .unwrap()
            .remove(&conn.id)
            .unwrap_or(crate::pool::Returned::Clean)
    }

    async fn reset(
        &self,
        conn: &mut FakeConn,
        how: crate::pool::Returned,
    ) -> Result<crate::pool::Returned, FakeError> {
        self.resets.lock().unwrap().push((conn.id, how));
        let step = self.reset.lock().unwrap().next();
        step.run().await.map(|()| how)
    }

    fn on_close(&self, conn: &mut FakeConn) {
        self.released.lock().unwrap().push(conn.id);
    }

    fn is_closed(&self, conn: &FakeConn) -> bool {
        self.dead.lock().unwrap().contains(&conn.id)
    }

    fn classify(&self, error: &FakeError) -> ErrorClass {
        error.0
    }

    fn target(&self) -> String {
        "fake://app:hunter2@db/app".into()
    }
}

impl HealthCheck for FakeManager {
    async fn check(&self, _conn: &mut FakeConn) -> Result<(), FakeError> {
        let step = self.check.lock().unwrap().next();
        step.run().await
    }
}
