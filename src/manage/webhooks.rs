//! `hookrelay webhooks list|show|update|delete|rotate-secret` (and the dispatch of `test|stats`,
//! which are in `webhook_tools.rs`).

use clap::Subcommand;
use hookrelay_shared::{
    Config, activity,
    duration::parse_duration,
    event::rfc3339,
    ordering::Ordering,
    retry::RetryPolicySpec,
    settings,
    webhooks::{self, Webhook, WebhookPatch},
};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    OneItem, Output, actor,
    output::{print_json, table},
};

#[derive(Subcommand)]
pub enum WebhooksManage {
    /// List the live webhooks, oldest first.
    List {
        #[arg(long, default_value_t = 200)]
        limit: i64,
        #[command(flatten)]
        out: Output,
    },
    /// Show one webhook (never its secret).
    Show(OneItem),
    /// Change the given fields of a webhook.
    Update {
        id: Uuid,
        #[command(flatten)]
        flags: UpdateFlags,
        #[command(flatten)]
        out: Output,
    },
    /// Delete a webhook (its attempts stay in the log).
    Delete { id: Uuid },
    /// Replace a webhook's secret; prints the new one (shown once).
    RotateSecret {
        id: Uuid,
        /// How long the previous secrets keep signing (default 24h, at most 7d; 0s = at once).
        #[arg(long, default_value = "24h")]
        expire_previous_in: String,
        #[command(flatten)]
        out: Output,
    },
    /// Send a `webhook.test` event to this webhook alone, through the dispatchers (signed,
    /// recorded, in the log); prints its event and delivery ids.
    Test(OneItem),
    /// Attempts, success rate, response-time percentiles and circuit over a window.
    Stats {
        id: Uuid,
        /// `1h`, `24h` or `7d`.
        #[arg(long, default_value = "24h")]
        window: String,
        #[command(flatten)]
        out: Output,
    },
}

/// `--ordering`: `none` or `fifo`.
pub fn parse_ordering(text: &str) -> anyhow::Result<Ordering> {
    Ordering::parse(text).ok_or_else(|| anyhow::anyhow!("--ordering: `none` or `fifo`"))
}

fn webhook_json(w: &Webhook) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(w)?)
}

fn show_webhook(w: &Webhook) {
    let rows = [
        ("id", w.id.to_string()),
        ("name", w.name.clone()),
        ("url", w.url.clone()),
        ("event types", w.event_types.join(", ")),
        ("enabled", w.enabled.to_string()),
        (
            "disabled",
            w.disabled_reason
                .as_deref()
                .map(|r| format!("{r} at {}", w.disabled_at.map(rfc3339).unwrap_or_default()))
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "retry policy",
            w.retry_policy
                .as_ref()
                .and_then(|p| serde_json::to_string(p).ok())
                .unwrap_or_else(|| "default".into()),
        ),
        ("max in flight", w.max_in_flight.to_string()),
        (
            "rate limit",
            w.rate_limit.map_or("none".into(), |r| format!("{r}/s")),
        ),
        ("signature", w.signature_scheme.as_str().to_owned()),
        ("ordering", w.ordering.as_str().to_owned()),
        ("created", rfc3339(w.created_at)),
        ("updated", rfc3339(w.updated_at)),
    ];
    for (k, v) in rows {
        println!("{k:<14} {v}");
    }
}

