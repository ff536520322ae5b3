//! Both of our pools under load with faults on a schedule; `SOAK_SECONDS`
//! sets the length (default 8 s here; the report runs it for minutes).

use pool_contract::faults::soak::{soak, SoakConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_faults_on_a_schedule() {
    let cfg = SoakConfig::from_env(8.0);
    let f = soak(&cfg).await;
    eprintln!("{}", f.summary());
    f.assert_ok();
}
