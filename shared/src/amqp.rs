//! The AMQP topology and connection helpers.
//!
//! | name | kind | what |
//! | --- | --- | --- |
//! | `{ns}.events` | topic exchange, durable | publishers send events here, routing key = type |
//! | `{ns}.events` | quorum queue, bound with `#` | the dispatchers' competing consumers |
//! | `{ns}.events.dead` | quorum queue | messages that are not events, with `x-hookrelay-error` |
//! | `{ns}.deliveries` | quorum queue | delivery jobs (retries, manual retries, recovery) |

use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind,
    options::{
        BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
        QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable, ShortString},
};

/// The names of one namespace's exchanges and queues.
#[derive(Clone, Debug)]
pub struct Names {
    pub events_exchange: String,
    pub events_queue: String,
    pub dead_queue: String,
    pub deliveries_queue: String,
}

impl Names {
    pub fn new(ns: &str) -> Self {
        Self {
            events_exchange: format!("{ns}.events"),
            events_queue: format!("{ns}.events"),
            dead_queue: format!("{ns}.events.dead"),
            deliveries_queue: format!("{ns}.deliveries"),
        }
    }
}

/// How long closing a connection may take. lapin's `close` waits for the broker's close-ok and
/// never returns when the connection has already failed: a dispatcher hung for good after
/// SIGTERM that way (its log ended at "Connection error ... Closing (channel.close)"). Past
/// this, the connection is dropped instead, which closes the socket.
pub const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Closes `conn` with `code` and `reason`, giving up after [`CLOSE_TIMEOUT`].
pub async fn close(conn: &Connection, code: u16, reason: &str) {
    match tokio::time::timeout(CLOSE_TIMEOUT, conn.close(code, reason.into())).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "closing the AMQP connection failed"),
        Err(_) => tracing::warn!(
            timeout_ms = CLOSE_TIMEOUT.as_millis() as u64,
            "closing the AMQP connection timed out; dropping it"
        ),
    }
}

/// Header naming why a message was dead-lettered.
pub const ERROR_HEADER: &str = "x-hookrelay-error";

/// Connects to RabbitMQ, naming the connection after the component.
pub async fn connect(url: &str, component: &str) -> lapin::Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name(format!("hookrelay-{component}").into());
    Connection::connect(url, props).await
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-queue-type"),
        AMQPValue::LongString("quorum".into()),
    );
    args
}

/// Declares the exchange, queues and binding (idempotent).
pub async fn declare_topology(channel: &Channel, names: &Names) -> lapin::Result<()> {
    channel
        .exchange_declare(
            names.events_exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    for queue in [&names.events_queue, &names.dead_queue, &names.deliveries_queue] {
        channel
            .queue_declare(queue.as_str().into(), durable, quorum())
            .await?;
    }
    channel
        .queue_bind(
            names.events_queue.as_str().into(),
            names.events_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// A channel in publisher-confirm mode.
pub async fn confirm_channel(conn: &Connection) -> lapin::Result<Channel> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(ch)
}

/// Why a publish did not go through.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("could not encode the message: {0}")]
    Encode(String),
}

/// Publishes persistently and waits for the broker's confirm (the channel must be in confirm mode).
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Result<(), PublishError> {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            properties.with_delivery_mode(2),
        )
        .await?
        .await?;
    if confirm.is_nack() {
        return Err(PublishError::Nacked);
    }
    Ok(())
}

/// Publishes one event as a publisher would (JSON, persistent, routing key = type).
pub async fn publish_event(
    channel: &Channel,
    names: &Names,
    event_type: &str,
    body: &[u8],
) -> Result<(), PublishError> {
    publish_confirmed(
        channel,
        &names.events_exchange,
        event_type,
        body,
        BasicProperties::default().with_content_type("application/json".into()),
    )
    .await
}
