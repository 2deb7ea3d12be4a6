//! The management commands that talk to PostgreSQL (and RabbitMQ for a retry) directly, like
//! `webhooks create`: `webhooks list|show|update|delete|rotate-secret`,
//! `deliveries list|show|retry`, `settings show|set`. Tables for people by default, `--json`
//! for scripts. Changes are written to the activity log with the actor `cli`.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use hookrelay_shared::{
    Config, activity, amqp,
    duration::{format_duration, parse_duration, parse_duration_list},
    event::rfc3339,
    manual_retry::{self, ManualRetry, Target},
    retry::RetryPolicySpec,
    settings::{self, Change, Settings},
    webhooks::{self, Webhook, WebhookPatch},
};
use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// The activity log's actor for changes made on the command line.
fn actor() -> activity::Actor {
    activity::Actor {
        name: "cli".into(),
        token_id: None,
    }
}

#[derive(Args)]
pub struct Output {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

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
    Show {
        id: Uuid,
        #[command(flatten)]
        out: Output,
    },
    /// Change the given fields of a webhook.
    Update {
        id: Uuid,
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
}

#[derive(Subcommand)]
pub enum DeliveriesCommand {
    /// The delivery log, newest first (one line per attempt).
    List {
        /// One webhook's attempts.
        #[arg(long)]
        webhook: Option<Uuid>,
        /// `success` or `failed`.
        #[arg(long, value_parser = ["success", "failed"])]
        status: Option<String>,
        /// An exact event type.
        #[arg(long)]
        event_type: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[command(flatten)]
        out: Output,
    },
    /// One attempt in full: request headers, payload, response.
    Show {
        /// An attempt id (as `deliveries list` shows).
        id: Uuid,
        #[command(flatten)]
        out: Output,
    },
    /// Queue an immediate manual attempt of the delivery an attempt (or delivery) id names.
    Retry { id: Uuid },
}

#[derive(Subcommand)]
pub enum SettingsCommand {
    /// The data retention and the default retry policy in force, and where each comes from.
    Show {
        #[command(flatten)]
        out: Output,
    },
    /// Change them; every running component takes the change up within
    /// HOOKRELAY_SETTINGS_REFRESH (10 s by default).
    Set {
        /// 1d-365d, or `default` for HOOKRELAY_RETENTION.
        #[arg(long)]
        retention: Option<String>,
        /// Automatic retries (0-100), spread over --retry-window.
        #[arg(long, requires = "retry_window", conflicts_with = "retry_schedule")]
        retry_max: Option<u32>,
        #[arg(long, requires = "retry_max")]
        retry_window: Option<String>,
        /// Explicit delays, e.g. `1s,1m,10m`.
        #[arg(long, conflicts_with = "retry_default")]
        retry_schedule: Option<String>,
        /// Go back to HOOKRELAY_RETRY_* for the default retry policy.
        #[arg(long, conflicts_with = "retry_max")]
        retry_default: bool,
        #[command(flatten)]
        out: Output,
    },
}

/// Prints rows as a table with a header line, each column as wide as its widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_uppercase()).collect());
    for r in rows {
        line(r.clone());
    }
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
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
        ("created", rfc3339(w.created_at)),
        ("updated", rfc3339(w.updated_at)),
    ];
    for (k, v) in rows {
        println!("{k:<14} {v}");
    }
}

pub async fn webhooks(command: WebhooksManage, config: &Config, pool: &PgPool) -> anyhow::Result<()> {
    match command {
        WebhooksManage::List { limit, out } => {
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
        }
        WebhooksManage::Show { id, out } => {
            let w = webhooks::get(pool, id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no webhook with id {id}"))?;
            if out.json {
                return print_json(&webhook_json(&w)?);
            }
            show_webhook(&w);
        }
        WebhooksManage::Update {
            id,
            name,
            url,
            events,
            enable,
            disable,
            retry_policy,
            max_in_flight,
            rate_limit,
            out,
        } => {
            let retry_policy = retry_policy
                .map(|p| match p.as_str() {
                    "default" => Ok(None),
                    text => serde_json::from_str::<RetryPolicySpec>(text)
                        .map(Some)
                        .map_err(|e| anyhow::anyhow!("--retry-policy: {e}")),
                })
                .transpose()?;
            let rate_limit = rate_limit
                .map(|r| match r.as_str() {
                    "none" => Ok(None),
                    text => text.parse::<f64>().map(Some).map_err(|_| {
                        anyhow::anyhow!("--rate-limit: a number of requests per second, or `none`")
                    }),
                })
                .transpose()?;
            let patch = WebhookPatch {
                name,
                url,
                event_types: events.map(|e| {
                    e.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                }),
                enabled: if enable {
                    Some(true)
                } else if disable {
                    Some(false)
                } else {
                    None
                },
                retry_policy,
                max_in_flight,
                rate_limit,
                ..Default::default()
            };
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
            ]
            .into_iter()
            .filter_map(|(f, given)| given.then_some(f))
            .collect();
            let w = webhooks::update(pool, id, patch)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no webhook with id {id}"))?;
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
            if out.json {
                return print_json(&webhook_json(&w)?);
            }
            show_webhook(&w);
        }
        WebhooksManage::Delete { id } => {
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
        }
        WebhooksManage::RotateSecret {
            id,
            expire_previous_in,
            out,
        } => {
            let overlap = parse_duration(&expire_previous_in)
                .map_err(|e| anyhow::anyhow!("--expire-previous-in: {e}"))?;
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
        }
    }
    Ok(())
}

