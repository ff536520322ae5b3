//! Request errors as JSON responses.
//!
//! Every failure becomes `{"error": "...", "class": "..."}` with a status:
//! 400 / 404 / 405 for the caller's mistakes, 500 for a failed statement
//! ([`ErrorClass::Query`]), 503 for anything the servers or the pools cause
//! (timeouts, outages, a closed pool), with `Retry-After` (seconds) so
//! clients and proxies back off instead of retrying at once. Messages go
//! through pool-core's redaction, so no password reaches a response or a
//! log line.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pool_core::error::chain;
use pool_core::{ErrorClass, PoolError};
use pool_redis::redis::RedisError;
use serde::Serialize;

/// A failed request.
#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    class: Option<ErrorClass>,
    message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<ErrorClass>,
}

impl AppError {
    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        AppError {
            status: StatusCode::BAD_REQUEST,
            class: None,
            message: message.into(),
        }
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        AppError {
            status: StatusCode::NOT_FOUND,
            class: None,
            message: message.into(),
        }
    }

    /// 405 Method Not Allowed.
    pub fn method_not_allowed() -> Self {
        AppError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            class: None,
            message: "method not allowed on this route".into(),
        }
    }

    /// An error of a backend, classified by its pool's classifier.
    fn backend(class: ErrorClass, message: String) -> Self {
        let status = match class {
            ErrorClass::Query => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        AppError {
            status,
            class: Some(class),
            message,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<PoolError> for AppError {
    fn from(e: PoolError) -> Self {
        // Checkout errors: timeouts, outages, fatal auth errors, a closed
        // pool. Their messages are already redacted.
        AppError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            class: Some(e.class()),
            message: pool_core::redact::redact_url(&e.to_string()),
        }
    }
}

impl From<tokio_postgres::Error> for AppError {
    fn from(e: tokio_postgres::Error) -> Self {
        AppError::backend(pool_postgres::classify(&e), chain(&e))
    }
}

impl From<RedisError> for AppError {
    fn from(e: RedisError) -> Self {
        AppError::backend(pool_redis::classify(&e), chain(&e))
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::warn!(
                status = self.status.as_u16(),
                class = self.class.map(ErrorClass::as_str),
                error = %self.message,
                "request failed"
            );
        }
        let body = Body {
            error: &self.message,
            class: self.class,
        };
        let mut response = (self.status, Json(body)).into_response();
        add_retry_after(&mut response);
        response
    }
}

/// Seconds a client is told to wait after a 503: about the time the pools
/// need to notice a server is back (connect backoff capped at 1 s).
pub const RETRY_AFTER_SECS: &str = "1";

/// Adds `Retry-After` to a 503.
pub fn add_retry_after(response: &mut Response) {
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
}

/// A query string that does not parse (`/slow?ms=abc`): a JSON 400 naming
/// the parameter, instead of axum's `text/plain` rejection.
impl From<axum::extract::rejection::QueryRejection> for AppError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        AppError::bad_request(e.body_text())
    }
}
