//! Network faults through the kit's `FaultProxy`, against our pools (see
//! `pool_contract::faults`).

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
/// pool must still heal. Fails today: `give_back` refreshes `last_ok` on
/// every return, so under load the connection never leaves the bypass
/// window and is never pinged (see docs/reliability.md, "engine finding").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_blackhole_heals_for_a_caller_that_drops_on_timeout() {
    use pool_contract::faults::{self, rig, PoolKind, Profile};
    let p = Profile::ci();
    let s = faults::by_id(&p, "pg-blackhole");
    let f = faults::run(&s, PoolKind::OursCallerDrops, &p).await;
    eprintln!("{}", f.summary());
    rig::assert_bounded(&s, &p, &f);
}
