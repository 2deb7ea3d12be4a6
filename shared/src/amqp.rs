//! The AMQP topology and connection helpers.
//!
//! | name | kind | what |
//! | --- | --- | --- |
//! | `{ns}.events` | topic exchange, durable | publishers send events here, routing key = type |
//! | `{ns}.events` | quorum queue, bound with `#` | the dispatchers' competing consumers |
//! | `{ns}.events.dead` | quorum queue, bounded ([`DEAD_MAX_LENGTH`], [`DEAD_MAX_BYTES`], oldest dropped) | messages that are not events, with `x-hookrelay-error` |
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

/// The largest frame asked of the broker, unless the URL sets `frame_max`. lapin keeps 32
/// frames of buffer each way per connection, all touched in time: at RabbitMQ's default
/// (128 KiB) that is 8 MiB a connection, at this 2 MiB. A larger message travels as several
/// frames.
pub const FRAME_MAX: u32 = 32 * 1024;

/// Connects to RabbitMQ, naming the connection after the component.
pub async fn connect(url: &str, component: &str) -> lapin::Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name(format!("hookrelay-{component}").into());
    match url.parse::<lapin::uri::AMQPUri>() {
        Ok(mut uri) => {
            uri.query.frame_max.get_or_insert(FRAME_MAX);
            Connection::connect_uri(uri, props).await
        }
        // lapin says what is wrong with the URL.
        Err(_) => Connection::connect(url, props).await,
    }
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-queue-type"),
        AMQPValue::LongString("quorum".into()),
    );
    args
}

/// At most this many messages stay in `{ns}.events.dead`; the oldest are dropped beyond.
pub const DEAD_MAX_LENGTH: i64 = 100_000;
/// At most this many bytes of message bodies stay in `{ns}.events.dead` (1 GiB).
pub const DEAD_MAX_BYTES: i64 = 1 << 30;

/// The arguments of `{ns}.events.dead`: a quorum queue that drops its oldest messages when full
/// (a publisher sending garbage must not fill the broker's disk).
pub fn dead_queue_arguments() -> FieldTable {
    let mut args = quorum();
    args.insert(
        ShortString::from("x-max-length"),
        AMQPValue::LongLongInt(DEAD_MAX_LENGTH),
    );
    args.insert(
        ShortString::from("x-max-length-bytes"),
        AMQPValue::LongLongInt(DEAD_MAX_BYTES),
    );
    args.insert(
        ShortString::from("x-overflow"),
        AMQPValue::LongString("drop-head".into()),
    );
    args
}

/// Whether the bound was applied to `{ns}.events.dead`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadQueue {
    /// Declared with [`dead_queue_arguments`] (new, or already bounded).
    Bounded,
    /// It existed without the bound (declared before it had one): the broker refused the
    /// redeclaration (PRECONDITION_FAILED). It keeps working unbounded; a warning says how to
    /// bound it with a policy.
    ExistingUnbounded,
}

/// Declares `{ns}.events.dead` with its bound, on a channel of its own: a queue declared
/// before the bound existed makes the broker refuse the redeclaration and close the channel,
/// which must not take the caller's channel down. That case is logged with the fix (a policy,
/// see docs/operations.md) and is not an error.
pub async fn declare_dead_queue(conn: &Connection, names: &Names) -> lapin::Result<DeadQueue> {
    let ch = conn.create_channel().await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    match ch
        .queue_declare(names.dead_queue.as_str().into(), durable, dead_queue_arguments())
        .await
    {
        Ok(_) => {
            let _ = ch.close(200, "declared".into()).await;
            Ok(DeadQueue::Bounded)
        }
        Err(e) if is_precondition_failed(&e) => {
            tracing::warn!(
                queue = %names.dead_queue,
                "the dead-letter queue exists without a length bound; bound it with: rabbitmqctl set_policy \
                 hookrelay-dead '^{}$' '{{\"max-length\":{DEAD_MAX_LENGTH},\"max-length-bytes\":{DEAD_MAX_BYTES},\"overflow\":\"drop-head\"}}' \
                 --apply-to queues",
                names.dead_queue.replace('.', "\\.")
            );
            Ok(DeadQueue::ExistingUnbounded)
        }
        Err(e) => Err(e),
    }
}

fn is_precondition_failed(e: &lapin::Error) -> bool {
    // 406 PRECONDITION_FAILED: "inequivalent arg ..." on redeclaration.
    let text = e.to_string();
    text.contains("PRECONDITION_FAILED") || text.contains("PRECONDITION-FAILED") || text.contains("406")
}

/// Declares the exchange, the events and deliveries queues and the binding (idempotent). The
/// dead-letter queue is declared by [`declare_dead_queue`] (whoever dead-letters, and
/// `hookrelay migrate`).
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
    for queue in [&names.events_queue, &names.deliveries_queue] {
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
