//! Request errors as JSON responses.
//!
//! Every failure becomes `{"error": "...", "class": "..."}` with a status:
//! 400 / 404 for the caller's mistakes, 500 for a failed statement
//! ([`ErrorClass::Query`]), 503 for anything the servers or the pools cause
//! (timeouts, outages, a closed pool). Messages go through pool-core's
//! redaction, so no password reaches a response or a log line.

use axum::http::StatusCode;
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
        (self.status, Json(body)).into_response()
    }
}