type LogRow = (
    Uuid,
    OffsetDateTime,
    Option<String>,
    String,
    String,
    Option<i32>,
    i32,
    String,
    i32,
    Uuid,
    Option<String>,
);

pub async fn deliveries(command: DeliveriesCommand, config: &Config, pool: &PgPool) -> anyhow::Result<()> {
    match command {
        DeliveriesCommand::List {
            webhook,
            status,
            event_type,
            limit,
            out,
        } => {
            let rows: Vec<LogRow> = sqlx::query_as(
                "SELECT a.id, a.attempted_at, w.name, a.event_type, a.status, a.response_code, a.attempt,
                        a.trigger, a.duration_ms, a.delivery_id, a.error
                 FROM attempts a LEFT JOIN webhooks w ON w.id = a.webhook_id
                 WHERE ($1::uuid IS NULL OR a.webhook_id = $1) AND ($2::text IS NULL OR a.status = $2)
                   AND ($3::text IS NULL OR a.event_type = $3)
                 ORDER BY a.attempted_at DESC, a.id DESC LIMIT $4",
            )
            .bind(webhook)
            .bind(status)
            .bind(event_type)
            .bind(limit.clamp(1, 10_000))
            .fetch_all(pool)
            .await?;
            if out.json {
                let items: Vec<Value> = rows
                    .iter()
                    .map(|(id, at, name, t, st, code, n, trig, ms, did, err)| {
                        json!({"id": id, "delivery_id": did, "attempted_at": rfc3339(*at), "webhook_name": name,
                               "event_type": t, "status": st, "response_code": code, "attempt": n,
                               "trigger": trig, "duration_ms": ms, "error": err})
                    })
                    .collect();
                return print_json(&json!({ "items": items }));
            }
            let table_rows: Vec<Vec<String>> = rows
                .iter()
                .map(|(id, at, name, t, st, code, n, trig, ms, _, err)| {
                    vec![
                        id.to_string(),
                        rfc3339(*at),
                        name.clone().unwrap_or_else(|| "(deleted)".into()),
                        t.clone(),
                        st.clone(),
                        code.map_or_else(|| err.clone().unwrap_or_else(|| "-".into()), |c| c.to_string()),
                        format!("{n} {trig}"),
                        format!("{ms} ms"),
                    ]
                })
                .collect();
            table(
                &[
                    "id",
                    "attempted at",
                    "webhook",
                    "event type",
                    "status",
                    "response",
                    "attempt",
                    "time",
                ],
                &table_rows,
            );
        }
        DeliveriesCommand::Show { id, out } => {
            let row: Option<(Value,)> = sqlx::query_as(
                "SELECT jsonb_build_object(
                    'id', a.id, 'delivery_id', a.delivery_id, 'event_id', a.event_id, 'event_type', a.event_type,
                    'webhook', jsonb_build_object('id', a.webhook_id, 'name', w.name),
                    'status', a.status, 'attempt', a.attempt, 'trigger', a.trigger,
                    'attempted_at', a.attempted_at, 'duration_ms', a.duration_ms, 'error', a.error,
                    'request', jsonb_build_object('url', a.request_url, 'method', 'POST', 'headers', a.request_headers),
                    'payload', e.body::jsonb,
                    'response', CASE WHEN a.response_code IS NULL THEN NULL ELSE jsonb_build_object(
                        'status', a.response_code, 'headers', a.response_headers, 'body', a.response_body,
                        'body_truncated', a.response_body_truncated) END)
                 FROM attempts a LEFT JOIN webhooks w ON w.id = a.webhook_id
                 LEFT JOIN events e ON e.id = a.event_id AND e.received_at = a.event_received_at
                 WHERE a.id = $1 LIMIT 1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?;
            let (v,) = row.ok_or_else(|| anyhow::anyhow!("no attempt with id {id}"))?;
            if out.json {
                return print_json(&v);
            }
            let s = |k: &str| match &v[k] {
                Value::String(s) => s.clone(),
                Value::Null => "-".into(),
                other => other.to_string(),
            };
            for (label, key) in [
                ("attempt", "id"),
                ("delivery", "delivery_id"),
                ("event", "event_id"),
                ("event type", "event_type"),
                ("status", "status"),
                ("attempt no.", "attempt"),
                ("trigger", "trigger"),
                ("attempted at", "attempted_at"),
                ("duration ms", "duration_ms"),
                ("error", "error"),
            ] {
                println!("{label:<13} {}", s(key));
            }
            println!(
                "{:<13} {} ({})",
                "webhook",
                v["webhook"]["name"].as_str().unwrap_or("(deleted)"),
                v["webhook"]["id"]
            );
            println!("\nrequest: POST {}", v["request"]["url"].as_str().unwrap_or(""));
            if let Some(h) = v["request"]["headers"].as_object() {
                for (k, val) in h {
                    println!("  {k}: {}", val.as_str().unwrap_or(&val.to_string()));
                }
            }
            println!("\npayload:\n{}", serde_json::to_string_pretty(&v["payload"])?);
            match v["response"].as_object() {
                None => println!("\nresponse: none"),
                Some(r) => {
                    println!("\nresponse: {}", r.get("status").cloned().unwrap_or_default());
                    if let Some(h) = r.get("headers").and_then(Value::as_object) {
                        for (k, val) in h {
                            println!("  {k}: {}", val.as_str().unwrap_or(&val.to_string()));
                        }
                    }
                    let truncated = r.get("body_truncated").and_then(Value::as_bool).unwrap_or(false);
                    println!(
                        "\n{}{}",
                        r.get("body").and_then(Value::as_str).unwrap_or(""),
                        if truncated { "\n(truncated)" } else { "" }
                    );
                }
            }
        }
        DeliveriesCommand::Retry { id } => {
            let delivery = manual_retry::find(pool, Target::Either(id))
                .await?
                .ok_or_else(|| anyhow::anyhow!("no attempt or delivery with id {id}"))?;
            let hook: Option<(Uuid, bool, bool)> = sqlx::query_as(
                "SELECT w.id, w.enabled, w.deleted_at IS NOT NULL FROM deliveries d
                 JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = $1 AND d.event_received_at = $2",
            )
            .bind(delivery.id)
            .bind(delivery.event_received_at)
            .fetch_optional(pool)
            .await?;
            match hook {
                Some((w, _, true)) => {
                    anyhow::bail!("webhook {w} was deleted; its deliveries can't be retried")
                }
                Some((w, false, _)) => anyhow::bail!(
                    "webhook {w} is disabled; enable it (hookrelay webhooks update {w} --enable) first"
                ),
                _ => {}
            }
            let conn = amqp::connect(&config.amqp_url, "retry")
                .await
                .context("RabbitMQ")?;
            let ch = amqp::confirm_channel(&conn).await.context("RabbitMQ channel")?;
            let names = amqp::Names::new(&config.namespace);
            let result = manual_retry::retry(pool, &ch, &names, Target::Delivery(delivery.id)).await;
            amqp::close(&conn, 200, "done").await;
            match result.map_err(|e| anyhow::anyhow!("{e}"))? {
                ManualRetry::Queued { delivery_id, attempt } => {
                    activity::record_logged(
                        pool,
                        &actor(),
                        activity::kind::DELIVERY_RETRIED,
                        hook.map(|h| h.0),
                        json!({"delivery_id": delivery_id, "attempt": attempt}),
                    )
                    .await;
                    println!("queued attempt {attempt} of delivery {delivery_id}");
                }
                ManualRetry::NotFound => anyhow::bail!("no attempt or delivery with id {id}"),
            }
        }
    }
    Ok(())
}

