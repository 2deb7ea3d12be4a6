//! The jobs path: delivery jobs from `{ns}.deliveries` (automatic retries, manual retries and
//! recovered first attempts). Automatic and initial jobs claim their delivery in PostgreSQL
//! first, so a job published twice sends once; a job is acked only after its attempt is
//! recorded.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use hookrelay_shared::jobs::{DeliveryJob, Trigger};
use lapin::{
    Channel,
    message::Delivery,
    options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions},
    types::FieldTable,
};
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{Core, lanes::Attempt, send::AttemptRequest};

/// Consumes `{ns}.deliveries` until `shutdown`; an error means the channel or connection failed.
pub async fn consume(core: Arc<Core>, channel: Channel, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Jobs are single attempts; the prefetch bounds how many this replica holds unacked, and
    // the unacked jobs of a crashed replica go back at once.
    channel
        .basic_qos(core.ctx.config.prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            core.names.deliveries_queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = %core.names.deliveries_queue, "consuming delivery jobs");
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = consumer.next() => next,
        };
        let delivery = match next {
            Some(Ok(d)) => d,
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("the delivery jobs consumer was cancelled by the broker"),
        };
        // No slot is taken here: the job's attempt goes through its webhook's lane like any
        // other (started, briefly queued or deferred), and the prefetch bounds the jobs held.
        let c = core.clone();
        core.tasks.spawn(async move { handle_safely(c, delivery).await });
    }
    let _ = channel
        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await;
    Ok(())
}

/// Jobs that may make their database calls at once, per process: a few more than the pool has
/// connections, so the pool stays busy while the rest of the prefetch waits in a small state.
pub const PREPARING: usize = 64;

/// The delivery a job is about.
struct Claimed {
    event_id: String,
    webhook_id: Uuid,
    event_type: String,
    /// When its retry window started: its creation, or for an ordered webhook's delivery the
    /// moment it became the head.
    created_at: OffsetDateTime,
    attempt: i32,
    /// Deferred to a rate-limit slot that it holds now.
    slot_reserved: bool,
    /// Its number, for an ordered webhook's delivery.
    seq: Option<i64>,
}

/// What became of a job.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Sent and recorded, or deferred and the deferral recorded.
    Done,
    /// Nothing to send (stale job, deleted webhook, ...).
    Skipped(&'static str),
}

/// [`handle`], with a panic turned into a nack (after a pause): never left unacked.
async fn handle_safely(core: Arc<Core>, delivery: Delivery) {
    use futures::FutureExt;
    let acker = delivery.acker.clone();
    let outcome = std::panic::AssertUnwindSafe(handle(&core, delivery))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        tracing::error!("handling a delivery job panicked; requeued");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = acker
            .nack(BasicNackOptions {
                multiple: false,
                requeue: true,
            })
            .await;
    }
}

async fn handle(core: &Arc<Core>, delivery: Delivery) {
    let job: DeliveryJob = match serde_json::from_slice(&delivery.data) {
        Ok(j) => j,
        Err(e) => {
            // Redelivering it would only fail again.
            tracing::warn!(error = %e, bytes = delivery.data.len(), "malformed delivery job dropped");
            ack(core, &delivery).await;
            return;
        }
    };
    match run_job(core, &job).await {
        Ok(Outcome::Done) => ack(core, &delivery).await,
        Ok(Outcome::Skipped(why)) => {
            tracing::debug!(delivery_id = %job.delivery_id, attempt = job.attempt, why, "job skipped");
            ack(core, &delivery).await;
        }
        Err(e) => {
            tracing::error!(error = %e, delivery_id = %job.delivery_id, "delivery job failed; requeued");
            // A short pause so a database outage does not turn into a hot loop.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = delivery
                .acker
                .nack(BasicNackOptions {
                    multiple: false,
                    requeue: true,
                })
                .await;
        }
    }
}

async fn ack(core: &Core, delivery: &Delivery) {
    if delivery.acker.ack(BasicAckOptions::default()).await.is_err() {
        // The job comes back; its claim (or a manual attempt's at-least-once) covers that.
        core.ctx.metrics.amqp_errors.get_or_create(&[("op", "ack")]).inc();
    }
}

/// Claims (or, for a manual job, looks up) the delivery, hands the attempt to the sending
/// stage and waits until it (or its deferral) is recorded. Public so tests can step one job
/// without a queue.
#[tracing::instrument(skip_all, fields(delivery_id = %job.delivery_id, trigger = job.trigger.as_str()))]
pub async fn run_job(core: &Arc<Core>, job: &DeliveryJob) -> anyhow::Result<Outcome> {
    // At most PREPARING jobs at a time make their database calls; the others (up to the
    // prefetch) wait holding only their message. Those calls' futures are boxed: they are most
    // of a job's size (about 28 KiB with sqlx's own), and a job whose attempt hangs (a black
    // hole's) waits for it the whole timeout, holding only the wait.
    let prepared = {
        let _turn = core
            .job_prepares
            .acquire()
            .await
            .map_err(|_| anyhow::anyhow!("shutting down"))?;
        Box::pin(prepare(core, job)).await?
    };
    let (req, slot_reserved) = match prepared {
        Ok(ready) => ready,
        Err(why) => return Ok(Outcome::Skipped(why)),
    };
    let (done_tx, done_rx) = oneshot::channel();
    let mut attempt = Attempt::new(req, Some(done_tx));
    attempt.slot_reserved = slot_reserved;
    core.submit(attempt);
    // Acked only once the attempt (or its deferral) is committed.
    done_rx
        .await
        .map_err(|_| anyhow::anyhow!("shutting down before the attempt was recorded"))?;
    Ok(Outcome::Done)
}

