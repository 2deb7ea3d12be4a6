//! `hookrelay publish`: one event, checked as the dispatcher checks it, published to the
//! events exchange with a confirm.

use anyhow::Context as _;
use hookrelay_shared::{Config, amqp};

/// Publishes one event (validated as the dispatcher would) to the events exchange.
pub async fn publish(
    config: &Config,
    event_type: String,
    data: String,
    id: Option<String>,
) -> anyhow::Result<()> {
    let data: serde_json::Value = serde_json::from_str(&data).context("--data must be JSON")?;
    if !data.is_object() {
        anyhow::bail!("--data must be a JSON object");
    }
    if !hookrelay_shared::event::is_valid_type(&event_type) {
        anyhow::bail!("--type `{event_type}`: dot-separated lowercase segments [a-z0-9_-]+, at least two");
    }
    let id = id.unwrap_or_else(hookrelay_shared::event::new_event_id);
    if !hookrelay_shared::event::is_valid_id(&id) {
        anyhow::bail!("--id: 1-128 printable ASCII characters without spaces");
    }
    let occurred_at = hookrelay_shared::event::rfc3339(time::OffsetDateTime::now_utc());
    let body = serde_json::json!({"id": id, "type": event_type, "data": data, "occurred_at": occurred_at});
    let conn = amqp::connect(&config.amqp_url, "publish")
        .await
        .context("RabbitMQ")?;
    let ch = amqp::confirm_channel(&conn).await.context("RabbitMQ channel")?;
    let names = amqp::Names::new(&config.namespace);
    amqp::declare_topology(&ch, &names)
        .await
        .context("AMQP topology")?;
    amqp::publish_event(&ch, &names, &event_type, &serde_json::to_vec(&body)?).await?;
    amqp::close(&conn, 200, "done").await;
    println!("published {id} ({event_type}) to {}", names.events_exchange);
    Ok(())
}
