//! Intake's transaction: one batch of accepted events becomes one events INSERT and one
//! deliveries INSERT (column arrays through `UNNEST`), duplicates found under per-id advisory
//! locks, the deliveries of ordered webhooks numbered, and the event types seen upserted about
//! once a minute per type.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Accepted;
use crate::{
    Core,
    ordered::{self, Sequenced},
    record::is_missing_partition,
};

/// Stores a batch, retrying until it is stored or `shutdown` (never acks what is not stored);
/// returns what [`store`] does.
pub(super) async fn store_with_retry(
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
pub(super) type Stored = (HashSet<String>, HashMap<Uuid, Sequenced>);

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
