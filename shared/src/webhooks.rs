//! Webhooks and their secrets: the model, creation, reads, deletion and disabling, here; the
//! field checks (`webhook_validate.rs`), changes (`webhook_update.rs`), the dispatcher's view
//! (`webhook_targets.rs`) and the keys (`webhook_keys.rs`) beside it. Every change sends a
//! NOTIFY on [`CHANGES_CHANNEL`] so each replica's cache refreshes.

use serde::{Deserialize, Serialize};
use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    custom_headers::CustomHeaders,
    ed25519::SigningKey,
    ordering::Ordering,
    retry::RetryPolicySpec,
    signing_keys::{NewKeys, SignatureScheme},
};

#[path = "webhook_update.rs"]
mod changes;
#[path = "webhook_targets.rs"]
mod targets;
#[path = "webhook_validate.rs"]
mod validate;

pub use changes::{Updated, WebhookPatch, update, update_full, update_with_keys};
pub use targets::{Target, load_target, load_targets};
pub(crate) use validate::invalid;
pub use validate::{
    InvalidField, validate_given_key, validate_max_in_flight, validate_name, validate_patterns,
    validate_policy, validate_rate_limit, validate_url,
};

/// PostgreSQL NOTIFY channel announcing webhook changes (payload: the webhook id).
pub const CHANGES_CHANNEL: &str = "hookrelay_webhooks";
/// How long a rotated-out secret keeps signing beside the new one.
pub const ROTATION_OVERLAP: time::Duration = time::Duration::hours(24);
/// The longest overlap a rotation may ask for ([`rotate_secret_with`]).
pub const MAX_ROTATION_OVERLAP: time::Duration = time::Duration::days(7);
/// Most secrets live (signing) at once; a rotation expires the oldest extra ones at once.
pub const MAX_LIVE_SECRETS: i64 = 3;
pub const MAX_NAME_LEN: usize = 200;
pub const MAX_PATTERNS: usize = 100;

/// A webhook as the API shows it (no secret).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Webhook {
    pub id: Uuid,
    pub name: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicySpec>,
    /// Requests in flight to this webhook at once, per dispatcher.
    pub max_in_flight: u32,
    /// Requests per second across all dispatchers; `None` = no limit.
    pub rate_limit: Option<f64>,
    /// Why it is disabled: `manual`, `failing` or `gone`; `None` while enabled.
    pub disabled_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
    /// The payload filter ([`crate::filter`]); `None` = every subscribed event.
    #[serde(default)]
    pub filter: Option<serde_json::Value>,
    /// Static request headers; serialized (and debug-printed) with the values redacted.
    #[serde(default)]
    pub headers: CustomHeaders,
    #[serde(default)]
    pub signature_scheme: SignatureScheme,
    /// `none` or `fifo` (one at a time, in acceptance order: [`crate::ordering`]).
    #[serde(default)]
    pub ordering: Ordering,
    /// The `whpk_` public key of the newest live `v1a` signing key; `None` without one.
    #[serde(default)]
    pub public_key: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// `max_in_flight` when none is given.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 32;
/// The largest `max_in_flight` (a dispatcher has `HOOKRELAY_DISPATCH_CONCURRENCY` slots in all).
pub const MAX_MAX_IN_FLIGHT: u32 = 1024;
/// The largest `rate_limit`, requests per second.
pub const MAX_RATE_LIMIT: f64 = 100_000.0;

