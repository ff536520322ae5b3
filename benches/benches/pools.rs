//! Criterion benches: our pools side by side with raw deadpool-postgres,
//! raw bb8-redis, raw deadpool / bb8 and no pool.
//!
//! One criterion iteration = one operation (checkout → one round trip →
//! return) done by one of N concurrent tasks: `iter_custom(iters)` runs N
//! tasks until `iters` operations are done in all and returns the wall
//! time, so criterion's time is wall time per operation and its throughput
//! (elements = operations) is operations per second. Checkout-wait
//! distributions and starvation come from the `report` binary, which shares
//! the driver.
//!
//! Each group starts its own private server once (pool-testkit). With
//! `--test` (`cargo bench -- --test`), criterion runs one iteration per
//! bench and the pool warm-ups are skipped.

use benches::driver::Stop;
use benches::report::{self, Row, TimeoutRow};
use benches::subjects::Hold;
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use pool_testkit::{
    HbaTls, PgOptions, PgServer, PgTls, RedisOptions, RedisServer, RedisTls, TestCerts, TLS_HOST,
};
use std::time::Duration;
use tokio::runtime::Runtime;

/// How long the pools are warmed (connections opened) before a task count.
const WARMUP: Duration = Duration::from_millis(200);
/// `pool_timeout` of the timeout group.
const TIMEOUT: Duration = Duration::from_millis(50);

fn bench_rows(c: &mut Criterion, rt: &Runtime, group: &str, rows: &[Row], tasks: &[usize]) {
    let test_mode = benches::criterion_test_mode();
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1))
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for &n in tasks {
        if !test_mode {
            rt.block_on(async {
                for row in rows {
                    row.run(n, Stop::Window(WARMUP), false).await;
                }
            });
        }
        for row in rows {
            g.bench_with_input(BenchmarkId::new(&row.id, n), &n, |b, &n| {
                b.to_async(rt).iter_custom(|iters| {
                    let run = row.run(n, Stop::Ops(iters), false);
                    async move {
                        let stats = run.await;
                        assert_eq!(stats.errors, 0, "{}", stats.first_error.unwrap_or_default());
                        stats.elapsed
                    }
                })
            });
        }
    }
    g.finish();
}

fn exhaustion_postgres(c: &mut Criterion) {
    let server = PgServer::start().expect("start PostgreSQL");
    let rt = benches::runtime();
    let rows = rt.block_on(report::pg_rows(&server.url()));
    bench_rows(c, &rt, "exhaustion/postgres", &rows, &[8, 64, 256]);
}

fn exhaustion_redis(c: &mut Criterion) {
    let server = RedisServer::start().expect("start Redis");
    let rt = benches::runtime();
    let rows = rt.block_on(report::redis_rows(&server.url()));
    bench_rows(c, &rt, "exhaustion/redis", &rows, &[8, 64, 256]);
}

fn validation_postgres(c: &mut Criterion) {
    let server = PgServer::start().expect("start PostgreSQL");
    let rt = benches::runtime();
    let rows = report::pg_validation_rows(&server.url());
    bench_rows(c, &rt, "validation/postgres", &rows, &[1, 64]);
}

fn validation_redis(c: &mut Criterion) {
    let server = RedisServer::start().expect("start Redis");
    let rt = benches::runtime();
    let rows = rt.block_on(report::redis_validation_rows(&server.url()));
    bench_rows(c, &rt, "validation/redis", &rows, &[1, 64]);
}

/// Plaintext and TLS rows side by side (see `report::pg_tls_rows`).
fn tls_postgres(c: &mut Criterion) {
    let certs = TestCerts::generate().expect("test certificates");
    let server = PgServer::start_with(PgOptions {
        tls: Some(PgTls::new(&certs, HbaTls::SslOrPlain)),
        ..PgOptions::default()
    })
    .expect("start PostgreSQL with TLS");
    let rt = benches::runtime();
    let rows = report::pg_tls_rows(&server.url_at(TLS_HOST), &certs.ca());
    bench_rows(c, &rt, "tls/postgres", &rows, &[64]);
}

/// Plaintext and TLS rows side by side (see `report::redis_tls_rows`).
fn tls_redis(c: &mut Criterion) {
    let certs = TestCerts::generate().expect("test certificates");
    let plain = RedisServer::start().expect("start Redis");
    let tls = RedisServer::start_with(RedisOptions {
        tls: Some(RedisTls::new(&certs, false)),
        ..RedisOptions::default()
    })
    .expect("start Redis with TLS");
    let rt = benches::runtime();
    let url = tls.tls_url().expect("a rediss:// URL");
    let rows = rt.block_on(report::redis_tls_rows(&plain.url(), &url, &certs.ca()));
    bench_rows(c, &rt, "tls/redis", &rows, &[64]);
}

fn bookkeeping(c: &mut Criterion) {
    let rt = benches::runtime();
    // 1 task: checkout and return back to back; 64 tasks: each holds its
    // connection across one `yield_now()` so that the tasks contend.
    for (tasks, hold) in [(1, Hold::Nothing), (64, Hold::Yield)] {
        let rows = rt.block_on(report::bookkeeping_rows(hold));
        bench_rows(c, &rt, "bookkeeping", &rows, &[tasks]);
    }
}

fn timeout(c: &mut Criterion) {
    let rt = benches::runtime();
    let rows: Vec<TimeoutRow> = rt.block_on(report::timeout_rows(TIMEOUT, None));
    let mut g = c.benchmark_group("timeout");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(1));
    for row in &rows {
        g.bench_function(BenchmarkId::new(&row.id, "50ms"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let row = row.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let took = row.try_once().await.expect("checkout times out");
                        if row.id.starts_with("ours") {
                            assert!(took >= TIMEOUT, "{} fired early: {took:?}", row.name);
                        }
                        total += took;
                    }
                    total
                }
            })
        });
    }
    g.finish();
}

criterion_group!(
    pools,
    exhaustion_postgres,
    exhaustion_redis,
    validation_postgres,
    validation_redis,
    tls_postgres,
    tls_redis,
    bookkeeping,
    timeout
);
criterion_main!(pools);
