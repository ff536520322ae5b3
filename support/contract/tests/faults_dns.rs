//! DNS faults for the startup wait of both backends (see
//! `pool_contract::faults::dns`).

use pool_contract::faults::dns;
use pool_contract::faults::Db;
use std::time::Duration;

const FAILURES: u32 = 3;
const DEADLINE: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_name_that_resolves_late() {
    let f = dns::late(Db::Postgres, FAILURES).await;
    eprintln!("{}", f.summary());
    dns::assert_late(&f, FAILURES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_name_that_resolves_late() {
    let f = dns::late(Db::Redis, FAILURES).await;
    eprintln!("{}", f.summary());
    dns::assert_late(&f, FAILURES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_name_that_never_resolves() {
    let f = dns::never(Db::Postgres, DEADLINE).await;
    eprintln!("{}", f.summary());
    dns::assert_never(&f, DEADLINE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_name_that_never_resolves() {
    let f = dns::never(Db::Redis, DEADLINE).await;
    eprintln!("{}", f.summary());
    dns::assert_never(&f, DEADLINE);
}
