//! What every handler shares.

use metrics_exporter_prometheus::PrometheusHandle;
use pool_postgres::PgPool;
use pool_redis::RedisPool;
use std::time::Duration;

/// The service's shared state: both pools and the metrics handle. Cheap to
/// clone (everything inside is reference-counted).
#[derive(Debug, Clone)]
pub struct AppState {
    /// The PostgreSQL pool (component `database`).
    pub pg: PgPool,
    /// The Redis pool (component `redis`).
    pub redis: RedisPool,
    /// Renders the Prometheus text format.
    pub metrics: PrometheusHandle,
    /// Bound on one health probe.
    pub health_timeout: Duration,
    /// Bound on waiting for a Redis connection in request handlers.
    pub cache_timeout: Duration,
}
