//! Extractors whose rejections are problem+json naming what is wrong, instead of axum's
//! plain-text 400s.

use axum::{
    extract::{FromRequest, FromRequestParts, Request, rejection::JsonRejection},
    http::{StatusCode, request::Parts},
};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::AppError;

/// `axum::Json` with problem+json rejections: 400 for malformed JSON, 422 for a body of the
/// wrong shape (the message names the field), 413 over the body limit, 415 without a JSON
/// content type.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> AppError {
    match &r {
        JsonRejection::JsonDataError(e) => {
            // serde_path_to_error puts the field path first: "name: missing field ..."
            let text = e.body_text();
            let detail = text
                .strip_prefix("Failed to deserialize the JSON body into the target type: ")
                .unwrap_or(&text);
            AppError::unprocessable(format!("request body: {detail}"))
        }
        JsonRejection::JsonSyntaxError(_) => AppError::bad(format!(
            "request body: not valid JSON ({})",
            r.body_text()
                .strip_prefix("Failed to parse the request body as JSON: ")
                .unwrap_or("syntax error")
        )),
        JsonRejection::MissingJsonContentType(_) => AppError::Status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "request body: send it with `content-type: application/json`".into(),
        ),
        _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => AppError::Status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body: larger than the limit of {} bytes",
                crate::BODY_LIMIT_BYTES
            ),
        ),
        _ => AppError::Status(r.status(), format!("request body: {}", r.body_text())),
    }
}

/// Query parameters (axum's `Query`); a string that is not a query string
/// is a 400 naming the problem. Handlers parse each field themselves so errors name it.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Self(q.0))
            .map_err(|e| {
                let text = e.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                AppError::bad(format!("query string: {detail}"))
            })
    }
}

/// The `{id}` path segment as a UUID; anything else is a 400 naming `id`.
pub struct IdPath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| AppError::bad(format!("id: {}", e.body_text())))?;
        Uuid::parse_str(&raw)
            .map(Self)
            .map_err(|_| AppError::bad(format!("id: `{}` is not a UUID", truncate(&raw, 64))))
    }
}

/// At most `max` characters of user input, for error messages.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}
