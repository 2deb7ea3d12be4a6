//! Manual retry as one shared operation: look a delivery up (by its id or by one of its
//! attempts' ids) and queue an immediate attempt with `trigger: "manual"` on `{ns}.deliveries`.
//!
//! The dispatcher sends a manual job at once whatever the automatic state. When it succeeds the
//! delivery becomes `succeeded`, so a still-pending automatic retry fails its PostgreSQL claim
//! and is dropped: that is how a manual success cancels the automatic schedule. Nothing here
//! touches Redis: a stale retry entry is harmless for the same reason.

use futures::TryStreamExt;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    amqp::{Names, PublishError},
    jobs::{DeliveryJob, Trigger, publish_job},
};

/// What to retry: a delivery, or the delivery an attempt belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Delivery(Uuid),
    Attempt(Uuid),
    /// The id may be either (the API's `/deliveries/{id}/retry` takes an attempt id, but a
    /// delivery id is accepted too). Tried as an attempt first, then as a delivery.
    Either(Uuid),
}

/// The outcome of a manual retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManualRetry {
    /// The job was confirmed by the broker.
    Queued {
        delivery_id: Uuid,
        /// The attempt number the job asks for (`attempt_count + 1` at the time of queuing).
        attempt: i32,
    },
    /// No delivery (or attempt) with that id.
    NotFound,
}

/// Why a manual retry could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum ManualRetryError {
    #[error("looking the delivery up: {0}")]
    Db(#[from] sqlx::Error),
    #[error("queuing the manual retry: {0}")]
    Publish(#[from] PublishError),
}

/// A delivery as a manual retry needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRef {
    pub id: Uuid,
    pub event_received_at: OffsetDateTime,
    pub attempt_count: i32,
}

impl DeliveryRef {
    /// The manual job for this delivery.
    pub fn job(&self) -> DeliveryJob {
        DeliveryJob {
            delivery_id: self.id,
            event_received_at: self.event_received_at,
            trigger: Trigger::Manual,
            attempt: self.attempt_count.saturating_add(1),
        }
    }
}

/// Finds the delivery for `target`, or `None`.
pub async fn find(pool: &PgPool, target: Target) -> Result<Option<DeliveryRef>, sqlx::Error> {
    // attempts carries event_received_at, so the delivery lookup hits one partition.
    const BY_ATTEMPT: &str = "SELECT d.id, d.event_received_at, d.attempt_count \
         FROM attempts a JOIN deliveries d \
           ON d.id = a.delivery_id AND d.event_received_at = a.event_received_at \
         WHERE a.id = $1 LIMIT 1";
    const BY_DELIVERY: &str =
        "SELECT id, event_received_at, attempt_count FROM deliveries WHERE id = $1 LIMIT 1";
    let (by_attempt, by_delivery) = match target {
        Target::Delivery(id) => (None, Some(id)),
        Target::Attempt(id) => (Some(id), None),
        Target::Either(id) => (Some(id), Some(id)),
    };
    if let Some(id) = by_attempt {
        let found = sqlx::query_as::<_, DeliveryRef>(BY_ATTEMPT)
            .bind(id)
            .fetch_optional(pool)
            .await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    if let Some(id) = by_delivery {
        return sqlx::query_as::<_, DeliveryRef>(BY_DELIVERY)
            .bind(id)
            .fetch_optional(pool)
            .await;
    }
    Ok(None)
}

/// Queues one immediate manual attempt of the delivery `target` names, waiting for the broker's
/// confirm. `channel` must be in confirm mode ([`crate::amqp::confirm_channel`]).
pub async fn retry(
    pool: &PgPool,
    channel: &lapin::Channel,
    names: &Names,
    target: Target,
) -> Result<ManualRetry, ManualRetryError> {
    let Some(delivery) = find(pool, target).await? else {
        return Ok(ManualRetry::NotFound);
    };
    let job = delivery.job();
    publish_job(channel, names, &job).await?;
    tracing::info!(delivery_id = %job.delivery_id, attempt = job.attempt, "manual retry queued");
    Ok(ManualRetry::Queued {
        delivery_id: job.delivery_id,
        attempt: job.attempt,
    })
}

/// Queues manual retries of many deliveries, e.g. the rows of the API's bulk-retry filter
/// (`SELECT id, event_received_at, attempt_count FROM deliveries WHERE ...`). Publishes are
/// pipelined (all sent, then all confirms awaited, in chunks) so thousands go quickly. Returns
/// how many were queued; on an error the ones before it stay queued.
pub async fn retry_many<S>(
    deliveries: S,
    channel: &lapin::Channel,
    names: &Names,
) -> Result<u64, ManualRetryError>
where
    S: futures::Stream<Item = Result<DeliveryRef, sqlx::Error>>,
{
    // Bounded so a huge filter doesn't hold an unbounded number of unconfirmed messages.
    const CHUNK: usize = 500;
    let mut queued = 0u64;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut deliveries = std::pin::pin!(deliveries);
    while let Some(d) = deliveries.try_next().await? {
        chunk.push(d.job());
        if chunk.len() == CHUNK {
            queued += publish_chunk(channel, names, &chunk).await?;
            chunk.clear();
        }
    }
    queued += publish_chunk(channel, names, &chunk).await?;
    Ok(queued)
}

async fn publish_chunk(
    channel: &lapin::Channel,
    names: &Names,
    jobs: &[DeliveryJob],
) -> Result<u64, ManualRetryError> {
    let results = futures::future::join_all(jobs.iter().map(|j| publish_job(channel, names, j))).await;
    let mut n = 0;
    for r in results {
        r?;
        n += 1;
    }
    Ok(n)
}
