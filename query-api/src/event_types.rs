//! `GET /api/v1/event-types`: every event type the dispatchers have seen, with its category and
//! when it was last seen (within about a minute: see migration 0600), for the pages' pickers.

use axum::{Json, extract::State};
use hookrelay_shared::event::rfc3339;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::{Admin, Auth},
    deliveries::parse_category,
    error::AppResult,
    extract::ApiQuery,
    problems::{BadQuery, NeedsAdmin},
    state::AppState,
};

/// Most types one answer lists (there are a few hundred in practice).
pub const MAX_TYPES: i64 = 10_000;

/// One event type seen.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventTypeOut {
    #[serde(rename = "type")]
    #[schema(example = "license.assigned")]
    pub event_type: String,
    /// The type's first segment.
    #[schema(example = "license")]
    pub category: String,
    /// When an event of this type was last received (to about a minute).
    pub last_seen_at: String,
    pub first_seen_at: String,
}

/// The event types seen, by type.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventTypeList {
    pub items: Vec<EventTypeOut>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventTypeParams {
    /// Only the types of this category, e.g. `license`.
    pub category: Option<String>,
}

/// The event types seen so far, sorted by type.
#[utoipa::path(
    get, path = "/api/v1/event-types", tag = "portal", operation_id = "list_event_types",
    params(EventTypeParams),
    responses(
        (status = 200, body = EventTypeList),
        BadQuery, NeedsAdmin,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
    ApiQuery(p): ApiQuery<EventTypeParams>,
) -> AppResult<Json<EventTypeList>> {
    let category = parse_category(p.category.as_deref().filter(|c| !c.is_empty()))?;
    let rows: Vec<(String, String, OffsetDateTime, OffsetDateTime)> = sqlx::query_as(
        "SELECT event_type, category, last_seen_at, first_seen FROM event_types
         WHERE $1::text IS NULL OR category = $1 ORDER BY event_type LIMIT $2",
    )
    .bind(category)
    .bind(MAX_TYPES)
    .fetch_all(&state.ctx.db)
    .await?;
    Ok(Json(EventTypeList {
        items: rows
            .into_iter()
            .map(|(event_type, category, last, first)| EventTypeOut {
                event_type,
                category,
                last_seen_at: rfc3339(last),
                first_seen_at: rfc3339(first),
            })
            .collect(),
    }))
}
