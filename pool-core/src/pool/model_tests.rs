//! Model-based test: random sequences of checkout / return / fail / cancel /
//! detach / close run against the engine (fake manager, paused clock) and
//! against a small reference model of SQLAlchemy's `QueuePool`, compared
//! after every step.
//!
//! The model: `pool_size` idle connections at most, LIFO reuse, overflow up
//! to `max_overflow` closed when returned to a full pool, a checkout past
//! the limit times out, a failed connect opens nothing, a disconnect seen on
//! one connection invalidates every idle one, a closed pool refuses
//! checkouts and closes what comes back. Sequences are drawn from fixed
//! seeds, so a failure names the seed that reproduces it.

use super::*;
use crate::settings::Overflow;
use crate::testing::{FakeConn, FakeError, FakeManager, Op as FakeOp, Step};
use crate::ErrorClass;
use std::time::Duration;

/// The reference model's state.
#[derive(Debug, Default)]
struct Model {
    pool_size: usize,
    max_size: usize,
    /// Idle connection ids, most recently returned last.
    idle: Vec<u64>,
    /// Checked-out connection ids.
    out: Vec<u64>,
    next_id: u64,
    created: u64,
    closed: u64,
    checkouts: u64,
    returns: u64,
    is_closed: bool,
    /// Checked-out connections last proven good before a disconnect: closed
    /// (invalidated) at their next checkout.
    stale: Vec<u64>,
}

#[derive(Debug, Clone, Copy)]
enum Action {
    /// A checkout that may wait 50 ms.
    Checkout,
    /// A checkout while the server refuses connections.
    CheckoutServerDown,
    /// A checkout cancelled while it connects (or waits for a slot).
    CheckoutCancelled,
    /// The caller returns connection `i % out.len()`.
    Return(usize),
    /// The caller saw a disconnect on it and returns it.
    Fail(usize),
    /// The caller detaches it.
    Detach(usize),
    /// The pool is closed.
    Close,
}

fn draw(rng: &mut fastrand::Rng) -> Action {
    match rng.u32(0..100) {
        0..=34 => Action::Checkout,
        35..=39 => Action::CheckoutServerDown,
        40..=44 => Action::CheckoutCancelled,
        45..=79 => Action::Return(rng.usize(0..64)),
        80..=89 => Action::Fail(rng.usize(0..64)),
        90..=95 => Action::Detach(rng.usize(0..64)),
        _ => Action::Close,
    }
}

impl Model {
    /// What a checkout should give: `Some(id)` or `None` (refused).
    fn checkout(&mut self, server_up: bool) -> Option<u64> {
        if self.is_closed || self.out.len() >= self.max_size {
            return None;
        }
        let mut reused = None;
        while let Some(id) = self.idle.pop() {
            if let Some(k) = self.stale.iter().position(|s| *s == id) {
                self.stale.remove(k);
                self.closed += 1;
                continue;
            }
            reused = Some(id);
            break;
        }
        let id = match reused {
            Some(id) => id,
            None if server_up => {
                self.next_id += 1;
                self.created += 1;
                self.next_id
            }
            None => return None,
        };
        self.out.push(id);
        self.checkouts += 1;
        Some(id)
    }

    fn give_back(&mut self, i: usize, how: Action) {
        let id = self.out.remove(i);
        self.returns += 1;
        match how {
            Action::Fail(_) => {
                self.closed += 1 + self.idle.len() as u64;
                self.idle.clear();
                self.stale.retain(|s| *s != id);
                self.stale.extend(self.out.iter().copied());
            }
            Action::Detach(_) => {
                self.closed += 1;
                self.stale.retain(|s| *s != id);
            }
            _ if self.is_closed || self.idle.len() >= self.pool_size => {
                self.closed += 1;
                self.stale.retain(|s| *s != id);
            }
            _ => self.idle.push(id),
        }
    }

    fn close(&mut self) {
        self.is_closed = true;
        self.stale.retain(|s| !self.idle.contains(s));
        self.closed += self.idle.len() as u64;
        self.idle.clear();
    }
}

