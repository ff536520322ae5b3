//! The pool contract as executable scenarios.
//!
//! Every promise the pools make — SQLAlchemy's sizing and timeout
//! semantics, FIFO fairness, validation, recovery from restarts, killed
//! sessions, outages and frozen servers — is written once here, generic over
//! a [`Backend`], and run against real PostgreSQL and Redis servers started
//! by `pool-testkit` (see `tests/postgres.rs` and `tests/redis.rs`). The
//! benches and the fault report drive the same [`Backend`]s.

pub mod backend;
pub mod scenarios;

pub use backend::{Backend, Postgres, Redis};

/// Expands to one `#[tokio::test]` per scenario for a backend.
#[macro_export]
macro_rules! contract_tests {
    ($backend:ty: $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::scenarios::$name::<$backend>().await;
            }
        )*
    };
}