/// The job's attempt, ready to send (and whether it holds a rate-limit slot), or why there is
/// nothing to send.
async fn prepare(
    core: &Arc<Core>,
    job: &DeliveryJob,
) -> anyhow::Result<Result<(AttemptRequest, bool), &'static str>> {
    let claimed = match job.trigger {
        Trigger::Manual => manual(core, job).await?,
        Trigger::Initial | Trigger::Automatic => claim(core, job).await?,
    };
    let Some(claimed) = claimed else {
        return Ok(Err(
            "not due, already attempted, finished, or held behind its webhook's head",
        ));
    };
    let body: Option<String> =
        sqlx::query_scalar("SELECT body FROM events WHERE id = $1 AND received_at = $2")
            .bind(&claimed.event_id)
            .bind(job.event_received_at)
            .fetch_optional(&core.ctx.db)
            .await?;
    let Some(body) = body else {
        crate::ordered::fail_delivery(core, job, "the event is gone (past retention)").await?;
        return Ok(Err("the event is gone"));
    };
    let target = match core.cache.get(claimed.webhook_id) {
        Some(t) => Some(t),
        None => hookrelay_shared::webhooks::load_target(&core.ctx.db, claimed.webhook_id)
            .await?
            .map(Arc::new),
    };
    let Some(target) = target else {
        crate::ordered::fail_delivery(core, job, "the webhook was deleted").await?;
        return Ok(Err("the webhook was deleted"));
    };
    // A disabled webhook gets nothing, not even a manual retry queued before it was disabled.
    if !target.webhook.enabled && job.trigger == Trigger::Manual {
        return Ok(Err("the webhook is disabled"));
    }
    if !target.webhook.enabled {
        let why = match target.webhook.disabled_reason.as_deref() {
            Some("gone") => "webhook disabled: the endpoint answered 410 Gone",
            Some("failing") => "webhook disabled: every attempt failed for HOOKRELAY_DISABLE_AFTER",
            _ => "webhook disabled",
        };
        crate::ordered::fail_delivery(core, job, why).await?;
        return Ok(Err("the webhook is disabled"));
    }
    let req = AttemptRequest {
        delivery_id: job.delivery_id,
        event_id: claimed.event_id,
        event_received_at: job.event_received_at,
        event_type: claimed.event_type,
        body: Arc::from(body),
        target,
        attempt: claimed.attempt,
        trigger: job.trigger,
        delivery_created_at: claimed.created_at,
        seq: claimed.seq,
    };
    Ok(Ok((req, claimed.slot_reserved)))
}

type ClaimRow = (String, Uuid, String, OffsetDateTime, Option<String>, Option<i64>);

/// Takes the delivery for this attempt, extending its lease; `None` for a stale or duplicate job.
async fn claim(core: &Core, job: &DeliveryJob) -> sqlx::Result<Option<Claimed>> {
    let row: Option<ClaimRow> = sqlx::query_as(
        "UPDATE deliveries SET next_attempt_at = now() + make_interval(secs => $3), updated_at = now()
         WHERE id = $1 AND event_received_at = $2 AND state IN ('pending', 'retrying')
           AND attempt_count = $4 - 1 AND next_attempt_at <= now() + interval '5 seconds'
         RETURNING event_id, webhook_id, event_type, COALESCE(promoted_at, created_at), deferred_reason, seq",
    )
    .bind(job.delivery_id)
    .bind(job.event_received_at)
    .bind(core.ctx.config.attempt_lease.0.as_secs_f64())
    .bind(job.attempt)
    .fetch_optional(&core.ctx.db)
    .await?;
    Ok(row.map(
        |(event_id, webhook_id, event_type, created_at, deferred, seq)| Claimed {
            event_id,
            webhook_id,
            event_type,
            created_at,
            attempt: job.attempt,
            slot_reserved: deferred.as_deref() == Some("rate_limit"),
            seq,
        },
    ))
}

/// A manual retry is sent whatever the delivery's state, as the next attempt number, except
/// for a delivery held behind its ordered webhook's head (the API refuses those with a 409;
/// a job queued anyway is dropped, so the order holds).
async fn manual(core: &Core, job: &DeliveryJob) -> sqlx::Result<Option<Claimed>> {
    let row: Option<(String, Uuid, String, OffsetDateTime, i32, Option<i64>)> = sqlx::query_as(
        "SELECT event_id, webhook_id, event_type, COALESCE(promoted_at, created_at), attempt_count, seq FROM deliveries d
         WHERE id = $1 AND event_received_at = $2 AND NOT ((seq IS NOT NULL AND state IN ('pending', 'retrying')
             AND next_attempt_at IS NULL))",
    )
    .bind(job.delivery_id)
    .bind(job.event_received_at)
    .fetch_optional(&core.ctx.db)
    .await?;
    Ok(row.map(
        |(event_id, webhook_id, event_type, created_at, count, seq)| Claimed {
            event_id,
            webhook_id,
            event_type,
            created_at,
            attempt: count + 1,
            slot_reserved: false,
            seq,
        },
    ))
}
