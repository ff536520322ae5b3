//! The workloads and their Markdown tables.
//!
//! Every workload measures its rows (pools, no-pool ceiling) in interleaved
//! rounds (A B C, A B C, ...) on the same runtime against the same server,
//! so that noise from the rest of the machine hits every row alike; tables
//! give ratios between rows of the same run.
//!
//! - [`workloads`]: the rows of each workload and their names;
//! - [`measure`](mod@measure): running rows in rounds ([`Row`], [`TimeoutRow`],
//!   [`measure()`], [`measure_timeouts`]);
//! - [`tables`]: the Markdown tables and the facts the goals check;
//! - [`probe`]: process CPU time, load average, machine and server versions.

pub mod measure;
pub mod probe;
pub mod tables;
pub mod workloads;

pub use measure::{
    measure, measure_timeouts, BoxFut, Measured, Plan, Row, TimeoutMeasured, TimeoutRow,
};
pub use probe::{
    cores, loadavg, machine, pg_version, process_cpu, redis_version, set_tokio_workers,
    tokio_workers,
};
pub use tables::{
    bookkeeping_table, exhaustion_table, fmt_dur, goals_table, median_ratio, paired_ratio,
    timeout_table, tls_table, validation_table, BookkeepingFacts, ExhaustionRow, Goal,
    TimeoutFacts, TlsFacts,
};
pub use workloads::{
    bookkeeping_rows, names, pg_rows, pg_tls_rows, pg_validation_rows, redis_rows, redis_tls_rows,
    redis_validation_rows, timeout_rows,
};
