//! The HTTP surface: health endpoints, metrics, and the routes of
//! [`crate::counter`].
//!
//! | route | what |
//! |---|---|
//! | `GET /health/simple` | liveness: 200 while the process serves HTTP; touches no server |
//! | `GET /health` | readiness: every component; 200 when all are `up`, else 503 |
//! | `GET /health/database` | the PostgreSQL component alone; 200 or 503 |
//! | `GET /health/redis` | the Redis component alone; 200 or 503 |
//! | `GET /metrics` | Prometheus text format |
//! | `POST /counter/{name}` | increments a counter in PostgreSQL, caches it in Redis |
//! | `GET /counter/{name}` | reads a counter from Redis, falling back to PostgreSQL |
//! | `GET /slow?ms=N` | holds a PostgreSQL connection for `pg_sleep(N ms)` (shutdown demos) |

use crate::counter;
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use pool_core::{HealthReport, HealthStatus};
use serde::Serialize;
use std::collections::BTreeMap;

/// The Prometheus text exposition format's content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every route of the service.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health/simple", get(health_simple))
        .route("/health", get(health_all))
        .route("/health/database", get(health_database))
        .route("/health/redis", get(health_redis))
        .route("/metrics", get(metrics))
        .route(
            "/counter/{name}",
            get(counter::read).post(counter::increment),
        )
        .route("/slow", get(counter::slow))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// `GET /health/simple` body.
#[derive(Serialize)]
struct Alive {
    status: HealthStatus,
}

/// Liveness: answers as long as the process serves HTTP.
async fn health_simple() -> Response {
    no_store(
        StatusCode::OK,
        Json(Alive {
            status: HealthStatus::Up,
        }),
    )
}

/// `GET /health` body.
#[derive(Serialize)]
struct Overall {
    /// The worst component status.
    status: HealthStatus,
    /// Each component's report, by name.
    components: BTreeMap<&'static str, HealthReport>,
}

/// Readiness: probes both servers at once; 200 only when both are up.
async fn health_all(State(st): State<AppState>) -> Response {
    let (database, redis) = tokio::join!(
        st.pg.health(st.health_timeout),
        st.redis.health(st.health_timeout)
    );
    let status = HealthStatus::worst([database.status, redis.status]);
    let components = BTreeMap::from([("database", database), ("redis", redis)]);
    no_store(http_status(status), Json(Overall { status, components }))
}

/// PostgreSQL alone.
async fn health_database(State(st): State<AppState>) -> Response {
    component(st.pg.health(st.health_timeout).await)
}

/// Redis alone.
async fn health_redis(State(st): State<AppState>) -> Response {
    component(st.redis.health(st.health_timeout).await)
}

fn component(report: HealthReport) -> Response {
    no_store(http_status(report.status), Json(report))
}

/// 200 for `up`, 503 for `degraded` and `down`.
fn http_status(status: HealthStatus) -> StatusCode {
    if status.is_up() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// A health answer: never cached, and a 503 says when to ask again.
fn no_store(status: StatusCode, body: impl IntoResponse) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    crate::error::add_retry_after(&mut response);
    response
}

/// Prometheus scrape: refreshes the pools' gauges, then renders.
async fn metrics(State(st): State<AppState>) -> Response {
    st.pg.update_gauges();
    st.redis.update_gauges();
    let body = st.metrics.render();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROMETHEUS_TEXT),
        )],
        body,
    )
        .into_response()
}

async fn not_found() -> AppError {
    AppError::not_found("no such route")
}

/// A known route with another method: a JSON 405 like every other error
/// (axum's own has an empty body). axum adds the `Allow` header.
async fn method_not_allowed() -> AppError {
    AppError::method_not_allowed()
}
