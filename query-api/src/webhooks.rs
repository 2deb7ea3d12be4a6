//! Webhook management: create, list, get, update, delete, rotate the secret. The secret is in
//! the answer to create and rotate only. Storage and validation are `hookrelay_shared::webhooks`;
//! the shapes the API shows are in `webhook_schemas.rs`.

use axum::{Json, extract::State, http::StatusCode};
use hookrelay_shared::{
    activity,
    retry::RetryPolicySpec,
    webhooks::{self, InvalidField, NewWebhook, Webhook, WebhookPatch},
};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    auth::{Admin, Auth},
    cursor::{decode_time_id, encode_time_id},
    deliveries::parse_limit,
    error::{AppError, AppResult},
    extract::{ApiJson, ApiQuery, IdPath, truncate},
    problems::{BadId, BadQuery, Invalid, JsonBody, JsonBodyById, NeedsAdmin, NotFound},
    state::AppState,
    stats::health_of,
};

#[path = "webhook_schemas.rs"]
mod schemas;

pub use schemas::{WebhookCreate, WebhookListParams, WebhookOut, WebhookPage, WebhookUpdate};

fn invalid(e: InvalidField) -> AppError {
    AppError::unprocessable(e.to_string())
}

/// A policy's durations may not exceed the retention (a retry after its delivery was purged
/// can't be made); 422 naming the field.
fn check_policy_bounds(policy: Option<&RetryPolicySpec>, state: &AppState) -> AppResult<()> {
    match policy {
        Some(p) => p
            .validate_bounds(state.ctx.settings.retention())
            .map_err(|r| AppError::unprocessable(format!("retry_policy: {r}"))),
        None => Ok(()),
    }
}

/// The names of the fields a PATCH sets (for the activity log; never their values, which may
/// be secrets).
fn patched_fields(p: &WebhookPatch) -> Vec<&'static str> {
    [
        ("name", p.name.is_some()),
        ("url", p.url.is_some()),
        ("event_types", p.event_types.is_some()),
        ("retry_policy", p.retry_policy.is_some()),
        ("max_in_flight", p.max_in_flight.is_some()),
        ("rate_limit", p.rate_limit.is_some()),
        ("filter", p.filter.is_some()),
        ("headers", p.headers.is_some()),
        ("signature_scheme", p.signature_scheme.is_some()),
        ("ordering", p.ordering.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, given)| given.then_some(name))
    .collect()
}

/// Records a PATCH: `webhook.enabled`/`webhook.disabled` when it flipped `enabled`, and
/// `webhook.updated` naming the other fields it set.
async fn record_update<R: crate::auth::Required>(
    state: &AppState,
    auth: &Auth<R>,
    w: &Webhook,
    was_enabled: Option<bool>,
    fields: Vec<&'static str>,
) {
    let actor = auth.actor();
    if was_enabled.is_some_and(|e| e != w.enabled) {
        let kind = if w.enabled {
            activity::kind::WEBHOOK_ENABLED
        } else {
            activity::kind::WEBHOOK_DISABLED
        };
        activity::record_logged(&state.ctx.db, &actor, kind, Some(w.id), serde_json::json!({})).await;
    }
    if !fields.is_empty() {
        activity::record_logged(
            &state.ctx.db,
            &actor,
            activity::kind::WEBHOOK_UPDATED,
            Some(w.id),
            serde_json::json!({"fields": fields}),
        )
        .await;
    }
}

fn not_found(id: Uuid) -> AppError {
    AppError::NotFound(format!("no webhook with id {id}"))
}

