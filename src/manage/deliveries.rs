//! `hookrelay deliveries list|show|retry`: the delivery log read straight from PostgreSQL, and
//! a manual retry queued on RabbitMQ.

use anyhow::Context as _;
use clap::Subcommand;
use hookrelay_shared::{
    Config, activity, amqp,
    event::rfc3339,
    manual_retry::{self, ManualRetry, Target},
};
use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    OneItem, Output, actor,
    output::{print_json, table},
};

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
    #[command(mut_arg("id", |id| id.help("An attempt id (as `deliveries list` shows)")))]
    Show(OneItem),
    /// Queue an immediate manual attempt of the delivery an attempt (or delivery) id names.
    Retry { id: Uuid },
}

/// One line of the log: attempt id, when, webhook name, type, status, response code, attempt
/// number, trigger, duration, delivery id, error.
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
        } => list(pool, webhook, status, event_type, limit, &out).await,
        DeliveriesCommand::Show(OneItem { id, out }) => show(pool, id, &out).await,
        DeliveriesCommand::Retry { id } => retry(config, pool, id).await,
    }
}

async fn list(
    pool: &PgPool,
    webhook: Option<Uuid>,
    status: Option<String>,
    event_type: Option<String>,
    limit: i64,
    out: &Output,
) -> anyhow::Result<()> {
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
    Ok(())
}

async fn show(pool: &PgPool, id: Uuid, out: &Output) -> anyhow::Result<()> {
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
    print_attempt(&v)
}

/// One attempt as `deliveries show` prints it: the fields, the request, payload and response.
fn print_attempt(v: &Value) -> anyhow::Result<()> {
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
    Ok(())
}

async fn retry(config: &Config, pool: &PgPool, id: Uuid) -> anyhow::Result<()> {
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
        Some((w, false, _)) => {
            anyhow::bail!("webhook {w} is disabled; enable it (hookrelay webhooks update {w} --enable) first")
        }
        _ => {}
    }
    if hookrelay_shared::ordering::is_held(pool, delivery.id, delivery.event_received_at).await? {
        anyhow::bail!(
            "delivery {} is held behind the head of its ordered (fifo) webhook; it is sent in its turn",
            delivery.id
        );
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
    Ok(())
}
