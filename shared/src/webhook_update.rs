//! Changing a webhook: [`WebhookPatch`] (PATCH semantics: an absent field stays, `null`
//! clears what may be cleared) and the UPDATE that applies it, with what it made besides: the
//! keys a new signature scheme needs, and the deliveries `ordering: none` released.

use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::{COLUMNS, Row, Webhook, from_row, notify_changed, stored_headers};
use crate::{
    ordering::Ordering,
    retry::RetryPolicySpec,
    retry_store::RetryEntry,
    signing_keys::{NewKeys, SignatureScheme},
};

/// A change to a webhook with PATCH semantics: absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    pub name: Option<String>,
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
    /// `null` removes the webhook's own policy (back to the default); absent leaves it.
    #[serde(default, deserialize_with = "present")]
    pub retry_policy: Option<Option<RetryPolicySpec>>,
    pub max_in_flight: Option<u32>,
    /// `null` removes the limit; absent leaves it.
    #[serde(default, deserialize_with = "present")]
    pub rate_limit: Option<Option<f64>>,
    /// `null` removes the filter; absent leaves it.
    #[serde(default, deserialize_with = "present")]
    pub filter: Option<Option<serde_json::Value>>,
    /// Replaces the whole set; `null` or `{}` removes them; absent leaves them.
    #[serde(default, deserialize_with = "present")]
    pub headers: Option<Option<serde_json::Value>>,
    /// A new scheme: keys of a kind it adds are made at once (a new `whsec_` secret is in the
    /// answer); keys of a kind it drops keep signing for 24 h.
    pub signature_scheme: Option<SignatureScheme>,
    /// `fifo` sequences new deliveries; `none` releases the held ones at once
    /// ([`crate::ordering::release`]).
    pub ordering: Option<Ordering>,
}

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`, via `default`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Applies a (validated) patch; `None` when there is no such live webhook.
pub async fn update(pool: &PgPool, id: Uuid, patch: WebhookPatch) -> sqlx::Result<Option<Webhook>> {
    Ok(update_with_keys(pool, id, patch).await?.map(|(w, _)| w))
}

/// [`update`], also returning the keys a change of `signature_scheme` made.
pub async fn update_with_keys(
    pool: &PgPool,
    id: Uuid,
    patch: WebhookPatch,
) -> sqlx::Result<Option<(Webhook, NewKeys)>> {
    Ok(update_full(pool, id, patch).await?.map(|u| (u.webhook, u.keys)))
}

/// What a change made besides the webhook itself.
#[derive(Debug)]
pub struct Updated {
    pub webhook: Webhook,
    /// Keys a change of `signature_scheme` made.
    pub keys: NewKeys,
    /// Deliveries released by `ordering: none` (due at once): the caller adds them to the
    /// scheduler's set if it can, else the scheduler's reconcile does.
    pub released: Vec<RetryEntry>,
}

/// [`update_with_keys`], also returning the deliveries a change to `ordering: none` released.
pub async fn update_full(pool: &PgPool, id: Uuid, patch: WebhookPatch) -> sqlx::Result<Option<Updated>> {
    let (set_policy, policy) = match patch.retry_policy {
        Some(p) => (true, p.map(sqlx::types::Json)),
        None => (false, None),
    };
    let (set_rate, rate) = match patch.rate_limit {
        Some(r) => (true, r),
        None => (false, None),
    };
    let (set_filter, filter) = match patch.filter {
        Some(f) => (true, f.map(sqlx::types::Json)),
        None => (false, None),
    };
    let mut tx = pool.begin().await?;
    let mut made = NewKeys::default();
    if let Some(to) = patch.signature_scheme {
        let from: Option<String> = sqlx::query_scalar(
            "SELECT signature_scheme FROM webhooks WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(from) = from.as_deref().and_then(SignatureScheme::parse) {
            made = crate::webhook_keys::change_scheme(&mut tx, id, from, to).await?;
        }
    }
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE webhooks SET name = COALESCE($2, name), url = COALESCE($3, url),
             event_types = COALESCE($4, event_types), enabled = COALESCE($5, enabled),
             retry_policy = CASE WHEN $6 THEN $7 ELSE retry_policy END,
             max_in_flight = COALESCE($8, max_in_flight),
             rate_limit = CASE WHEN $9 THEN $10 ELSE rate_limit END,
             filter = CASE WHEN $11 THEN $12 ELSE filter END,
             headers = COALESCE($13, headers),
             signature_scheme = COALESCE($14, signature_scheme),
             ordering = COALESCE($15, ordering),
             -- Enabling clears the reason; disabling through the API says it was manual.
             disabled_reason = CASE WHEN $5 IS NULL THEN disabled_reason WHEN $5 THEN NULL
                 WHEN enabled THEN 'manual' ELSE disabled_reason END,
             disabled_at = CASE WHEN $5 IS NULL THEN disabled_at WHEN $5 THEN NULL
                 WHEN enabled THEN now() ELSE disabled_at END,
             updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(patch.name.as_deref().map(str::trim))
    .bind(patch.url)
    .bind(patch.event_types)
    .bind(patch.enabled)
    .bind(set_policy)
    .bind(policy)
    .bind(patch.max_in_flight.map(|n| n as i32))
    .bind(set_rate)
    .bind(rate)
    .bind(set_filter)
    .bind(filter)
    .bind(
        patch
            .headers
            .map(|h| sqlx::types::Json(stored_headers(h.as_ref()))),
    )
    .bind(patch.signature_scheme.map(SignatureScheme::as_str))
    .bind(patch.ordering.map(Ordering::as_str))
    .fetch_optional(&mut *tx)
    .await?;
    let mut released = Vec::new();
    if row.is_some() {
        // The webhooks row is locked by the UPDATE: the sequence row and the deliveries follow.
        if patch.ordering == Some(Ordering::None) {
            released = crate::ordering::release(&mut tx, id).await?;
        }
        notify_changed(&mut *tx, id).await?;
    }
    tx.commit().await?;
    Ok(row.map(|r| Updated {
        webhook: from_row(r),
        keys: made,
        released,
    }))
}