/// Live webhooks, oldest first.
#[utoipa::path(
    get, path = "/api/v1/webhooks", tag = "webhooks", operation_id = "list_webhooks", params(WebhookListParams),
    responses(
        (status = 200, body = WebhookPage),
        BadQuery, NeedsAdmin,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
    ApiQuery(p): ApiQuery<WebhookListParams>,
) -> AppResult<Json<WebhookPage>> {
    let limit = parse_limit(p.limit.as_deref())?;
    let after = p.cursor.as_deref().map(decode_time_id).transpose()?;
    let mut rows = webhooks::list(&state.ctx.db, after, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = rows
        .last()
        .filter(|_| more)
        .map(|w| encode_time_id(w.created_at, w.id));
    let ids: Vec<Uuid> = rows.iter().map(|w| w.id).collect();
    let mut health = health_of(&state, &ids).await?;
    let items = rows
        .into_iter()
        .map(|w| {
            let h = health.remove(&w.id);
            let mut out = WebhookOut::new(w, None);
            out.health = h;
            out
        })
        .collect();
    Ok(Json(WebhookPage { items, next_cursor }))
}

/// Creates a webhook; the answer holds its secret (shown only here and on rotation).
#[utoipa::path(
    post, path = "/api/v1/webhooks", tag = "webhooks", operation_id = "create_webhook", request_body = WebhookCreate,
    responses(
        (status = 201, body = WebhookOut),
        JsonBody, NeedsAdmin,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiJson(new): ApiJson<NewWebhook>,
) -> AppResult<(StatusCode, Json<WebhookOut>)> {
    new.validate(state.ctx.config.allow_private_targets)
        .map_err(invalid)?;
    check_policy_bounds(new.retry_policy.as_ref(), &state)?;
    let (webhook, keys) = webhooks::create(&state.ctx.db, new).await?;
    tracing::info!(webhook_id = %webhook.id, token_id = %auth.token.id, "webhook created");
    activity::record_logged(
        &state.ctx.db,
        &auth.actor(),
        activity::kind::WEBHOOK_CREATED,
        Some(webhook.id),
        serde_json::json!({"name": webhook.name, "url": webhook.url, "event_types": webhook.event_types,
            "enabled": webhook.enabled}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(WebhookOut::new(webhook, Some(&keys)))))
}

/// One webhook (without its secret).
#[utoipa::path(
    get, path = "/api/v1/webhooks/{id}", tag = "webhooks", operation_id = "get_webhook", params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = WebhookOut),
        BadId, NeedsAdmin, NotFound,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
    IdPath(id): IdPath,
) -> AppResult<Json<WebhookOut>> {
    let w = webhooks::get(&state.ctx.db, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let mut out = WebhookOut::new(w, None);
    out.health = health_of(&state, &[id]).await?.remove(&id);
    Ok(Json(out))
}

/// Changes the given fields; the dispatchers pick the change up at once.
#[utoipa::path(
    patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", operation_id = "update_webhook", params(("id" = Uuid, Path)),
    request_body = WebhookUpdate,
    responses(
        (status = 200, body = WebhookOut),
        JsonBodyById, NeedsAdmin, NotFound,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    IdPath(id): IdPath,
    ApiJson(patch): ApiJson<WebhookPatch>,
) -> AppResult<Json<WebhookOut>> {
    patch
        .validate(state.ctx.config.allow_private_targets)
        .map_err(invalid)?;
    check_policy_bounds(patch.retry_policy.as_ref().and_then(Option::as_ref), &state)?;
    let fields = patched_fields(&patch);
    let was_enabled = webhooks::get(&state.ctx.db, id).await?.map(|w| w.enabled);
    let webhooks::Updated {
        webhook: w,
        keys,
        released,
    } = webhooks::update_full(&state.ctx.db, id, patch)
        .await?
        .ok_or_else(|| not_found(id))?;
    tracing::info!(webhook_id = %id, token_id = %auth.token.id, "webhook updated");
    if !released.is_empty() {
        tracing::info!(webhook_id = %id, released = released.len(),
            "ordering set to none: the held deliveries are released");
        state.health.schedule(&released).await;
    }
    record_update(&state, &auth, &w, was_enabled, fields).await;
    Ok(Json(WebhookOut::new(w, Some(&keys))))
}

/// Deletes a webhook: it gets nothing more; its attempts stay in the log.
#[utoipa::path(
    delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", operation_id = "delete_webhook", params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        BadId, NeedsAdmin, NotFound,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    IdPath(id): IdPath,
) -> AppResult<StatusCode> {
    if !webhooks::delete(&state.ctx.db, id).await? {
        return Err(not_found(id));
    }
    tracing::info!(webhook_id = %id, token_id = %auth.token.id, "webhook deleted");
    activity::record_logged(
        &state.ctx.db,
        &auth.actor(),
        activity::kind::WEBHOOK_DELETED,
        Some(id),
        serde_json::json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of rotate-secret (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// A key of your own (`whsec_` or `whsk_`, of a kind the webhook's scheme uses); the
    /// others are generated.
    pub secret: Option<String>,
    /// How long the previous secrets keep signing beside the new one: `24h` (the default),
    /// at most `7d`; `0s` stops them at once (for a leaked secret).
    // Any JSON here, so that a wrong type is an error naming the field.
    #[schema(value_type = Option<String>, example = "24h")]
    pub expire_previous_in: Option<serde_json::Value>,
}

/// The overlap a rotation asks for; 422 naming `expire_previous_in` when it is not a duration
/// or longer than [`webhooks::MAX_ROTATION_OVERLAP`].
fn parse_overlap(v: Option<&serde_json::Value>) -> AppResult<time::Duration> {
    let v = match v {
        None | Some(serde_json::Value::Null) => return Ok(webhooks::ROTATION_OVERLAP),
        Some(serde_json::Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(AppError::unprocessable(
                "expire_previous_in: must be a duration string such as `24h` or `0s`",
            ));
        }
    };
    let d = hookrelay_shared::duration::parse_duration(v)
        .map_err(|e| AppError::unprocessable(format!("expire_previous_in: {}", truncate(&e, 100))))?;
    match time::Duration::try_from(d) {
        Ok(d) if d <= webhooks::MAX_ROTATION_OVERLAP => Ok(d),
        _ => Err(AppError::unprocessable(format!(
            "expire_previous_in: at most {}",
            hookrelay_shared::duration::format_duration(
                webhooks::MAX_ROTATION_OVERLAP.try_into().unwrap_or_default()
            )
        ))),
    }
}

/// Replaces the secret; the previous ones keep signing beside it for `expire_previous_in`
/// (24 hours by default). At most 3 secrets are live at once: the oldest extra ones stop at once.
#[utoipa::path(
    post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = Uuid, Path)),
    request_body(content = Option<RotateSecret>, description = "Optional"),
    responses(
        (status = 200, description = "The webhook with its new secret", body = WebhookOut),
        BadId, Invalid, NeedsAdmin, NotFound,
    )
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    IdPath(id): IdPath,
    body: axum::body::Bytes,
) -> AppResult<Json<WebhookOut>> {
    // The body is optional, so parse it by hand rather than demand a JSON content type.
    let req: RotateSecret = if body.iter().all(u8::is_ascii_whitespace) {
        RotateSecret::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| AppError::unprocessable(format!("request body: {e}")))?
    };
    let before = webhooks::get(&state.ctx.db, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let new = req
        .secret
        .map(|s| webhooks::validate_given_key(&s, before.signature_scheme).map_err(invalid))
        .transpose()?;
    let overlap = parse_overlap(req.expire_previous_in.as_ref())?;
    let keys = webhooks::rotate_secret_with(&state.ctx.db, id, new, overlap)
        .await?
        .ok_or_else(|| not_found(id))?;
    let w = webhooks::get(&state.ctx.db, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    tracing::info!(webhook_id = %id, token_id = %auth.token.id, "webhook secret rotated");
    activity::record_logged(
        &state.ctx.db,
        &auth.actor(),
        activity::kind::WEBHOOK_SECRET_ROTATED,
        Some(id),
        serde_json::json!({"expire_previous_in": hookrelay_shared::duration::format_duration(
            overlap.try_into().unwrap_or_default())}),
    )
    .await;
    Ok(Json(WebhookOut::new(w, Some(&keys))))
}
