//! Fault injection: what a caller of the pool sees, and how fast the pool
//! heals, when the database misbehaves.
//!
//! - [`driver`]: the load: 16 tasks doing "checkout + one round trip" on a
//!   pool of 8, every op bounded by an outer timeout so a hang is counted,
//!   never waited on, while a fault controller runs.
//! - [`targets`]: the pools under load: ours (any [`crate::Backend`]) and
//!   raw `deadpool-postgres` / `bb8-redis` for comparison.
//! - [`scenarios`]: the faults as data (restarts, kill -9, killed sessions,
//!   freezes, `max_connections`, 57P03, `DEBUG SLEEP`, `LOADING`, and the
//!   network faults of the kit's `FaultProxy`) with the timing profile.
//! - [`rig`]: one scenario against one pool: fresh server, load, fault,
//!   then the leak checks; [`rig::assert_contract`] is what the tests
//!   demand of our pool.
//! - `servers`: what the rig and the soak need of a backend beyond
//!   [`crate::Backend`], and the kit's blocking calls; [`pg_faults`] and
//!   [`redis_faults`] provide it, with the faults only one server has.
//! - [`settle`]: after the load, waiting for the pool's baseline and the
//!   server's closed sessions.
//! - [`figures`]: how ops are counted (in flight, dead handouts, bounded
//!   timeouts, unexpected failures, hung) and recovery time.
//! - [`monitor`]: server-side session counts sampled during a run.
//! - [`dns`]: the startup wait with a name that resolves late or never.
//! - [`soak`]: both pools under load for a while with faults on a
//!   schedule: memory, tasks, pool state and counters checked at the end.
//! - [`report`]: the Markdown tables of `fault-report`.

pub mod dns;
pub mod driver;
pub mod figures;
pub mod monitor;
pub mod pg_faults;
pub mod redis_faults;
pub mod report;
pub mod rig;
pub mod scenarios;
pub(crate) mod servers;
pub mod settle;
pub mod soak;
pub mod targets;

pub use figures::Figures;
pub use rig::{assert_contract, run, PoolKind};
pub use scenarios::{by_id, Db, Fault, Profile, Scenario};

/// Runs one scenario against `kind`'s pool with the CI profile and prints
/// the figures; returns the scenario and the profile with them, for the
/// checks.
pub async fn run_ci(id: &str, kind: PoolKind) -> (Scenario, Profile, Figures) {
    let p = Profile::ci();
    let s = by_id(&p, id);
    let f = run(&s, kind, &p).await;
    eprintln!("{}", f.summary());
    (s, p, f)
}

/// Runs one scenario against our pool with the CI profile, prints the
/// figures and checks the contract ([`rig::assert_contract`]).
pub async fn check_ours(id: &str) -> Figures {
    let (s, p, f) = run_ci(id, PoolKind::Ours).await;
    assert_contract(&s, &p, &f);
    f
}

/// Expands to one `#[tokio::test]` per fault scenario id, each running
/// [`check_ours`].
#[macro_export]
macro_rules! fault_tests {
    ($($name:ident => $id:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::faults::check_ours($id).await;
            }
        )*
    };
}
