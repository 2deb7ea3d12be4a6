//! Intake: take batches off `{ns}.events`, dead-letter what is not an event, store the new
//! events and their deliveries (one transaction a batch, [`PIPELINE`] batches at once), hand
//! the first attempts to the sending stage, and ack. Never waits on an endpoint.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

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

use crate::{
    Core,
    lanes::Attempt,
    ordered::{self, Sequenced},
    record::is_missing_partition,
    send::AttemptRequest,
};

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

async fn store_with_retry(
    core: &Core,
    accepted: &[Accepted],
    received_at: OffsetDateTime,
    shutdown: &CancellationToken,
) -> anyhow::Result<Stored> {
    if accepted.is_empty() {
        return Ok(Stored::default());
    }
    let mut delay = Duration::from_millis(100);
    loop {
        let started = std::time::Instant::now();
        match store(core, accepted, received_at).await {
            Ok(d) => {
                core.ctx
                    .metrics
                    .db_operation
                    .get_or_create(&[("op", "store_events")])
                    .observe(started.elapsed().as_secs_f64());
                return Ok(d);
            }
            Err(e) if is_missing_partition(&e) => {
                tracing::warn!("no partition for an event; creating partitions");
                hookrelay_shared::db::ensure_partitions(
                    &core.ctx.db,
                    1,
                    hookrelay_shared::db::PARTITION_DAYS_AHEAD,
                )
                .await?;
            }
            Err(e) => {
                // Never ack what is not stored: keep the batch and try again.
                tracing::error!(error = %e, events = accepted.len(), retry_in_ms = delay.as_millis() as u64,
                    "storing events failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => anyhow::bail!("shutting down with a batch not stored: {e}"),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// What a stored batch holds: the ids that were duplicates, and the numbers of the deliveries
/// of ordered webhooks.
type Stored = (HashSet<String>, HashMap<Uuid, Sequenced>);

/// One transaction: lock the ids, find the ones already stored, insert the rest with their
/// deliveries (numbering those of ordered webhooks). Returns the ids that were duplicates.
async fn store(core: &Core, accepted: &[Accepted], received_at: OffsetDateTime) -> sqlx::Result<Stored> {
    let mut ids: Vec<String> = accepted.iter().map(|a| a.event.id.clone()).collect();
    // Sorted, so that two replicas locking overlapping batches can't deadlock.
    ids.sort();
    let mut tx = core.ctx.db.begin().await?;
    hookrelay_shared::db::index_plans_only(&mut tx).await?;
    // events is partitioned, so no unique index can span the id alone; an advisory lock per id
    // makes "is it there yet? then insert" atomic across replicas.
    sqlx::query("SELECT count(pg_advisory_xact_lock(hashtextextended(id, 0))) FROM unnest($1::text[]) WITH ORDINALITY AS t(id, n)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    let existing: Vec<String> = sqlx::query_scalar("SELECT id FROM events WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
    let duplicates: HashSet<String> = existing.into_iter().collect();
    let fresh: Vec<&Accepted> = accepted
        .iter()
        .filter(|a| !duplicates.contains(&a.event.id))
        .collect();
    if fresh.is_empty() {
        tx.commit().await?;
        return Ok((duplicates, HashMap::new()));
    }
    let mut e_id = Vec::with_capacity(fresh.len());
    let mut e_type = Vec::with_capacity(fresh.len());
    let mut e_cat = Vec::with_capacity(fresh.len());
    let mut e_occ = Vec::with_capacity(fresh.len());
    let mut e_body = Vec::with_capacity(fresh.len());
    let (mut d_id, mut d_event, mut d_hook, mut d_type) = (vec![], vec![], vec![], vec![]);
    let mut fifo: Vec<(Uuid, Uuid)> = Vec::new();
    for a in &fresh {
        let ev = &a.event;
        e_id.push(ev.id.as_str());
        e_type.push(ev.event_type.as_str());
        e_cat.push(ev.category());
        e_occ.push(ev.occurred_at);
        e_body.push(ev.body.as_str());
        for (t, id) in a.targets.iter().zip(&a.delivery_ids) {
            d_id.push(*id);
            d_event.push(ev.id.as_str());
            d_hook.push(t.webhook.id);
            d_type.push(ev.event_type.as_str());
            if t.webhook.ordering.is_fifo() {
                fifo.push((*id, t.webhook.id));
            }
        }
    }
    sqlx::query(
        "INSERT INTO events (id, received_at, event_type, category, occurred_at, body)
         SELECT u.id, $6, u.t, u.c, u.o, u.b
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[]) AS u(id, t, c, o, b)",
    )
    .bind(&e_id)
    .bind(&e_type)
    .bind(&e_cat)
    .bind(&e_occ)
    .bind(&e_body)
    .bind(received_at)
    .execute(&mut *tx)
    .await?;
    // `known_types` holds the minute each type was last written: a type is written once per
    // process and minute, which keeps `event_types.last_seen_at` within about a minute without a write per event.
    let minute = received_at.unix_timestamp().div_euclid(60);
    let new_types: Vec<String> = {
        // A poisoned lock only costs a redundant upsert.
        let known = core.known_types.lock().ok();
        let mut t: Vec<String> = e_type
            .iter()
            .filter(|t| known.as_ref().is_none_or(|k| k.get(**t) != Some(&minute)))
            .map(|t| t.to_string())
            .collect();
        t.sort_unstable();
        t.dedup();
        t
    };
    if !new_types.is_empty() {
        let cats: Vec<&str> = new_types
            .iter()
            .map(|t| hookrelay_shared::event::category_of(t))
            .collect();
        // Sorted, so concurrent batches lock the rows in the same order.
        sqlx::query(
            "INSERT INTO event_types (event_type, category, last_seen_at)
             SELECT t, c, $3 FROM UNNEST($1::text[], $2::text[]) AS u(t, c)
             ON CONFLICT (event_type) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at
             WHERE event_types.last_seen_at < EXCLUDED.last_seen_at",
        )
        .bind(&new_types)
        .bind(&cats)
        .bind(received_at)
        .execute(&mut *tx)
        .await?;
    }
    // In acceptance order, after the rows above: the sequence rows are locked until commit.
    let sequenced = ordered::sequence(&mut tx, &fifo).await?;
    if !d_id.is_empty() {
        let d_seq: Vec<Option<i64>> = d_id.iter().map(|id| sequenced.get(id).map(|s| s.seq)).collect();
        let d_held: Vec<bool> = d_id
            .iter()
            .map(|id| sequenced.get(id).is_some_and(|s| s.held))
            .collect();
        // next_attempt_at is a lease: if this process dies before the first attempt is
        // recorded, the scheduler's reconcile finds the delivery and makes it. A held delivery
        // has none: its head's end promotes it.
        sqlx::query(
            "INSERT INTO deliveries (id, event_id, event_received_at, webhook_id, event_type, state,
                attempt_count, next_attempt_at, seq)
             SELECT u.id, u.e, $5, u.w, u.t, 'pending', 0,
                CASE WHEN u.held THEN NULL ELSE now() + make_interval(secs => $6) END, u.seq
             FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::text[], $7::int8[], $8::bool[])
                AS u(id, e, w, t, seq, held)",
        )
        .bind(&d_id)
        .bind(&d_event)
        .bind(&d_hook)
        .bind(&d_type)
        .bind(received_at)
        .bind(core.ctx.config.attempt_lease.0.as_secs_f64())
        .bind(&d_seq)
        .bind(&d_held)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    if !new_types.is_empty()
        && let Ok(mut known) = core.known_types.lock()
    {
        known.retain(|_, m| *m == minute);
        known.extend(new_types.into_iter().map(|t| (t, minute)));
    }
    Ok((duplicates, sequenced))
}
