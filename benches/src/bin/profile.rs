//! Runs one bookkeeping subject (counter connection, no I/O) for a number of
//! operations on a current-thread runtime, for profilers:
//!
//! ```text
//! cargo build --release -p benches --bin profile
//! valgrind --tool=callgrind ./target/release/profile ours 1 200000
//! ```
//!
//! Arguments: `ours|ours-upkeep|deadpool|bb8|bb8-tested` (default `ours`;
//! `ours-upkeep`: every upkeep feature on, as the report's row), tasks
//! (default 1; more than 1 holds each connection across a `yield_now()`),
//! operations (default 1000000). Prints ns per operation.

use benches::driver::{run, Stop, Subject};
use benches::report::workloads::upkeep_on;
use benches::subjects::{Bb8CounterPool, DeadpoolCounter, Hold, OursCounter};
use std::sync::Arc;

async fn go<S: Subject>(subject: S, tasks: usize, ops: u64) {
    let subject = Arc::new(subject);
    // Open the connections first.
    run(subject.clone(), tasks, Stop::Ops(1000), false).await;
    let stats = run(subject, tasks, Stop::Ops(ops), false).await;
    println!(
        "{} ops in {:?}: {:.1} ns/op ({} errors)",
        stats.ops,
        stats.elapsed,
        stats.ns_per_op(),
        stats.errors
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "ours".into());
    let tasks: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let ops: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let hold = if tasks > 1 {
        Hold::Yield
    } else {
        Hold::Nothing
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        match which.as_str() {
            "ours" => go(OursCounter::new(hold, |_| {}), tasks, ops).await,
            "ours-upkeep" => go(OursCounter::new(hold, upkeep_on), tasks, ops).await,
            "deadpool" => go(DeadpoolCounter::new(hold, None), tasks, ops).await,
            "bb8" => go(Bb8CounterPool::new(hold, false, None).await, tasks, ops).await,
            "bb8-tested" => go(Bb8CounterPool::new(hold, true, None).await, tasks, ops).await,
            other => {
                eprintln!("unknown subject {other}: ours|ours-upkeep|deadpool|bb8|bb8-tested");
                std::process::exit(2);
            }
        }
    });
}
