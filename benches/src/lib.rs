//! Benchmarks of our pools side by side with raw `deadpool-postgres`, raw
//! `bb8-redis`, raw `deadpool` / `bb8` around a free counter connection, and
//! no pool at all.
//!
//! - [`driver`]: the load driver (N tasks looping checkout → one round trip
//!   → return), generic over a [`driver::Subject`].
//! - [`subjects`]: the pools and the no-pool ceiling as subjects.
//! - [`report`]: the workloads (exhaustion, validation cost, bookkeeping,
//!   timeout precision), measured in interleaved rounds, and the Markdown
//!   tables `docs/benchmarks.md` quotes.
//!
//! Two front ends share them: the criterion bench `benches/pools.rs`
//! (`cargo bench -p benches`; one criterion iteration = one operation done
//! by one of the N concurrent tasks, so criterion's time is wall time per
//! operation) and the `report` binary (`cargo run --release -p benches --bin
//! report`; fixed windows, with checkout-wait distributions and starvation).

pub mod driver;
pub mod report;
pub mod subjects;

/// True when criterion was started with `--test` (`cargo bench -- --test`):
/// one iteration per bench, so server start-up and warm-ups must be short.
pub fn criterion_test_mode() -> bool {
    std::env::args().any(|a| a == "--test")
}

/// The tokio runtime every measurement runs on: multi-threaded with one
/// worker per core (the default), timers and I/O enabled.
pub fn runtime() -> tokio::runtime::Runtime {
    runtime_with(None)
}

/// [`runtime`] with `workers` worker threads instead of one per core.
pub fn runtime_with(workers: Option<usize>) -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        b.worker_threads(n.max(1));
    }
    b.enable_all().build().expect("tokio runtime")
}