/// What is needed to create a webhook.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    pub name: String,
    pub url: String,
    pub event_types: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub retry_policy: Option<RetryPolicySpec>,
    /// A key of one's own: a `whsec_…` secret (at least 24 bytes) or a `whsk_…` signing key,
    /// of a kind the scheme uses; the others are generated.
    #[serde(default)]
    pub secret: Option<String>,
    /// Default [`DEFAULT_MAX_IN_FLIGHT`].
    #[serde(default)]
    pub max_in_flight: Option<u32>,
    #[serde(default)]
    pub rate_limit: Option<f64>,
    /// A payload filter ([`crate::filter`]); absent or `null` = none.
    #[serde(default)]
    pub filter: Option<serde_json::Value>,
    /// Static request headers ([`crate::custom_headers`]): name to value.
    #[serde(default)]
    pub headers: Option<serde_json::Value>,
    /// Default [`SignatureScheme::V1`].
    #[serde(default)]
    pub signature_scheme: Option<SignatureScheme>,
    /// Default [`Ordering::None`].
    #[serde(default)]
    pub ordering: Option<Ordering>,
}

fn yes() -> bool {
    true
}

/// A `webhooks` row as [`COLUMNS`] selects it.
#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    name: String,
    url: String,
    event_types: Vec<String>,
    enabled: bool,
    retry_policy: Option<sqlx::types::Json<RetryPolicySpec>>,
    max_in_flight: i32,
    rate_limit: Option<f64>,
    disabled_reason: Option<String>,
    disabled_at: Option<OffsetDateTime>,
    filter: Option<sqlx::types::Json<serde_json::Value>>,
    headers: sqlx::types::Json<serde_json::Value>,
    signature_scheme: String,
    ordering: String,
    signing_key: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

/// Columns matching [`Row`].
pub const COLUMNS: &str = "id, name, url, event_types, enabled, retry_policy, max_in_flight, rate_limit, \
    disabled_reason, disabled_at, filter, headers, signature_scheme, ordering, \
    (SELECT s.secret FROM webhook_secrets s WHERE s.webhook_id = webhooks.id \
        AND starts_with(s.secret, 'whsk_') AND (s.expires_at IS NULL OR s.expires_at > now()) \
        ORDER BY s.created_at DESC, s.id DESC LIMIT 1) AS signing_key, \
    created_at, updated_at";

fn from_row(r: Row) -> Webhook {
    Webhook {
        id: r.id,
        name: r.name,
        url: r.url,
        event_types: r.event_types,
        enabled: r.enabled,
        retry_policy: r.retry_policy.map(|j| j.0),
        max_in_flight: u32::try_from(r.max_in_flight).unwrap_or(DEFAULT_MAX_IN_FLIGHT),
        rate_limit: r.rate_limit,
        disabled_reason: r.disabled_reason,
        disabled_at: r.disabled_at,
        filter: r.filter.map(|j| j.0),
        headers: CustomHeaders::from_json(&r.headers.0),
        signature_scheme: SignatureScheme::parse(&r.signature_scheme).unwrap_or_default(),
        ordering: Ordering::parse(&r.ordering).unwrap_or_default(),
        public_key: r
            .signing_key
            .and_then(|k| SigningKey::parse(&k).ok())
            .map(|k| k.public_key()),
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// The `headers` column's value for a (validated) `headers` field: names lowercased.
fn stored_headers(headers: Option<&serde_json::Value>) -> serde_json::Value {
    headers
        .map(CustomHeaders::from_json)
        .unwrap_or_default()
        .to_stored_json()
}

/// Tells every replica that webhook `id` changed.
pub async fn notify_changed<'e, E: PgExecutor<'e>>(exec: E, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANGES_CHANNEL)
        .bind(id.to_string())
        .execute(exec)
        .await?;
    Ok(())
}

/// Creates a webhook (already validated) and returns it with its new keys: a `whsec_` secret
/// when the scheme uses `v1`, a `whsk_` signing key when it uses `v1a`.
pub async fn create(pool: &PgPool, new: NewWebhook) -> sqlx::Result<(Webhook, NewKeys)> {
    let scheme = new.signature_scheme.unwrap_or_default();
    let given = new
        .secret
        .as_deref()
        .and_then(|s| validate_given_key(s, scheme).ok());
    let keys = crate::webhook_keys::initial(scheme, given);
    let mut tx = pool.begin().await?;
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO webhooks (id, name, url, event_types, enabled, retry_policy, max_in_flight,
             rate_limit, disabled_reason, disabled_at, filter, headers, signature_scheme, ordering)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $5 THEN NULL ELSE 'manual' END,
             CASE WHEN $5 THEN NULL ELSE now() END, $9, $10, $11, $12)
         RETURNING {COLUMNS}"
    )))
    .bind(crate::ids::new_id())
    .bind(new.name.trim())
    .bind(&new.url)
    .bind(&new.event_types)
    .bind(new.enabled)
    .bind(new.retry_policy.map(sqlx::types::Json))
    .bind(new.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT) as i32)
    .bind(new.rate_limit)
    .bind(new.filter.map(sqlx::types::Json))
    .bind(sqlx::types::Json(stored_headers(new.headers.as_ref())))
    .bind(scheme.as_str())
    .bind(new.ordering.unwrap_or_default().as_str())
    .fetch_one(&mut *tx)
    .await?;
    let mut webhook = from_row(row);
    let mut made = NewKeys::default();
    for key in keys {
        crate::webhook_keys::insert(&mut tx, webhook.id, &key).await?;
        made.push(key);
    }
    webhook.public_key = made.signing_key.as_ref().map(SigningKey::public_key);
    notify_changed(&mut *tx, webhook.id).await?;
    tx.commit().await?;
    Ok((webhook, made))
}

