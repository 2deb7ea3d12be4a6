//! One attempt in full (`GET /api/v1/deliveries/{id}`): request, payload and response.

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::rows::{DeliveryItem, ItemRow};
use crate::{
    auth::{Admin, Auth},
    error::{AppError, AppResult},
    extract::IdPath,
    problems::{BadId, NeedsAdmin, NoSuchAttempt},
    state::AppState,
};

/// The request as it was sent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RequestInfo {
    pub url: String,
    /// Always `POST`.
    pub method: String,
    /// Every header sent, the signature headers included.
    #[schema(value_type = Object)]
    pub headers: serde_json::Value,
}

/// The response, when one came.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResponseInfo {
    pub status: i32,
    #[schema(value_type = Object)]
    pub headers: serde_json::Value,
    /// The body, up to 64 KiB.
    pub body: Option<String>,
    /// Whether `body` was cut at 64 KiB.
    pub body_truncated: bool,
    /// More response headers came than are stored (at most 64 names, 16 KiB).
    pub headers_truncated: bool,
}

/// One attempt in full.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub item: DeliveryItem,
    pub request: RequestInfo,
    /// The JSON body that was sent, byte for byte (null once retention purged the event).
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Box<RawValue>>,
    /// Null when no response came (connection refused, timeout...): see `error`.
    pub response: Option<ResponseInfo>,
}

#[derive(sqlx::FromRow)]
struct DetailRow {
    #[sqlx(flatten)]
    item: ItemRow,
    request_url: String,
    request_headers: serde_json::Value,
    response_headers: Option<serde_json::Value>,
    response_body: Option<String>,
    response_body_truncated: bool,
    response_headers_truncated: bool,
    body: Option<String>,
}

/// One attempt in full: request, payload and response.
#[utoipa::path(
    get, path = "/api/v1/deliveries/{id}", tag = "deliveries", operation_id = "get_delivery",
    params(("id" = Uuid, Path, description = "The attempt id")),
    responses(
        (status = 200, description = "The attempt", body = DeliveryDetail),
        BadId, NeedsAdmin, NoSuchAttempt,
    )
)]
pub async fn detail(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
    IdPath(id): IdPath,
) -> AppResult<Json<DeliveryDetail>> {
    let row: Option<DetailRow> = sqlx::query_as(
        "SELECT a.id, a.delivery_id, a.event_id, a.event_type, a.webhook_id, a.status, a.response_code,
                a.error, a.attempt, a.trigger, a.attempted_at, a.duration_ms,
                w.name AS webhook_name, w.url AS webhook_url,
                a.request_url, a.request_headers, a.response_headers, a.response_body,
                a.response_body_truncated, a.response_headers_truncated, e.body
         FROM attempts a
         LEFT JOIN webhooks w ON w.id = a.webhook_id
         LEFT JOIN events e ON e.id = a.event_id AND e.received_at = a.event_received_at
         WHERE a.id = $1
         LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&state.ctx.db)
    .await?;
    let Some(row) = row else {
        return Err(AppError::NotFound(format!("no attempt with id {id}")));
    };
    let response = row.item.response_code.map(|status| ResponseInfo {
        status,
        headers: row.response_headers.unwrap_or_else(|| serde_json::json!({})),
        body: row.response_body,
        body_truncated: row.response_body_truncated,
        headers_truncated: row.response_headers_truncated,
    });
    // The stored body is the exact bytes sent; show them as JSON without re-encoding.
    let payload = row.body.and_then(|b| RawValue::from_string(b).ok());
    Ok(Json(DeliveryDetail {
        request: RequestInfo {
            url: row.request_url,
            method: "POST".into(),
            headers: row.request_headers,
        },
        payload,
        response,
        item: row.item.into(),
    }))
}
