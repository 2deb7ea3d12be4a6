//! The webhook API's shapes as the OpenAPI document shows them: [`WebhookOut`] (what every
//! answer carries, never a secret but the one just made), the documented create and update
//! bodies (the server parses `hookrelay_shared::webhooks`' own types), the page and its query.

use hookrelay_shared::{event::rfc3339, signing_keys::NewKeys, webhooks::Webhook};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::stats::HealthOut;

/// A webhook as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookOut {
    pub id: Uuid,
    pub name: String,
    pub url: String,
    /// Patterns: an exact type, `category.*` or `*`.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// The webhook's own retry policy (`schedule`, or `max_retries`/`window`), if any.
    #[schema(value_type = Option<Object>)]
    pub retry_policy: Option<serde_json::Value>,
    /// Requests in flight to this webhook at once, per dispatcher (1-1024, default 32).
    pub max_in_flight: u32,
    /// Requests per second across all dispatchers; null = no limit.
    pub rate_limit: Option<f64>,
    /// Why it is disabled: `manual`, `failing` (every attempt failed for
    /// `HOOKRELAY_DISABLE_AFTER`) or `gone` (the endpoint answered 410); null while enabled.
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<String>,
    /// The payload filter: paths (`type`, `data.<field>`) to conditions; null = every
    /// subscribed event. See docs/webhook-options.md.
    #[schema(value_type = Option<Object>, example = json!({"data.plan": ["pro", "team"], "data.seats": {"$gte": 5}}))]
    pub filter: Option<serde_json::Value>,
    /// Custom request headers: the names, each value shown as `***` (values are secrets and
    /// are never shown again after they are set).
    #[schema(value_type = Object, example = json!({"x-api-key": "***"}))]
    pub headers: serde_json::Value,
    /// `v1` (HMAC-SHA256), `v1a` (ed25519) or `v1,v1a` (both, space-separated).
    #[schema(example = "v1")]
    pub signature_scheme: String,
    /// The `whpk_` ed25519 public key receivers verify `v1a` signatures with (the newest live
    /// one); null when the scheme has no `v1a`.
    pub public_key: Option<String>,
    /// `none` (default) or `fifo`: one delivery at a time, in the order the events were
    /// accepted; a failing one holds the ones after it until it succeeds or exhausts its retries.
    #[schema(example = "none")]
    pub ordering: String,
    /// The circuit breaker shared by the dispatchers and the last 24 h's attempts and
    /// success rate (on `GET /api/v1/webhooks` and `GET /api/v1/webhooks/{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthOut>,
    pub created_at: String,
    pub updated_at: String,
    /// `whsec_...`: only in the answers that made it (create, rotate-secret, and a PATCH of
    /// `signature_scheme` that adds `v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookOut {
    pub(super) fn new(w: Webhook, keys: Option<&NewKeys>) -> Self {
        Self {
            id: w.id,
            name: w.name,
            url: w.url,
            event_types: w.event_types,
            enabled: w.enabled,
            retry_policy: w.retry_policy.and_then(|p| serde_json::to_value(p).ok()),
            max_in_flight: w.max_in_flight,
            rate_limit: w.rate_limit,
            disabled_reason: w.disabled_reason,
            disabled_at: w.disabled_at.map(rfc3339),
            filter: w.filter,
            headers: w.headers.redacted(),
            signature_scheme: w.signature_scheme.as_str().to_owned(),
            public_key: w.public_key,
            ordering: w.ordering.as_str().to_owned(),
            health: None,
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
            secret: keys.and_then(|k| k.secret.as_ref()).map(|s| s.expose()),
        }
    }
}

/// The body of `POST /api/v1/webhooks` (documentation of `hookrelay_shared::webhooks::NewWebhook`).
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
pub struct WebhookCreate {
    name: String,
    /// http or https; no credentials; private addresses only when allowed.
    url: String,
    event_types: Vec<String>,
    /// Default true.
    enabled: Option<bool>,
    #[schema(value_type = Option<Object>)]
    retry_policy: Option<serde_json::Value>,
    /// A key of your own: a `whsec_` secret (base64 of at least 24 bytes) or a `whsk_` ed25519
    /// signing key, of a kind the scheme uses; generated when absent.
    secret: Option<String>,
    /// 1-1024, default 32: requests in flight at once, per dispatcher.
    max_in_flight: Option<u32>,
    /// Requests per second across all dispatchers (0.01-100000); absent or null = no limit.
    rate_limit: Option<f64>,
    /// A payload filter: `{"type": ..., "data.<path>": value | [any of] | {"$exists"|"$ne"|
    /// "$gt"|"$gte"|"$lt"|"$lte"|"$prefix": ...}}`; all paths must hold. Absent or null = none.
    /// 422 naming the path (`filter.data.seats`) when invalid.
    #[schema(value_type = Option<Object>, example = json!({"type": "license.assigned", "data.seats": {"$gte": 5}}))]
    filter: Option<serde_json::Value>,
    /// Static headers added to every request: name to value (printable ASCII). Not allowed:
    /// `webhook-*`, `x-webhook-*`, `content-type`, `user-agent`, and HTTP's own (`host`,
    /// `content-length`, `connection`, ...). The values are secrets: answers and stored
    /// attempts show them as `***`. At most 32.
    #[schema(value_type = Option<Object>, example = json!({"x-api-key": "k_live_123"}))]
    headers: Option<serde_json::Value>,
    /// `v1` (default: HMAC-SHA256 with a `whsec_` secret), `v1a` (ed25519: the answer carries
    /// the `whpk_` `public_key`) or `v1,v1a` (both).
    #[schema(example = "v1a")]
    signature_scheme: Option<String>,
    /// `none` (default) or `fifo`: one delivery at a time, in the order the events were
    /// accepted (see docs/webhook-options.md for throughput and manual retries).
    #[schema(example = "fifo")]
    ordering: Option<String>,
}

/// The body of `PATCH /api/v1/webhooks/{id}`: absent fields stay as they are.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
pub struct WebhookUpdate {
    name: Option<String>,
    url: Option<String>,
    event_types: Option<Vec<String>>,
    /// Re-enabling clears `disabled_reason`; disabling sets it to `manual`.
    enabled: Option<bool>,
    /// `null` removes the webhook's own policy.
    #[schema(value_type = Option<Object>)]
    retry_policy: Option<serde_json::Value>,
    max_in_flight: Option<u32>,
    /// `null` removes the limit.
    rate_limit: Option<f64>,
    /// Replaces the filter; `null` removes it.
    #[schema(value_type = Option<Object>)]
    filter: Option<serde_json::Value>,
    /// Replaces the whole set of custom headers (send every value again: they are never shown);
    /// `null` or `{}` removes them.
    #[schema(value_type = Option<Object>)]
    headers: Option<serde_json::Value>,
    /// Keys of a kind the new scheme adds are made at once (a new `whsec_` secret is in the
    /// answer); keys of a kind it drops keep signing for 24 h, beside the new ones.
    signature_scheme: Option<String>,
    /// `fifo` numbers the deliveries accepted from now on (those already waiting are not
    /// reordered); `none` releases the held ones at once (the one in flight finishes).
    #[schema(example = "none")]
    ordering: Option<String>,
}

/// A page of webhooks, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookPage {
    pub items: Vec<WebhookOut>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhookListParams {
    /// 1..200, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}
