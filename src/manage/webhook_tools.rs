//! `hookrelay webhooks test|stats`: a test event through the pipeline, and a webhook's health
//! stats read from the rollup (as `POST /api/v1/webhooks/{id}/test` and
//! `GET /api/v1/webhooks/{id}/stats` do).

use anyhow::Context as _;
use hookrelay_shared::{
    Config, activity, amqp, circuit,
    event::rfc3339,
    stats::Window,
    stats_store::{self, success_rate},
    test_event::{self, TestEventError},
    webhooks,
};
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Output, actor, output::print_json};

/// Stores a `webhook.test` event for `id` and queues its first attempt for a dispatcher.
pub(super) async fn test(config: &Config, pool: &PgPool, id: Uuid, out: &Output) -> anyhow::Result<()> {
    // Refused before RabbitMQ is reached, with the same words as the API.
    match webhooks::get(pool, id).await? {
        None => anyhow::bail!("no webhook with id {id}"),
        Some(w) if !w.enabled => anyhow::bail!(
            "webhook {id} is disabled; enable it (hookrelay webhooks update {id} --enable) first"
        ),
        Some(_) => {}
    }
    let conn = amqp::connect(&config.amqp_url, "test-event")
        .await
        .context("RabbitMQ")?;
    let result = async {
        let ch = amqp::confirm_channel(&conn).await.context("RabbitMQ channel")?;
        let names = amqp::Names::new(&config.namespace);
        test_event::send(pool, &ch, &names, id).await.map_err(|e| match e {
            TestEventError::Publish(e) => anyhow::anyhow!(
                "the test event is stored but its job could not be queued ({e}); the scheduler will send it"
            ),
            other => anyhow::anyhow!("{other}"),
        })
    }
    .await;
    amqp::close(&conn, 200, "done").await;
    let sent = result?;
    activity::record_logged(
        pool,
        &actor(),
        activity::kind::WEBHOOK_TESTED,
        Some(id),
        json!({"event_id": sent.event_id, "delivery_id": sent.delivery_id}),
    )
    .await;
    if out.json {
        return print_json(&json!({"event_id": sent.event_id, "delivery_id": sent.delivery_id}));
    }
    println!(
        "queued test event {} (delivery {})",
        sent.event_id, sent.delivery_id
    );
    println!("follow it: hookrelay deliveries list --webhook {id} --event-type webhook.test");
    Ok(())
}

/// A webhook's attempts in `window`, and its circuit when Redis answers.
pub(super) async fn stats(
    config: &Config,
    pool: &PgPool,
    id: Uuid,
    window: &str,
    out: &Output,
) -> anyhow::Result<()> {
    let w = Window::parse(window)
        .ok_or_else(|| anyhow::anyhow!("--window: `{window}` is not one of 1h, 24h, 7d"))?;
    if webhooks::get(pool, id).await?.is_none() {
        anyhow::bail!("no webhook with id {id}");
    }
    let now = OffsetDateTime::now_utc();
    let c = stats_store::read(pool, id, w, now).await?;
    let circuit = read_circuit(config, id).await;
    let [p50, p95, p99] = stats_store::response_ms(&c);
    let v = json!({
        "webhook_id": id,
        "window": w.as_str(),
        "since": rfc3339(w.bounds(now).0),
        "until": rfc3339(now),
        "attempts": c.attempts,
        "succeeded": c.succeeded.min(c.attempts),
        "failed": c.attempts.saturating_sub(c.succeeded),
        "success_rate": success_rate(c.attempts, c.succeeded),
        "response_ms": {"p50": p50, "p95": p95, "p99": p99},
        "last_success_at": c.last_success_at.map(rfc3339),
        "last_failure_at": c.last_failure_at.map(rfc3339),
        "circuit": circuit,
    });
    if out.json {
        return print_json(&v);
    }
    let ms = |p: Option<f64>| p.map_or("-".into(), |v| format!("{v} ms"));
    let rate = success_rate(c.attempts, c.succeeded).map_or("-".into(), |r| format!("{:.2} %", r * 100.0));
    let at = |t: Option<OffsetDateTime>| t.map_or("-".into(), rfc3339);
    let rows = [
        (
            "window",
            format!("{} (since {})", w.as_str(), rfc3339(w.bounds(now).0)),
        ),
        ("attempts", c.attempts.to_string()),
        ("succeeded", c.succeeded.min(c.attempts).to_string()),
        ("failed", c.attempts.saturating_sub(c.succeeded).to_string()),
        ("success rate", rate),
        ("response p50", ms(p50)),
        ("response p95", ms(p95)),
        ("response p99", ms(p99)),
        ("last success", at(c.last_success_at)),
        ("last failure", at(c.last_failure_at)),
        (
            "circuit",
            circuit.unwrap_or_else(|| "unknown (Redis unreachable)".into()),
        ),
    ];
    for (k, v) in rows {
        println!("{k:<14} {v}");
    }
    Ok(())
}

/// The circuit from the dispatchers' shared state; `None` when Redis does not answer in 2 s.
async fn read_circuit(config: &Config, id: Uuid) -> Option<String> {
    circuit::read_once(
        &config.redis_url,
        &config.namespace,
        id,
        std::time::Duration::from_secs(2),
    )
    .await
    .map(|h| h.circuit)
}