async fn run(seed: u64, pool_size: u32, overflow: u32, steps: usize) {
    let mut s = PoolSettings::new("model");
    s.pool_size = pool_size;
    s.max_overflow = Overflow::Limited(overflow);
    s.pre_ping = false;
    s.retry.initial = Duration::from_millis(5);
    s.retry.max = Duration::from_millis(10);
    let pool = Pool::new(FakeManager::working(), s);
    let mut model = Model {
        pool_size: pool_size as usize,
        max_size: (pool_size + overflow) as usize,
        ..Model::default()
    };
    let mut out: Vec<Pooled<FakeManager>> = Vec::new();
    let mut detached: Vec<FakeConn> = Vec::new();
    let mut rng = fastrand::Rng::with_seed(seed);
    let wait = Duration::from_millis(50);
    for step in 0..steps {
        let action = draw(&mut rng);
        let ctx = format!("seed {seed}, step {step}: {action:?}");
        match action {
            Action::Checkout | Action::CheckoutServerDown => {
                let up = matches!(action, Action::Checkout);
                if !up {
                    pool.manager()
                        .set_default(FakeOp::Connect, Step::Fail(ErrorClass::Unavailable));
                }
                let got = pool.get_timeout(wait).await;
                pool.manager().set_default(FakeOp::Connect, Step::Ok);
                let want = model.checkout(up);
                assert_eq!(got.as_ref().ok().map(|c| c.id), want, "{ctx}: {got:?}");
                if let Ok(c) = got {
                    out.push(c);
                }
            }
            Action::CheckoutCancelled => {
                pool.manager().push(FakeOp::Connect, Step::Hang);
                let got = tokio::time::timeout(Duration::from_millis(5), pool.get()).await;
                // Only an idle connection can be handed out before the
                // hanging connect is cancelled: like a checkout that cannot
                // connect.
                let want = model.checkout(false);
                match got {
                    Ok(Ok(c)) => {
                        assert_eq!(Some(c.id), want, "{ctx}");
                        out.push(c);
                    }
                    Ok(Err(e)) => assert!(model.is_closed && want.is_none(), "{ctx}: {e}"),
                    Err(_) => assert_eq!(want, None, "{ctx}"),
                }
                // A hang left unused must not outlive the step.
                pool.manager().clear_queue(FakeOp::Connect);
            }
            Action::Return(i) | Action::Fail(i) | Action::Detach(i) => {
                if out.is_empty() {
                    continue;
                }
                let i = i % out.len();
                let mut c = out.remove(i);
                assert_eq!(Some(c.id), model.out.get(i).copied(), "{ctx}");
                match action {
                    Action::Fail(_) => {
                        let e: Result<(), FakeError> = Err(FakeError(ErrorClass::Disconnected));
                        assert!(c.observe(e).is_err());
                        drop(c);
                    }
                    // Kept alive: a detached connection is the caller's.
                    Action::Detach(_) => detached.push(c.detach()),
                    _ => drop(c),
                }
                // A clock tick between steps: a disconnect marks only what
                // was proven good strictly before it.
                tokio::time::sleep(Duration::from_millis(1)).await;
                model.give_back(i, action);
            }
            Action::Close => {
                pool.close();
                model.close();
            }
        }
        compare(&pool, &model, &ctx);
    }
    drop(out);
    compare_counters_only(&pool, &model);
    drop(detached);
}

fn compare(pool: &Pool<FakeManager>, model: &Model, ctx: &str) {
    let s = pool.status();
    let c = &s.counters;
    let open = model.idle.len() + model.out.len();
    assert_eq!(
        s.idle as usize,
        model.idle.len(),
        "{ctx}: {s:?} vs {model:?}"
    );
    assert_eq!(
        s.in_use as usize,
        model.out.len(),
        "{ctx}: {s:?} vs {model:?}"
    );
    assert_eq!(s.open as usize, open, "{ctx}: {s:?} vs {model:?}");
    assert_eq!(c.created, model.created, "{ctx}: {s:?} vs {model:?}");
    assert_eq!(c.closed.total(), model.closed, "{ctx}: {s:?} vs {model:?}");
    assert_eq!(c.checkouts, model.checkouts, "{ctx}");
    assert_eq!(c.returns, model.returns, "{ctx}");
    // Reconciliation.
    assert_eq!(c.checkouts, c.returns + u64::from(s.in_use), "{ctx}");
    assert_eq!(c.created, c.closed.total() + u64::from(s.open), "{ctx}");
    assert_eq!(
        c.connect_attempts,
        c.created + c.connect_failures + c.connects_cancelled,
        "{ctx}: {s:?}"
    );
    assert_eq!(
        u64::from(s.open) + c.closed.detached,
        pool.manager().open_connections(),
        "{ctx}: the fake server's sessions match"
    );
    assert_eq!((s.waiting, s.connecting), (0, 0), "{ctx}");
}

fn compare_counters_only(pool: &Pool<FakeManager>, model: &Model) {
    let s = pool.status();
    assert_eq!(s.in_use, 0);
    assert_eq!(s.counters.checkouts, s.counters.returns);
    assert_eq!(s.counters.checkouts, model.checkouts);
}

#[tokio::test(start_paused = true)]
async fn the_engine_follows_the_queue_pool_model() {
    for seed in 0..300 {
        let pool_size = 1 + (seed % 4) as u32;
        let overflow = (seed / 4 % 3) as u32;
        run(seed, pool_size, overflow, 120).await;
    }
}
