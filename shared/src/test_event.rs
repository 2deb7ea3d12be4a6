//! Test events (`POST /api/v1/webhooks/{id}/test`, `hookrelay webhooks test`): a `webhook.test`
//! event stored with one delivery to one webhook, then a first-attempt job on
//! `{ns}.deliveries`, so a dispatcher signs, sends and records it like any other attempt.
//!
//! The delivery is stored `pending` and due at once before the job is published: if the
//! publish is lost, the scheduler's reconcile finds the delivery and fires it (the dispatcher's
//! claim makes sure it is sent once). Nothing here talks to the endpoint. The webhook need not
//! subscribe to `webhook.test`, and its payload filter is not applied: the job path sends what
//! it is given.

use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    amqp::{Names, PublishError},
    event::{self, new_event_id},
    ids,
    jobs::{DeliveryJob, Trigger, publish_job},
    webhooks::Webhook,
};

/// The event type of test events.
pub const EVENT_TYPE: &str = "webhook.test";

/// A stored test event, whose job is still to be published ([`publish`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TestEvent {
    pub event_id: String,
    pub delivery_id: Uuid,
    #[serde(skip)]
    pub job: DeliveryJob,
}

/// Why no test event was sent.
#[derive(Debug, thiserror::Error)]
pub enum TestEventError {
    #[error("no webhook with id {0}")]
    NotFound(Uuid),
    #[error("webhook {0} is disabled; enable it before sending it a test event")]
    Disabled(Uuid),
    #[error("storing the test event: {0}")]
    Db(#[from] sqlx::Error),
    #[error("queuing the test event: {0}")]
    Publish(#[from] PublishError),
}

/// The exact body signed and sent: `{"id","type":"webhook.test","timestamp","data"}` with
/// `data` = `{"webhook_id", "webhook_name", "message"}`.
fn body(event_id: &str, w: &Webhook, now: OffsetDateTime) -> Result<String, sqlx::Error> {
    let data = serde_json::json!({
        "webhook_id": w.id,
        "webhook_name": w.name,
        "message": "A test event sent from hookrelay. No action is needed.",
    });
    let encode = |e: serde_json::Error| sqlx::Error::Encode(Box::new(e));
    let raw = RawValue::from_string(data.to_string()).map_err(encode)?;
    event::outgoing_body(event_id, EVENT_TYPE, now, &raw).map_err(encode)
}

/// Now, to the microsecond (PostgreSQL's precision: the job carries the partition key, which
/// must match the stored value exactly).
fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap_or(now)
}

/// Stores a test event and its one delivery to webhook `id` (one transaction), due at once.
/// `NotFound` for an unknown or deleted webhook, `Disabled` for a disabled one.
pub async fn store(pool: &PgPool, id: Uuid) -> Result<TestEvent, TestEventError> {
    let webhook = crate::webhooks::get(pool, id)
        .await?
        .ok_or(TestEventError::NotFound(id))?;
    if !webhook.enabled {
        return Err(TestEventError::Disabled(id));
    }
    let received_at = now_micros();
    let event_id = new_event_id();
    let delivery_id = ids::new_id();
    let body = body(&event_id, &webhook, received_at)?;
    match insert(pool, &event_id, delivery_id, id, &body, received_at).await {
        Err(e) if missing_partition(&e) => {
            crate::db::ensure_partitions(pool, 1, crate::db::PARTITION_DAYS_AHEAD)
                .await
                .map_err(|e| match e {
                    crate::db::DbError::Sqlx(e) => e,
                    other => sqlx::Error::Protocol(other.to_string()),
                })?;
            insert(pool, &event_id, delivery_id, id, &body, received_at).await?;
        }
        other => other?,
    }
    Ok(TestEvent {
        event_id,
        delivery_id,
        job: DeliveryJob {
            delivery_id,
            event_received_at: received_at,
            trigger: Trigger::Initial,
            attempt: 1,
        },
    })
}

fn missing_partition(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.code().is_some_and(|c| c == "23514") && d.message().contains("no partition"))
}

async fn insert(
    pool: &PgPool,
    event_id: &str,
    delivery_id: Uuid,
    webhook_id: Uuid,
    body: &str,
    received_at: OffsetDateTime,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO events (id, received_at, event_type, category, occurred_at, body)
         VALUES ($1, $2, $3, $4, $2, $5)",
    )
    .bind(event_id)
    .bind(received_at)
    .bind(EVENT_TYPE)
    .bind(event::category_of(EVENT_TYPE))
    .bind(body)
    .execute(&mut *tx)
    .await?;
    // Due at once: the job claims it now; without the job, the scheduler's reconcile fires it.
    sqlx::query(
        "INSERT INTO deliveries (id, event_id, event_received_at, webhook_id, event_type, state,
            attempt_count, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, 'pending', 0, now())",
    )
    .bind(delivery_id)
    .bind(event_id)
    .bind(received_at)
    .bind(webhook_id)
    .bind(EVENT_TYPE)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Publishes the test event's first-attempt job and waits for the broker's confirm.
/// `channel` must be in confirm mode ([`crate::amqp::confirm_channel`]).
pub async fn publish(channel: &lapin::Channel, names: &Names, test: &TestEvent) -> Result<(), PublishError> {
    publish_job(channel, names, &test.job).await?;
    // Debug: the API logs the request itself, and the CLI's `--json` output is on stdout.
    tracing::debug!(delivery_id = %test.delivery_id, event_id = %test.event_id, "test event queued");
    Ok(())
}

/// [`store`] then [`publish`] (the CLI's path).
pub async fn send(
    pool: &PgPool,
    channel: &lapin::Channel,
    names: &Names,
    id: Uuid,
) -> Result<TestEvent, TestEventError> {
    let test = store(pool, id).await?;
    publish(channel, names, &test).await?;
    Ok(test)
}