fn settings_json(config: &Config, stored: Option<&settings::Stored>) -> Value {
    let base = Settings::from_config(config);
    let s = match stored {
        Some(st) => base.clone().with(st),
        None => base.clone(),
    };
    let source = |set: bool| if set { "stored" } else { "config" };
    json!({
        "retention": format_duration(s.retention),
        "retry": serde_json::to_value(settings::spec_of(&s.retry)).unwrap_or_default(),
        "source": {
            "retention": source(stored.is_some_and(|s| s.retention.is_some())),
            "retry": source(stored.is_some_and(|s| s.retry.is_some())),
        },
        "defaults": {
            "retention": format_duration(base.retention),
            "retry": serde_json::to_value(settings::spec_of(&base.retry)).unwrap_or_default(),
        },
        "updated_at": stored.and_then(|s| s.updated_at).map(rfc3339),
        "updated_by": stored.and_then(|s| s.updated_by.clone()),
    })
}

fn print_settings(v: &Value) {
    let retry = match &v["retry"] {
        r if r["schedule"].is_array() => format!(
            "schedule {}",
            r["schedule"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        ),
        r => format!(
            "{} retries over {}",
            r["max_retries"],
            r["window"].as_str().unwrap_or("?")
        ),
    };
    table(
        &["setting", "value", "from"],
        &[
            vec![
                "retention".into(),
                v["retention"].as_str().unwrap_or("").into(),
                v["source"]["retention"].as_str().unwrap_or("").into(),
            ],
            vec![
                "retry".into(),
                retry,
                v["source"]["retry"].as_str().unwrap_or("").into(),
            ],
        ],
    );
    if let Some(at) = v["updated_at"].as_str() {
        println!(
            "\nlast changed {at} by {}",
            v["updated_by"].as_str().unwrap_or("?")
        );
    }
}

pub async fn settings_command(
    command: SettingsCommand,
    config: &Config,
    pool: &PgPool,
) -> anyhow::Result<()> {
    match command {
        SettingsCommand::Show { out } => {
            let stored = settings::load(pool).await?;
            let v = settings_json(config, stored.as_ref());
            if out.json {
                return print_json(&v);
            }
            print_settings(&v);
        }
        SettingsCommand::Set {
            retention,
            retry_max,
            retry_window,
            retry_schedule,
            retry_default,
            out,
        } => {
            let retention = match retention.as_deref() {
                None => Change::Keep,
                Some("default") => Change::Reset,
                Some(text) => {
                    Change::Set(parse_duration(text).map_err(|e| anyhow::anyhow!("--retention: {e}"))?)
                }
            };
            let retry = if retry_default {
                Change::Reset
            } else if let Some(list) = retry_schedule {
                let delays: Vec<Duration> =
                    parse_duration_list(&list).map_err(|e| anyhow::anyhow!("--retry-schedule: {e}"))?;
                Change::Set(RetryPolicySpec {
                    max_retries: None,
                    window: None,
                    schedule: Some(
                        delays
                            .into_iter()
                            .map(hookrelay_shared::duration::HumanDuration)
                            .collect(),
                    ),
                })
            } else if let (Some(max), Some(window)) = (retry_max, retry_window) {
                let window = parse_duration(&window).map_err(|e| anyhow::anyhow!("--retry-window: {e}"))?;
                Change::Set(RetryPolicySpec {
                    max_retries: Some(max),
                    window: Some(hookrelay_shared::duration::HumanDuration(window)),
                    schedule: None,
                })
            } else {
                Change::Keep
            };
            if retention == Change::Keep && retry == Change::Keep {
                anyhow::bail!(
                    "give --retention, --retry-max with --retry-window, --retry-schedule or --retry-default"
                );
            }
            let changed = settings::change(pool, config, retention, retry, &actor())
                .await
                .map_err(|e| match e {
                    // The message names the API's field; say the flag.
                    settings::ChangeError::Invalid(d) => anyhow::anyhow!("{}", flag_names(&d)),
                    settings::ChangeError::Db(e) => anyhow::Error::new(e),
                })?;
            let v = settings_json(config, changed.after.as_ref());
            if out.json {
                return print_json(&v);
            }
            print_settings(&v);
            println!(
                "\nrunning components use it within {}",
                format_duration(config.settings_refresh.0)
            );
        }
    }
    Ok(())
}

/// An error about `retention` or `retry.<field>` in terms of the command's flags.
fn flag_names(detail: &str) -> String {
    for (field, flag) in [
        ("retry.max_retries", "--retry-max"),
        ("retry.window", "--retry-window"),
        ("retry.schedule", "--retry-schedule"),
        ("retry: max_retries", "--retry-max"),
        ("retry: schedule", "--retry-schedule"),
        ("retention", "--retention"),
    ] {
        if let Some(rest) = detail.strip_prefix(field) {
            return format!("{flag}{rest}");
        }
    }
    detail.to_owned()
}
