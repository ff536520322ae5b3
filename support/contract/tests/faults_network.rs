//! Network faults through the kit's `FaultProxy`, against our pools (see
//! `pool_contract::faults`).

use pool_contract::faults::{self, rig, PoolKind};

pool_contract::fault_tests!(
    postgres_blackhole => "pg-blackhole",
    redis_blackhole => "redis-blackhole",
    postgres_reset_of_every_connection => "pg-reset",
    redis_reset_of_every_connection => "redis-reset",
    postgres_refused_connections => "pg-refuse",
    redis_refused_connections => "redis-refuse",
    postgres_latency => "pg-latency",
    redis_latency => "redis-latency",
);

/// A caller whose own timeout cancels the future holding the connection
/// (`tokio::time::timeout(d, async { conn.query(..).await })`, or a request
/// timeout layer) does not mark it broken. After a black hole such a
/// PostgreSQL connection has lost a request and never answers again; the
/// pool must still heal: a plain return does not renew the bypass window
/// (only a round trip seen by `Pooled::observe` does), so the connection is
/// pinged, and discarded, once the window since its last proven round trip
/// has passed (see docs/reliability.md, "Findings").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_blackhole_heals_for_a_caller_that_drops_on_timeout() {
    let (s, p, f) = faults::run_ci("pg-blackhole", PoolKind::OursCallerDrops).await;
    rig::assert_bounded(&s, &p, &f);
}
