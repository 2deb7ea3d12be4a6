//! Manual retries: one attempt's delivery (`POST /api/v1/deliveries/{id}/retry`), or every
//! matching delivery that has not succeeded (`POST /api/v1/deliveries/retry`, recovery after
//! downtime). Both only queue jobs on `{ns}.deliveries` (through `hookrelay_shared::manual_retry`);
//! a dispatcher makes the attempts. A disabled (or deleted) webhook's deliveries are not
//! retried: a single retry is a 409, a bulk retry skips and counts them. The bulk form counts
//! its deliveries and stores a durable job that the worker in [`crate::bulk`] publishes.

use axum::{Json, extract::State, http::StatusCode};
use hookrelay_shared::{
    activity,
    event::rfc3339,
    manual_retry::{self, DeliveryRef, ManualRetry, Target},
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    auth::{Admin, Auth},
    bulk::{self, JobFilter},
    deliveries::{Filter, check_range, parse_category, parse_status, parse_time, resolve_q},
    error::{AppError, AppResult},
    extract::{ApiJson, IdPath, truncate},
    problems::{AmqpDown, BadId, CannotRetry, JsonBody, NeedsAdmin, NoSuchAttemptOrDelivery, NoSuchJob},
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
    responses(
        (status = 202, description = "Queued; the attempt appears in the log with trigger manual", body = RetryQueued),
        BadId, NeedsAdmin, AmqpDown, NoSuchAttemptOrDelivery, CannotRetry,
    )
)]
pub async fn retry_one(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    IdPath(id): IdPath,
) -> AppResult<(StatusCode, Json<RetryQueued>)> {
    // Look up first so an unknown id is a 404 (and a disabled webhook a 409) even while
    // RabbitMQ is down.
    let Some(delivery) = manual_retry::find(&state.ctx.db, Target::Either(id)).await? else {
        return Err(AppError::NotFound(format!("no attempt or delivery with id {id}")));
    };
    let webhook_id = check_webhook_live(&state.ctx.db, &delivery).await?;
    if hookrelay_shared::ordering::is_held(&state.ctx.db, delivery.id, delivery.event_received_at).await? {
        return Err(AppError::Conflict(format!(
            "delivery {} is held behind the head of its ordered (fifo) webhook: it is sent in its \
             turn, after the deliveries accepted before it; retry it once it has been attempted",
            delivery.id
        )));
    }
    let channel = state.publisher.channel().await?;
    match manual_retry::retry(
        &state.ctx.db,
        &channel,
        &state.publisher.names,
        Target::Delivery(delivery.id),
    )
    .await
    {
        Ok(ManualRetry::Queued { delivery_id, attempt }) => {
            tracing::info!(%delivery_id, attempt, token_id = %auth.token.id, "manual retry requested");
            activity::record_logged(
                &state.ctx.db,
                &auth.actor(),
                activity::kind::DELIVERY_RETRIED,
                webhook_id,
                serde_json::json!({"delivery_id": delivery_id, "attempt": attempt}),
            )
            .await;
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

/// 409 when the delivery's webhook is disabled or deleted: a dispatcher would not send to it.
/// Returns the webhook's id.
async fn check_webhook_live(db: &sqlx::PgPool, d: &DeliveryRef) -> AppResult<Option<Uuid>> {
    let row: Option<(Uuid, bool, bool)> = sqlx::query_as(
        "SELECT w.id, w.enabled, w.deleted_at IS NOT NULL FROM deliveries d
         JOIN webhooks w ON w.id = d.webhook_id
         WHERE d.id = $1 AND d.event_received_at = $2",
    )
    .bind(d.id)
    .bind(d.event_received_at)
    .fetch_optional(db)
    .await?;
    match row {
        Some((webhook_id, _, true)) => Err(AppError::Conflict(format!(
            "webhook {webhook_id} was deleted; its deliveries can't be retried"
        ))),
        Some((webhook_id, false, false)) => Err(AppError::Conflict(format!(
            "webhook {webhook_id} is disabled; enable it (PATCH enabled: true) before retrying its deliveries"
        ))),
        Some((webhook_id, _, _)) => Ok(Some(webhook_id)),
        None => Ok(None),
    }
}

/// Which deliveries a bulk retry takes. Every field is optional; with none, every delivery
/// that has a failed attempt and has not succeeded is retried.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRetryFilter {
    pub webhook_id: Option<Uuid>,
    /// The status of the matching attempts: only `failed` (the default) selects anything.
    pub status: Option<String>,
    /// RFC 3339: failed attempts at or after this time.
    #[schema(format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339: failed attempts before this time (and never after the request).
    #[schema(format = DateTime)]
    pub until: Option<String>,
    /// Event category, e.g. `license`.
    pub category: Option<String>,
    /// Exact event type.
    pub event_type: Option<String>,
    /// As in the log: a case-insensitive substring of the webhook's name or URL, or of the
    /// event type (resolved when the request is made).
    pub q: Option<String>,
}

/// The answer to a bulk retry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkQueued {
    /// The job that queues them; see `GET /api/v1/deliveries/retry/{job_id}`.
    pub job_id: Uuid,
    /// How many deliveries matched and will be queued (one manual attempt each), counted now.
    pub queued: i64,
    /// Matching deliveries skipped because their webhook is disabled or deleted.
    pub skipped_disabled: i64,
    /// Matching deliveries skipped because an earlier bulk retry queued them and they have
    /// not been attempted since.
    pub skipped_queued: i64,
}

fn parse_bulk(b: &BulkRetryFilter) -> Result<(Filter, Option<String>), AppError> {
    let since = parse_time("since", b.since.as_deref())?;
    let until = parse_time("until", b.until.as_deref())?;
    check_range(since, until)?;
    let status = parse_status(b.status.as_deref())?;
    let event_type = match b.event_type.as_deref() {
        Some(t) if !hookrelay_shared::event::is_valid_type(t) => {
            return Err(AppError::unprocessable(format!(
                "event_type: `{}` is not an event type",
                truncate(t, 40)
            )));
        }
        other => other.map(str::to_owned),
    };
    let q = match b.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        Some(q) if q.chars().count() > crate::deliveries::MAX_Q_LEN => {
            return Err(AppError::unprocessable(format!(
                "q: longer than {} characters",
                crate::deliveries::MAX_Q_LEN
            )));
        }
        Some(q) if q.chars().any(char::is_control) => {
            return Err(AppError::unprocessable("q: contains a control character"));
        }
        other => other.map(str::to_owned),
    };
    let filter = Filter {
        category: parse_category(b.category.as_deref())?,
        event_type,
        // Only failed attempts are ever retried; `status: success` therefore selects nothing.
        status: Some(status.unwrap_or("failed")),
        webhook_id: b.webhook_id,
        response_code: None,
        since,
        until,
    };
    Ok((filter, q))
}

