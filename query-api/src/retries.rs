//! Manual retries: one attempt's delivery (`POST /api/v1/deliveries/{id}/retry`), or every
//! matching delivery that has not succeeded (`POST /api/v1/deliveries/retry`, recovery after
//! downtime). Both only queue jobs on `{ns}.deliveries` (through `hookrelay_shared::manual_retry`);
//! a dispatcher makes the attempts. The bulk form selects its deliveries with one SQL statement,
//! answers with the count, and publishes in confirmed batches in a background task.

use axum::{Json, extract::State, http::StatusCode};
use hookrelay_shared::manual_retry::{self, DeliveryRef, ManualRetry, Target};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    auth::{Admin, Auth},
    deliveries::{Filter, check_range, parse_category, parse_status, parse_time, push_filter},
    error::{AppError, AppResult, Problem},
    extract::{ApiJson, IdPath},
    state::AppState,
};

/// The answer to a single retry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetryQueued {
    pub delivery_id: Uuid,
    pub queued: bool,
}

/// Queues an immediate manual attempt of the delivery the attempt `id` belongs to.
#[utoipa::path(
    post, path = "/api/v1/deliveries/{id}/retry", tag = "deliveries",
    params(("id" = Uuid, Path, description = "An attempt id (a delivery id is accepted too)")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued; the attempt appears in the log with trigger manual", body = RetryQueued),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such attempt or delivery", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "RabbitMQ is unreachable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn retry_one(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    IdPath(id): IdPath,
) -> AppResult<(StatusCode, Json<RetryQueued>)> {
    // Look up first so an unknown id is a 404 even while RabbitMQ is down.
    if manual_retry::find(&state.ctx.db, Target::Either(id))
        .await?
        .is_none()
    {
        return Err(AppError::NotFound(format!("no attempt or delivery with id {id}")));
    }
    let channel = state.publisher.channel().await?;
    match manual_retry::retry(
        &state.ctx.db,
        &channel,
        &state.publisher.names,
        Target::Either(id),
    )
    .await
    {
        Ok(ManualRetry::Queued { delivery_id, attempt }) => {
            tracing::info!(%delivery_id, attempt, token_id = %auth.token.id, "manual retry requested");
            Ok((
                StatusCode::ACCEPTED,
                Json(RetryQueued {
                    delivery_id,
                    queued: true,
                }),
            ))
        }
        Ok(ManualRetry::NotFound) => Err(AppError::NotFound(format!("no attempt or delivery with id {id}"))),
        Err(manual_retry::ManualRetryError::Publish(e)) => {
            state.publisher.reset().await;
            tracing::warn!(error = %e, "publishing a manual retry failed");
            Err(AppError::Unavailable(
                "the retry could not be queued (RabbitMQ); try again".into(),
            ))
        }
        Err(manual_retry::ManualRetryError::Db(e)) => Err(e.into()),
    }
}

/// Which deliveries a bulk retry takes. Every field is optional; with none, every delivery
/// that has a failed attempt and has not succeeded is retried.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRetryFilter {
    pub webhook_id: Option<Uuid>,
    /// The status of the matching attempts: only `failed` (the default) selects anything.
    pub status: Option<String>,
    /// RFC 3339: failed attempts at or after this time.
    #[schema(format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339: failed attempts before this time.
    #[schema(format = DateTime)]
    pub until: Option<String>,
    /// Event category, e.g. `license`.
    pub category: Option<String>,
    /// Exact event type.
    pub event_type: Option<String>,
}

/// The answer to a bulk retry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkQueued {
    /// How many deliveries are being queued (one manual attempt each).
    pub queued: u64,
}

fn parse_bulk(b: &BulkRetryFilter) -> Result<Filter, AppError> {
    let since = parse_time("since", b.since.as_deref())?;
    let until = parse_time("until", b.until.as_deref())?;
    check_range(since, until)?;
    let status = parse_status(b.status.as_deref())?;
    let event_type = match b.event_type.as_deref() {
        Some(t) if !hookrelay_shared::event::is_valid_type(t) => {
            return Err(AppError::unprocessable(format!(
                "event_type: `{}` is not an event type",
                crate::extract::truncate(t, 40)
            )));
        }
        other => other.map(str::to_owned),
    };
    Ok(Filter {
        category: parse_category(b.category.as_deref())?,
        event_type,
        // Only failed attempts are ever retried; `status: success` therefore selects nothing.
        status: Some(status.unwrap_or("failed")),
        webhook_id: b.webhook_id,
        response_code: None,
        since,
        until,
    })
}

/// One statement: every delivery (once) with a matching failed attempt that has not succeeded.
fn bulk_query(f: &Filter) -> QueryBuilder<Postgres> {
    let mut qb = QueryBuilder::new(
        "SELECT d.id, d.event_received_at, d.attempt_count FROM deliveries d
         WHERE d.state <> 'succeeded'
           AND (d.id, d.event_received_at) IN (SELECT a.delivery_id, a.event_received_at FROM attempts a WHERE TRUE",
    );
    push_filter(&mut qb, f);
    qb.push(") ORDER BY d.id");
    qb
}

/// Queues a manual attempt of every matching delivery that has not succeeded since, once each.
#[utoipa::path(
    post, path = "/api/v1/deliveries/retry", tag = "deliveries",
    request_body = BulkRetryFilter,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Counted; the jobs are published in the background", body = BulkQueued),
        (status = 400, description = "The body is not JSON or a value is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (the detail names it)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "RabbitMQ is unreachable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn retry_bulk(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiJson(body): ApiJson<BulkRetryFilter>,
) -> AppResult<(StatusCode, Json<BulkQueued>)> {
    let filter = parse_bulk(&body).map_err(|e| match e {
        AppError::BadRequest(d) => AppError::Unprocessable(d),
        other => other,
    })?;
    // Fail before counting when the jobs could not be published anyway.
    let channel = state.publisher.channel().await?;
    let deliveries: Vec<DeliveryRef> = bulk_query(&filter)
        .build_query_as()
        .fetch_all(&state.ctx.db)
        .await?;
    let queued = deliveries.len() as u64;
    tracing::info!(queued, token_id = %auth.token.id, "bulk retry requested");
    if queued > 0 {
        let publisher = state.publisher.clone();
        // The server waits for this task at shutdown (within the grace period).
        state.tasks.spawn(async move {
            let stream = futures::stream::iter(deliveries.into_iter().map(Ok));
            let names = publisher.names.clone();
            match manual_retry::retry_many(stream, &channel, &names).await {
                Ok(n) => tracing::info!(queued = n, "bulk retry published"),
                Err(e) => {
                    publisher.reset().await;
                    tracing::error!(error = %e, "bulk retry stopped before every job was published");
                }
            }
        });
    }
    Ok((StatusCode::ACCEPTED, Json(BulkQueued { queued })))
}
