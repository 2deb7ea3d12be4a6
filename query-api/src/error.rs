//! One error type for every handler, rendered as `application/problem+json` (RFC 9457).
//! Client errors say what is wrong and name the parameter; server errors are logged once here
//! and the client only sees a safe message.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

/// The content type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error body (RFC 9457 problem details).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` for plain HTTP statuses).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A query or path parameter is malformed; `detail` names it.
    #[error("{0}")]
    BadRequest(String),
    /// A well-formed body with a value that is not acceptable; `detail` names the field.
    #[error("{0}")]
    Unprocessable(String),
    #[error("missing or unknown API token")]
    Unauthorized,
    #[error("this needs the {0} role or higher")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(String),
    /// The request is valid but conflicts with the resource's state (e.g. a disabled webhook).
    #[error("{0}")]
    Conflict(String),
    /// Any other 4xx with its own status (from axum's rejections: 413, 415, 405...).
    #[error("{1}")]
    Status(StatusCode, String),
    /// A dependency is down (RabbitMQ for retries); safe to show.
    #[error("{0}")]
    Unavailable(String),
    /// Anything unexpected: logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        // SQLSTATE class 22 (data exception: a NUL byte in text, a value out of range) means
        // the client's input could not be stored or compared: a 422, not a server fault.
        if let Some(code) = e.as_database_error().and_then(|d| d.code())
            && code.starts_with("22")
        {
            return Self::Unprocessable(format!(
                "a value is not acceptable (SQLSTATE {code}); check for NUL characters or out-of-range numbers"
            ));
        }
        Self::Internal(anyhow::Error::new(e).context("database"))
    }
}

impl AppError {
    pub fn bad(detail: impl Into<String>) -> Self {
        Self::BadRequest(detail.into())
    }

    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::Unprocessable(detail.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Status(s, _) => *s,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A problem+json response for `status` with `detail`.
pub fn problem_response(status: StatusCode, detail: String) -> Response {
    let title = status.canonical_reason().unwrap_or("Error").to_owned();
    let body = Problem {
        kind: "about:blank".into(),
        title,
        status: status.as_u16(),
        detail,
    };
    let mut res = (status, Json(body)).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    res
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            Self::Internal(e) => {
                // The one place a server error is logged; the client gets no internals.
                tracing::error!(error = format!("{e:#}"), "request failed");
                "an internal error occurred; it has been logged".to_owned()
            }
            Self::Unavailable(d) => {
                tracing::warn!(detail = %d, "dependency unavailable");
                d.clone()
            }
            other => other.to_string(),
        };
        let mut res = problem_response(status, detail);
        if matches!(self, Self::Unauthorized) {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// The answer to a request whose handler panicked (for `CatchPanicLayer`): a 500 problem
/// with the safe message; the panic's text is logged here, once, never shown.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(not a string)".into());
    tracing::error!(panic = %text, "a request handler panicked");
    problem_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "an internal error occurred; it has been logged".into(),
    )
}

/// Result of a handler.
pub type AppResult<T> = Result<T, AppError>;
