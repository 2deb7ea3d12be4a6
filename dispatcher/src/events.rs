//! Intake: take batches off `{ns}.events`, dead-letter what is not an event, store the new
//! events and their deliveries (one transaction a batch, [`PIPELINE`] batches at once), hand
//! the first attempts to the sending stage, and ack. Never waits on an endpoint. The storing
//! transaction is in `events_store.rs`.

use std::{collections::HashSet, sync::Arc, time::Duration};

use futures::{StreamExt, stream::FuturesOrdered};
use hookrelay_shared::{
    amqp,
    event::{Event, EventError, parse_event},
    ids,
    jobs::Trigger,
    webhooks::Target,
};
use lapin::{
    Channel,
    message::Delivery,
    options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions},
    types::{AMQPValue, FieldTable, ShortString},
};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{Core, lanes::Attempt, send::AttemptRequest};

#[path = "events_store.rs"]
mod store;

use store::store_with_retry;

/// Most messages handled in one transaction.
pub const MAX_BATCH: usize = 200;
/// How long a batch waits for more messages after its first one, at most: while all of the
/// [`PIPELINE`] is busy storing. See [`batch_window`].
pub const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// Batches being stored at once: while one commits (waiting on the WAL flush), the next are
/// already being written. They are acked in the order they were taken.
pub const PIPELINE: usize = 4;