pub async fn webhooks(command: WebhooksManage, config: &Config, pool: &PgPool) -> anyhow::Result<()> {
    match command {
        WebhooksManage::List { limit, out } => list(pool, limit, &out).await,
        WebhooksManage::Show(OneItem { id, out }) => {
            let w = webhooks::get(pool, id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no webhook with id {id}"))?;
            print_webhook(&w, &out)
        }
        WebhooksManage::Update { id, flags, out } => {
            let patch = flags.into_patch()?;
            let w = update(config, pool, id, patch).await?;
            print_webhook(&w, &out)
        }
        WebhooksManage::Delete { id } => delete(pool, id).await,
        WebhooksManage::RotateSecret {
            id,
            expire_previous_in,
            out,
        } => rotate_secret(pool, id, &expire_previous_in, &out).await,
        WebhooksManage::Test(OneItem { id, out }) => super::webhook_tools::test(config, pool, id, &out).await,
        WebhooksManage::Stats { id, window, out } => {
            super::webhook_tools::stats(config, pool, id, &window, &out).await
        }
    }
}

fn print_webhook(w: &Webhook, out: &Output) -> anyhow::Result<()> {
    if out.json {
        return print_json(&webhook_json(w)?);
    }
    show_webhook(w);
    Ok(())
}

async fn list(pool: &PgPool, limit: i64, out: &Output) -> anyhow::Result<()> {
    let all = webhooks::list(pool, None, limit.clamp(1, 10_000)).await?;
    if out.json {
        let items: Vec<Value> = all.iter().map(webhook_json).collect::<anyhow::Result<_>>()?;
        return print_json(&json!({ "items": items }));
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|w| {
            vec![
                w.id.to_string(),
                w.name.clone(),
                w.url.clone(),
                w.event_types.join(","),
                if w.enabled {
                    "enabled".into()
                } else {
                    format!("disabled ({})", w.disabled_reason.as_deref().unwrap_or("manual"))
                },
            ]
        })
        .collect();
    table(&["id", "name", "url", "events", "state"], &rows);
    Ok(())
}

/// The flags of `webhooks update`, as given.
#[derive(clap::Args)]
pub struct UpdateFlags {
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    url: Option<String>,
    /// Comma-separated patterns: `license.assigned`, `license.*` or `*`.
    #[arg(long)]
    events: Option<String>,
    #[arg(long, conflicts_with = "disable")]
    enable: bool,
    #[arg(long)]
    disable: bool,
    /// The webhook's own retry policy as JSON (`{"max_retries": 5, "window": "1h"}` or
    /// `{"schedule": ["1s", "1m"]}`), or `default` to use the default policy.
    #[arg(long)]
    retry_policy: Option<String>,
    /// Requests in flight at once, per dispatcher (1-1024).
    #[arg(long)]
    max_in_flight: Option<u32>,
    /// Requests per second across all dispatchers, or `none`.
    #[arg(long)]
    rate_limit: Option<String>,
    /// `fifo` (one at a time, in acceptance order) or `none` (releases the held deliveries).
    #[arg(long, value_name = "ORDERING")]
    ordering: Option<String>,
}

impl UpdateFlags {
    fn into_patch(self) -> anyhow::Result<WebhookPatch> {
        let retry_policy = self
            .retry_policy
            .map(|p| match p.as_str() {
                "default" => Ok(None),
                text => serde_json::from_str::<RetryPolicySpec>(text)
                    .map(Some)
                    .map_err(|e| anyhow::anyhow!("--retry-policy: {e}")),
            })
            .transpose()?;
        let rate_limit =
            self.rate_limit
                .map(|r| match r.as_str() {
                    "none" => Ok(None),
                    text => text.parse::<f64>().map(Some).map_err(|_| {
                        anyhow::anyhow!("--rate-limit: a number of requests per second, or `none`")
                    }),
                })
                .transpose()?;
        Ok(WebhookPatch {
            name: self.name,
            url: self.url,
            event_types: self.events.map(|e| {
                e.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            }),
            enabled: if self.enable {
                Some(true)
            } else if self.disable {
                Some(false)
            } else {
                None
            },
            retry_policy,
            max_in_flight: self.max_in_flight,
            rate_limit,
            ordering: self.ordering.as_deref().map(parse_ordering).transpose()?,
            ..Default::default()
        })
    }
}

async fn update(config: &Config, pool: &PgPool, id: Uuid, patch: WebhookPatch) -> anyhow::Result<Webhook> {
    patch
        .validate(config.allow_private_targets)
        .map_err(|e| anyhow::anyhow!("--{}: {}", e.field.replace('_', "-"), e.reason))?;
    if let Some(Some(p)) = &patch.retry_policy {
        let retention = settings::current(config, pool).await?.0.retention;
        p.validate_bounds(retention)
            .map_err(|e| anyhow::anyhow!("--retry-policy: {e}"))?;
    }
    let was_enabled = webhooks::get(pool, id).await?.map(|w| w.enabled);
    let fields: Vec<&str> = [
        ("name", patch.name.is_some()),
        ("url", patch.url.is_some()),
        ("event_types", patch.event_types.is_some()),
        ("retry_policy", patch.retry_policy.is_some()),
        ("max_in_flight", patch.max_in_flight.is_some()),
        ("rate_limit", patch.rate_limit.is_some()),
        ("ordering", patch.ordering.is_some()),
    ]
    .into_iter()
    .filter_map(|(f, given)| given.then_some(f))
    .collect();
    let updated = webhooks::update_full(pool, id, patch)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no webhook with id {id}"))?;
    if !updated.released.is_empty() {
        eprintln!(
            "{} held deliveries released: they are due now (the scheduler picks them up within its reconcile period)",
            updated.released.len()
        );
    }
    let w = updated.webhook;
    if was_enabled.is_some_and(|e| e != w.enabled) {
        let kind = if w.enabled {
            activity::kind::WEBHOOK_ENABLED
        } else {
            activity::kind::WEBHOOK_DISABLED
        };
        activity::record_logged(pool, &actor(), kind, Some(id), json!({})).await;
    }
    if !fields.is_empty() {
        activity::record_logged(
            pool,
            &actor(),
            activity::kind::WEBHOOK_UPDATED,
            Some(id),
            json!({ "fields": fields }),
        )
        .await;
    }
    Ok(w)
}

async fn delete(pool: &PgPool, id: Uuid) -> anyhow::Result<()> {
    if !webhooks::delete(pool, id).await? {
        anyhow::bail!("no webhook with id {id}");
    }
    activity::record_logged(
        pool,
        &actor(),
        activity::kind::WEBHOOK_DELETED,
        Some(id),
        json!({}),
    )
    .await;
    println!("deleted {id}");
    Ok(())
}

async fn rotate_secret(
    pool: &PgPool,
    id: Uuid,
    expire_previous_in: &str,
    out: &Output,
) -> anyhow::Result<()> {
    let overlap =
        parse_duration(expire_previous_in).map_err(|e| anyhow::anyhow!("--expire-previous-in: {e}"))?;
    let overlap = time::Duration::try_from(overlap)
        .ok()
        .filter(|d| *d <= webhooks::MAX_ROTATION_OVERLAP)
        .ok_or_else(|| anyhow::anyhow!("--expire-previous-in: at most 7d"))?;
    let keys = webhooks::rotate_secret_with(pool, id, None, overlap)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no webhook with id {id}"))?;
    activity::record_logged(
        pool,
        &actor(),
        activity::kind::WEBHOOK_SECRET_ROTATED,
        Some(id),
        json!({ "expire_previous_in": expire_previous_in }),
    )
    .await;
    let secret = keys.secret.as_ref().map(|s| s.expose());
    let public_key = keys.signing_key.as_ref().map(|k| k.public_key());
    if out.json {
        return print_json(&json!({"id": id, "secret": secret, "public_key": public_key}));
    }
    println!("rotated the keys of {id}; the previous ones stop signing in {expire_previous_in}");
    if let Some(pk) = public_key {
        println!("public key: {pk}");
    }
    // The secret last, alone on its line (like `tokens create`).
    if let Some(s) = secret {
        println!("new secret (shown once):");
        println!("{s}");
    }
    Ok(())
}
