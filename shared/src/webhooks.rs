//! Webhooks and their secrets: validation, creation, rotation and the dispatcher's view.
//! Every change sends a NOTIFY on [`CHANGES_CHANNEL`] so each replica's cache refreshes.

use serde::{Deserialize, Serialize};
use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    custom_headers::{CustomHeaders, validate_headers},
    ed25519::SigningKey,
    matching::is_valid_pattern,
    ordering::Ordering,
    retry::RetryPolicySpec,
    retry_store::RetryEntry,
    signing_keys::{Key, NewKeys, SignatureScheme, SigningKeys},
    ssrf,
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

/// A field that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidField {
    /// The field, or a path inside it (`filter.data.plan`).
    pub field: String,
    pub reason: String,
}

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> InvalidField {
    InvalidField {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Checks a name.
pub fn validate_name(name: &str) -> Result<(), InvalidField> {
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(invalid("name", format!("must be 1-{MAX_NAME_LEN} characters")));
    }
    Ok(())
}

/// Checks a URL (scheme, credentials, private literals).
pub fn validate_url(url: &str, allow_private: bool) -> Result<(), InvalidField> {
    ssrf::check_url(url, allow_private)
        .map(|_| ())
        .map_err(|e| invalid("url", e.to_string()))
}

/// Checks subscription patterns.
pub fn validate_patterns(patterns: &[String]) -> Result<(), InvalidField> {
    if patterns.is_empty() || patterns.len() > MAX_PATTERNS {
        return Err(invalid("event_types", format!("give 1-{MAX_PATTERNS} patterns")));
    }
    if let Some(bad) = patterns.iter().find(|p| !is_valid_pattern(p)) {
        return Err(invalid(
            "event_types",
            format!(
                "`{bad}` is not an event type (`license.assigned`), a prefix wildcard \
                 (`license.*`, `license.key.*`) or `*`: `*` may only be a whole last segment"
            ),
        ));
    }
    Ok(())
}

/// Checks `max_in_flight`.
pub fn validate_max_in_flight(n: Option<u32>) -> Result<(), InvalidField> {
    match n {
        Some(n) if n == 0 || n > MAX_MAX_IN_FLIGHT => {
            Err(invalid("max_in_flight", format!("must be 1-{MAX_MAX_IN_FLIGHT}")))
        }
        _ => Ok(()),
    }
}

/// Checks `rate_limit` (requests per second; fractions allowed, e.g. 0.5 = one every 2 s).
pub fn validate_rate_limit(r: Option<f64>) -> Result<(), InvalidField> {
    match r {
        Some(r) if !r.is_finite() || !(0.01..=MAX_RATE_LIMIT).contains(&r) => Err(invalid(
            "rate_limit",
            format!("must be null or 0.01-{MAX_RATE_LIMIT} requests per second"),
        )),
        _ => Ok(()),
    }
}

/// Checks a retry policy.
pub fn validate_policy(policy: &Option<RetryPolicySpec>) -> Result<(), InvalidField> {
    match policy {
        Some(p) => p.validate().map_err(|r| invalid("retry_policy", r)),
        None => Ok(()),
    }
}

impl NewWebhook {
    /// Checks every field.
    pub fn validate(&self, allow_private: bool) -> Result<(), InvalidField> {
        validate_name(&self.name)?;
        validate_url(&self.url, allow_private)?;
        validate_patterns(&self.event_types)?;
        validate_policy(&self.retry_policy)?;
        validate_max_in_flight(self.max_in_flight)?;
        validate_rate_limit(self.rate_limit)?;
        crate::filter::validate_field(self.filter.as_ref())?;
        validate_headers(self.headers.as_ref())?;
        if let Some(s) = &self.secret {
            validate_given_key(s, self.signature_scheme.unwrap_or_default())?;
        }
        Ok(())
    }
}

/// Checks a key someone supplies against the scheme it is for.
pub fn validate_given_key(text: &str, scheme: SignatureScheme) -> Result<Key, InvalidField> {
    let key = Key::parse_given(text).map_err(|e| invalid("secret", e))?;
    if !scheme.uses(key.kind()) {
        return Err(invalid(
            "secret",
            format!(
                "a `{}` key is not used by signature_scheme `{}`",
                key.kind().prefix(),
                scheme.as_str()
            ),
        ));
    }
    Ok(key)
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

/// A webhook as the dispatcher needs it: with its live signing keys, newest first.
#[derive(Clone, Debug)]
pub struct Target {
    pub webhook: Webhook,
    pub keys: SigningKeys,
}

/// Every live, enabled webhook with its unexpired secrets (the dispatcher's cache).
pub async fn load_targets(pool: &PgPool) -> sqlx::Result<Vec<Target>> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhooks WHERE deleted_at IS NULL AND enabled ORDER BY id"
    )))
    .fetch_all(pool)
    .await?;
    let secrets: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT webhook_id, secret FROM webhook_secrets
         WHERE expires_at IS NULL OR expires_at > now() ORDER BY created_at DESC, id DESC",
    )
    .fetch_all(pool)
    .await?;
    let mut by_hook: std::collections::HashMap<Uuid, Vec<String>> = Default::default();
    for (id, s) in secrets {
        by_hook.entry(id).or_default().push(s);
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let webhook = from_row(r);
            let texts = by_hook.remove(&webhook.id).unwrap_or_default();
            let keys = SigningKeys::from_stored(texts.iter().map(String::as_str));
            Target { webhook, keys }
        })
        .collect())
}

/// The same as [`load_targets`] for one webhook, enabled or not (used for manual retries).
pub async fn load_target(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Target>> {
    let Some(webhook) = get(pool, id).await? else {
        return Ok(None);
    };
    let secrets: Vec<String> = sqlx::query_scalar(
        "SELECT secret FROM webhook_secrets WHERE webhook_id = $1
         AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at DESC, id DESC",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let keys = SigningKeys::from_stored(secrets.iter().map(String::as_str));
    Ok(Some(Target { webhook, keys }))
}

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

impl WebhookPatch {
    /// Checks every field that is given.
    pub fn validate(&self, allow_private: bool) -> Result<(), InvalidField> {
        if let Some(n) = &self.name {
            validate_name(n)?;
        }
        if let Some(u) = &self.url {
            validate_url(u, allow_private)?;
        }
        if let Some(p) = &self.event_types {
            validate_patterns(p)?;
        }
        if let Some(p) = &self.retry_policy {
            validate_policy(p)?;
        }
        validate_max_in_flight(self.max_in_flight)?;
        if let Some(r) = self.rate_limit {
            validate_rate_limit(r)?;
        }
        if let Some(f) = &self.filter {
            crate::filter::validate_field(f.as_ref())?;
        }
        if let Some(h) = &self.headers {
            validate_headers(h.as_ref())?;
        }
        Ok(())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_pattern_grammar_is_enforced_naming_event_types() {
        assert_eq!(
            validate_patterns(&patterns(&[
                "*",
                "license.*",
                "license.key.*",
                "license.assigned"
            ])),
            Ok(())
        );
        for bad in [
            "license.*.created",
            "*.created",
            "license.a*",
            "license",
            "license..*",
        ] {
            let err = validate_patterns(&patterns(&["license.*", bad])).expect_err(bad);
            assert_eq!(err.field, "event_types", "{bad}");
            assert!(err.reason.contains(bad), "{bad}: {}", err.reason);
            assert!(err.reason.contains("last segment"), "{}", err.reason);
        }
    }
}