/// Consumes `{ns}.events` until `shutdown`; an error means the channel or connection failed.
pub async fn consume(
    core: Arc<Core>,
    channel: Channel,
    dead_channel: Channel,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Prefetch bounds the messages held unacked by this consumer (default 500): the batches
    // in flight share it, and a crashed replica's share is redelivered quickly.
    channel
        .basic_qos(core.ctx.config.prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            core.names.events_queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = %core.names.events_queue, "consuming events");
    let mut stored = FuturesOrdered::new();
    let result = loop {
        tokio::select! {
            biased;
            Some(done) = stored.next(), if !stored.is_empty() => {
                if let Err(e) = ack(&core, done).await {
                    break Err(e);
                }
            }
            _ = shutdown.cancelled() => break Ok(()),
            // Sending is behind (not one endpoint: a stuck one's queue is deferred within about
            // a second): take no more until the lanes' queues shrink to what the process sends
            // in a quarter second.
            _ = tokio::time::sleep(Duration::from_millis(2)), if core.lanes.backlog() >= core.pace.limit() => {}
            first = consumer.next(), if stored.len() < PIPELINE && core.lanes.backlog() < core.pace.limit() => {
                let mut batch = match first {
                    Some(Ok(d)) => vec![d],
                    Some(Err(e)) => break Err(e.into()),
                    None => break Err(anyhow::anyhow!("the events consumer was cancelled by the broker")),
                };
                let deadline = tokio::time::Instant::now() + batch_window(stored.len());
                let mut failed = None;
                while batch.len() < MAX_BATCH {
                    match tokio::time::timeout_at(deadline, consumer.next()).await {
                        Ok(Some(Ok(d))) => batch.push(d),
                        Ok(Some(Err(e))) => {
                            failed = Some(e);
                            break;
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
                // A task of its own: its statements progress while this loop collects the next
                // batch or waits on an ack (a future polled only here would stall meanwhile).
                let task = tokio::spawn(handle_batch(core.clone(), batch, dead_channel.clone(), shutdown.clone()));
                stored.push_back(async move {
                    task.await
                        .unwrap_or_else(|e| Err(anyhow::anyhow!("storing a batch failed: {e}")))
                });
                if let Some(e) = failed {
                    break Err(e.into());
                }
            }
        }
    };
    // What is being stored still gets acked (it would only be redelivered as duplicates).
    while let Some(done) = stored.next().await {
        if ack(&core, done).await.is_err() {
            break;
        }
    }
    let _ = channel
        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await;
    result
}

/// How long a new batch waits for more messages when `storing` batches are being stored: none
/// when the database is idle (waiting would only add latency: the batch takes what has arrived
/// and goes), more as the pipeline fills (a busy database commits bigger batches instead of
/// more of them). Messages that have already arrived are taken whatever the window.
pub fn batch_window(storing: usize) -> Duration {
    let storing = u32::try_from(storing.min(PIPELINE)).unwrap_or(0);
    BATCH_WINDOW * storing / PIPELINE as u32
}

/// Acks a stored batch: everything up to its last message (earlier batches are acked already,
/// since they complete in order).
async fn ack(core: &Core, done: anyhow::Result<Option<Delivery>>) -> anyhow::Result<()> {
    if let Some(last) = done? {
        last.acker
            .ack(BasicAckOptions { multiple: true })
            .await
            .inspect_err(|_| {
                core.ctx.metrics.amqp_errors.get_or_create(&[("op", "ack")]).inc();
            })?;
    }
    Ok(())
}

/// A valid event of the batch and the deliveries it gets.
struct Accepted {
    event: Event,
    targets: Vec<Arc<Target>>,
    delivery_ids: Vec<Uuid>,
}

/// Validates, dead-letters and stores one batch, hands its first attempts to the sending
/// stage, and returns its last message for the ack.
async fn handle_batch(
    core: Arc<Core>,
    mut batch: Vec<Delivery>,
    dead_channel: Channel,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<Delivery>> {
    let received_at = now_micros();
    let metrics = &core.ctx.metrics;
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for d in &batch {
        match parse_event(&d.data, core.ctx.config.max_event_bytes, received_at) {
            Ok(event) => {
                if !seen.insert(event.id.clone()) {
                    metrics
                        .events_consumed
                        .get_or_create(&[("outcome", "duplicate")])
                        .inc();
                    continue;
                }
                let targets = core.cache.matching(&event.event_type, &event.body);
                let delivery_ids = targets.iter().map(|_| ids::new_id()).collect();
                accepted.push(Accepted {
                    event,
                    targets,
                    delivery_ids,
                });
            }
            Err(err) => dead_letter(&core, d, &err, &dead_channel).await?,
        }
    }
    let (duplicates, sequenced) = store_with_retry(&core, &accepted, received_at, &shutdown).await?;
    for a in accepted {
        if duplicates.contains(&a.event.id) {
            metrics
                .events_consumed
                .get_or_create(&[("outcome", "duplicate")])
                .inc();
            continue;
        }
        metrics
            .events_consumed
            .get_or_create(&[("outcome", "accepted")])
            .inc();
        metrics.deliveries_created.inc_by(a.targets.len() as u64);
        let body: Arc<str> = Arc::from(a.event.body.as_str());
        for (target, delivery_id) in a.targets.iter().zip(&a.delivery_ids) {
            let seq = sequenced.get(delivery_id);
            if seq.is_some_and(|s| s.held) {
                // Waits in PostgreSQL behind its webhook's head.
                continue;
            }
            let req = AttemptRequest {
                delivery_id: *delivery_id,
                event_id: a.event.id.clone(),
                event_received_at: received_at,
                event_type: a.event.event_type.clone(),
                body: body.clone(),
                target: target.clone(),
                attempt: 1,
                trigger: Trigger::Initial,
                delivery_created_at: received_at,
                seq: seq.map(|s| s.seq),
            };
            core.submit(Attempt::new(req, None));
        }
    }
    // Everything in the batch is now durable (stored or dead-lettered).
    Ok(batch.pop())
}

fn now_micros() -> OffsetDateTime {
    // PostgreSQL keeps microseconds; the same value must come back from the database.
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap_or(now)
}

fn reason_label(err: &EventError) -> &'static str {
    match err {
        EventError::TooLarge { .. } => "too_large",
        EventError::NotUtf8 => "not_utf8",
        EventError::BadJson(_) => "bad_json",
        EventError::NotAnObject => "not_an_object",
        EventError::MissingType => "missing_type",
        EventError::BadType(_) => "bad_type",
        EventError::MissingData => "missing_data",
        EventError::DataNotObject => "data_not_object",
        EventError::BadId => "bad_id",
        EventError::BadOccurredAt => "bad_occurred_at",
    }
}

/// Publishes the message unchanged to `{ns}.events.dead`, with the reason in a header, and
/// waits for the broker's confirm (the message is acked with its batch afterwards).
async fn dead_letter(
    core: &Core,
    d: &Delivery,
    err: &EventError,
    dead_channel: &Channel,
) -> anyhow::Result<()> {
    let mut headers = d.properties.headers().clone().unwrap_or_default();
    headers.insert(
        ShortString::from(amqp::ERROR_HEADER),
        AMQPValue::LongString(err.to_string().into()),
    );
    let props = d.properties.clone().with_headers(headers);
    amqp::publish_confirmed(dead_channel, "", &core.names.dead_queue, &d.data, props)
        .await
        .inspect_err(|_| {
            core.ctx
                .metrics
                .amqp_errors
                .get_or_create(&[("op", "publish")])
                .inc();
        })?;
    tracing::warn!(reason = reason_label(err), error = %err, bytes = d.data.len(),
        "message is not an event; dead-lettered");
    let m = &core.ctx.metrics;
    m.events_consumed
        .get_or_create(&[("outcome", "dead_lettered")])
        .inc();
    m.events_dead_lettered
        .get_or_create(&[("reason", reason_label(err))])
        .inc();
    Ok(())
}
