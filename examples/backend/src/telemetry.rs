//! Logging (`tracing` to stderr) and metrics (a Prometheus recorder).

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use std::io::IsTerminal;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

/// How often histogram samples are folded in between scrapes, so memory
/// stays bounded however rarely Prometheus scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Logs to stderr; the level comes from `RUST_LOG` (default `info`).
/// `RUST_LOG=info,pool_core=debug` shows connection events and checkout
/// spans.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Installs the Prometheus recorder as the global `metrics` recorder and
/// registers pool-core's metric descriptions. Must run before the pools
/// are built: a pool registers its metric handles when it is created.
///
/// No HTTP listener: `/metrics` renders through the returned handle.
/// Histograms (`*_seconds`) get real buckets instead of summaries.
pub fn install_metrics() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            &pool_core::metrics::SECONDS_BUCKETS,
        )?
        .install_recorder()?;
    pool_core::metrics::register_descriptions();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}
