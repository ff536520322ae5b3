//! The pool contract as executable scenarios.
//!
//! Every promise the pools make — SQLAlchemy's sizing and timeout
//! semantics, FIFO fairness, validation, recovery from restarts, killed
//! sessions, outages and frozen servers — is written once here, generic over
//! a [`Backend`], and run against real PostgreSQL and Redis servers started
//! by `pool-testkit` (see `tests/postgres.rs` and `tests/redis.rs`). The
//! benches and the fault report drive the same [`Backend`]s.

#![warn(missing_docs)]

pub mod backend;
pub mod faults;
pub mod scenarios;
pub mod upkeep;

pub use backend::{Backend, Postgres, Redis};

/// Expands to one `#[tokio::test]` per contract scenario for a backend:
/// `pool_contract::contract_tests!(pool_contract::Postgres);`
#[macro_export]
macro_rules! contract_tests {
    ($backend:ty) => {
        $crate::contract_tests!($backend:
            timeout_after_overflow_is_used_up_and_never_early,
            overflow_is_closed_on_return_to_a_full_pool,
            unlimited_overflow_never_waits,
            a_failed_connect_gives_its_overflow_slot_back,
            one_hanging_connect_does_not_block_others,
            recycle_happens_at_checkout_only,
            waiters_are_served_on_return_and_on_discard,
            waiters_are_served_in_arrival_order,
            no_task_starves_under_64_tasks_on_8_connections,
            validation_is_skipped_inside_the_bypass_window,
            counters_reconcile,
            restart_while_idle_surfaces_no_errors,
            sessions_killed_while_idle_surface_no_errors,
            a_checkout_during_an_outage_succeeds_when_the_server_returns,
            a_frozen_server_gives_a_bounded_error_then_recovers,
            a_wrong_password_is_fatal_at_once,
            a_callers_error_marks_the_connection_broken,
        );
    };
    ($backend:ty: $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::scenarios::$name::<$backend>().await;
            }
        )*
    };
}