/// Queues a manual attempt of every matching delivery that has not succeeded since, once each,
/// through a durable job.
#[utoipa::path(
    post, path = "/api/v1/deliveries/retry", tag = "deliveries",
    request_body = BulkRetryFilter,
    responses(
        (status = 202, description = "Counted and stored as a job; a worker queues the deliveries in chunks", body = BulkQueued),
        JsonBody, NeedsAdmin,
    )
)]
pub async fn retry_bulk(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiJson(body): ApiJson<BulkRetryFilter>,
) -> AppResult<(StatusCode, Json<BulkQueued>)> {
    let (filter, q) = parse_bulk(&body).map_err(|e| match e {
        AppError::BadRequest(d) => AppError::Unprocessable(d),
        other => other,
    })?;
    let db = &state.ctx.db;
    let q = match q {
        Some(q) => {
            let m = resolve_q(db, &q).await?;
            Some((q, m))
        }
        None => None,
    };
    let job_filter = JobFilter::new(&filter, q, OffsetDateTime::now_utc());
    let counts = bulk::count(db, &job_filter).await?;
    let job_id = bulk::create(db, &job_filter, counts, auth.token.id).await?;
    state.bulk_wakeup.notify_one();
    tracing::info!(%job_id, queued = counts.total, skipped_disabled = counts.skipped_disabled,
        token_id = %auth.token.id, "bulk retry requested");
    activity::record_logged(
        db,
        &auth.actor(),
        activity::kind::BULK_RETRY_REQUESTED,
        job_filter.webhook_id,
        serde_json::json!({"job_id": job_id, "queued": counts.total, "skipped_disabled": counts.skipped_disabled,
            "filter": serde_json::to_value(&body).unwrap_or_default()}),
    )
    .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(BulkQueued {
            job_id,
            queued: counts.total,
            skipped_disabled: counts.skipped_disabled,
            skipped_queued: counts.skipped_queued,
        }),
    ))
}

/// A bulk-retry job and its progress.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkJob {
    pub job_id: Uuid,
    /// `pending`, `running` or `done`.
    pub state: String,
    /// Deliveries counted at the request that the job queues.
    pub total: i64,
    /// Queued so far (confirmed by RabbitMQ).
    pub queued: i64,
    /// Skipped at the request: their webhook is disabled or deleted.
    pub skipped_disabled: i64,
    /// Skipped at the request or while running: already queued by another bulk retry and not
    /// attempted since, succeeded meanwhile, or webhook disabled meanwhile.
    pub skipped: i64,
    /// The filter as stored (`q` resolved, `until` no later than the request).
    #[schema(value_type = Object)]
    pub filter: serde_json::Value,
    /// The last error (e.g. RabbitMQ unreachable); the job is tried again shortly.
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// The progress of a bulk retry.
#[utoipa::path(
    get, path = "/api/v1/deliveries/retry/{job_id}", tag = "deliveries",
    params(("job_id" = Uuid, Path, description = "The `job_id` of the bulk retry")),
    responses(
        (status = 200, description = "The job", body = BulkJob),
        BadId, NeedsAdmin, NoSuchJob,
    )
)]
pub async fn bulk_job(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
    IdPath(id): IdPath,
) -> AppResult<Json<BulkJob>> {
    let Some(j) = bulk::get(&state.ctx.db, id).await? else {
        return Err(AppError::NotFound(format!("no bulk retry job with id {id}")));
    };
    Ok(Json(BulkJob {
        job_id: j.id,
        state: j.state,
        total: j.total,
        queued: j.queued,
        skipped_disabled: j.skipped_disabled,
        skipped: j.skipped,
        filter: j.filter.0,
        error: j.error,
        created_at: rfc3339(j.created_at),
        updated_at: rfc3339(j.updated_at),
        started_at: j.started_at.map(rfc3339),
        finished_at: j.finished_at.map(rfc3339),
    }))
}
