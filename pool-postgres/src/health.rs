//! The PostgreSQL health probe: `SELECT 1` through the pool.
//!
//! The report, the timeout handling and the up/degraded/down rule are
//! pool-core's ([`pool_core::health`]); this module supplies only the
//! operation.
//!
//! ```no_run
//! # async fn demo(pool: pool_postgres::PgPool) {
//! use std::time::Duration;
//! let report = pool.health(Duration::from_secs(2)).await;
//! println!("{}", report.status); // up / degraded / down
//! # }
//! ```

use crate::manager::PgConn;
use crate::manager::PgManager;
pub use pool_core::health::{HealthCheck, HealthReport, HealthStatus};

/// The probe's query: a real round trip through the parser and executor
/// (the pre-ping uses an empty query, which skips both).
pub const PROBE_QUERY: &str = "SELECT 1";

impl HealthCheck for PgManager {
    async fn check(&self, conn: &mut PgConn) -> Result<(), tokio_postgres::Error> {
        conn.simple_query(PROBE_QUERY).await.map(|_| ())
    }
}