/// One live (not deleted) webhook.
pub async fn get(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Webhook>> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhooks WHERE id = $1 AND deleted_at IS NULL"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(from_row))
}

pub use crate::webhook_keys::{rotate_secret, rotate_secret_with};

/// Live webhooks in creation order, after the `(created_at, id)` of the previous page's last.
pub async fn list(
    pool: &PgPool,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<Webhook>> {
    let (t, id) = after.unzip();
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhooks
         WHERE deleted_at IS NULL AND ($1::timestamptz IS NULL OR (created_at, id) > ($1, $2))
         ORDER BY created_at, id LIMIT $3"
    )))
    .bind(t)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Soft-deletes a webhook (its attempts stay in the log); false when there is no such live one.
pub async fn delete(pool: &PgPool, id: Uuid) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE webhooks SET deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let deleted = done.rows_affected() == 1;
    if deleted {
        notify_changed(&mut *tx, id).await?;
    }
    tx.commit().await?;
    Ok(deleted)
}

/// Disables a webhook on the dispatcher's own account (`failing` or `gone`) and ends its waiting
/// deliveries as failed with `why`. Returns false when it was already disabled (another replica
/// got there first) or is gone.
pub async fn auto_disable(pool: &PgPool, id: Uuid, reason: &str, why: &str) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE webhooks SET enabled = false, disabled_reason = $2, disabled_at = now(), updated_at = now()
         WHERE id = $1 AND enabled AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    // The lock order of crate::ordering: webhooks row, sequence row, deliveries by id. Held
    // deliveries of an ordered webhook end here too.
    crate::ordering::lock(&mut tx, &[id]).await?;
    sqlx::query(
        "WITH waiting AS (SELECT id, event_received_at FROM deliveries
             WHERE webhook_id = $1 AND state IN ('pending', 'retrying') ORDER BY id FOR UPDATE)
         UPDATE deliveries d SET state = 'failed', next_attempt_at = NULL, error = $2, updated_at = now()
         FROM waiting WHERE d.id = waiting.id AND d.event_received_at = waiting.event_received_at",
    )
    .bind(id)
    .bind(why)
    .execute(&mut *tx)
    .await?;
    notify_changed(&mut *tx, id).await?;
    crate::activity::record(
        &mut *tx,
        &crate::activity::Actor::system(),
        crate::activity::kind::WEBHOOK_AUTO_DISABLED,
        Some(id),
        serde_json::json!({"reason": reason, "why": why}),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}
