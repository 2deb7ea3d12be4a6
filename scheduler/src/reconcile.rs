//! Reconcile: PostgreSQL is the record of truth, so every delivery it says is waiting
//! (`pending`/`retrying`, with `next_attempt_at`) is put back into the Redis set if missing.
//! Rows are read in keyset batches on `deliveries_due_idx`, so 100k+ waiting deliveries cost
//! a few hundred short queries and Lua calls, never one long transaction.
//!
//! First, an ordered webhook whose head is held with nothing to promote it (normally the
//! transaction that ends a head promotes the next; a race between replicas with different
//! views of the webhook can leave one behind) gets its head promoted, due at once, so the scan
//! below adds it. One short transaction per webhook, in the lock order of
//! `hookrelay_shared::ordering`.

use std::time::Instant;

use hookrelay_shared::{Context, redis_keys, retry_store::RetryEntry};
use redis::aio::ConnectionManager;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Options, fire::now_ms, scripts};

/// What one reconcile saw and repaired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Waiting deliveries read from PostgreSQL.
    pub scanned: u64,
    /// Entries that were missing from Redis and were added.
    pub added: u64,
    /// Held heads of ordered webhooks that were promoted (made due at once).
    pub promoted: u64,
}

type Row = (Uuid, OffsetDateTime, i32, OffsetDateTime);

const BATCH_SQL: &str = "SELECT id, event_received_at, attempt_count, next_attempt_at \
     FROM deliveries \
     WHERE state IN ('pending', 'retrying') AND next_attempt_at IS NOT NULL \
       AND next_attempt_at >= $1 AND (next_attempt_at > $1 OR id > $2) \
     ORDER BY next_attempt_at, id \
     LIMIT $3";

/// Re-adds every waiting delivery that is missing from the Redis set.
pub async fn reconcile(
    redis: &mut ConnectionManager,
    ctx: &Context,
    opts: &Options,
) -> anyhow::Result<ReconcileReport> {
    let ns = &ctx.config.namespace;
    let set = redis_keys::retries(ns);
    let fired = redis_keys::key(ns, "fired");
    let started = Instant::now();
    let mut report = ReconcileReport {
        promoted: promote_stuck(ctx).await?,
        ..Default::default()
    };
    let mut after: (OffsetDateTime, Uuid) = (OffsetDateTime::UNIX_EPOCH, Uuid::nil());
    loop {
        let rows: Vec<Row> = sqlx::query_as(BATCH_SQL)
            .bind(after.0)
            .bind(after.1)
            .bind(opts.reconcile_batch as i64)
            .fetch_all(&ctx.db)
            .await?;
        let Some(last) = rows.last() else { break };
        after = (last.3, last.0);
        report.scanned += rows.len() as u64;

        let mut inv = scripts::RECONCILE.key(&set);
        inv.key(&fired)
            .arg(now_ms() - opts.fired_guard.as_millis() as i64);
        for (id, received_at, attempt_count, next_at) in &rows {
            let entry = RetryEntry {
                delivery_id: *id,
                event_received_at: *received_at,
                attempt: attempt_count.saturating_add(1),
                due: *next_at,
            };
            inv.arg(entry.score()).arg(entry.member());
        }
        let added: i64 = inv.invoke_async(redis).await?;
        report.added += added.max(0) as u64;
        if rows.len() < opts.reconcile_batch {
            break;
        }
    }
    ctx.metrics
        .db_operation
        .get_or_create(&[("op", "reconcile")])
        .observe(started.elapsed().as_secs_f64());
    if report.added > 0 || report.promoted > 0 {
        tracing::info!(
            scanned = report.scanned,
            added = report.added,
            promoted = report.promoted,
            duration_ms = started.elapsed().as_millis() as u64,
            "reconcile re-added missing retries"
        );
    } else {
        tracing::debug!(
            scanned = report.scanned,
            duration_ms = started.elapsed().as_millis() as u64,
            "reconcile: Redis matches PostgreSQL"
        );
    }
    Ok(report)
}

/// Promotes the held head of every ordered webhook that has nothing in flight or waiting.
async fn promote_stuck(ctx: &Context) -> anyhow::Result<u64> {
    let mut conn = ctx.db.acquire().await?;
    let stuck = hookrelay_shared::ordering::stuck_webhooks(&mut conn).await?;
    drop(conn);
    let mut promoted = 0u64;
    for webhook_id in stuck {
        let mut tx = ctx.db.begin().await?;
        hookrelay_shared::ordering::lock(&mut tx, &[webhook_id]).await?;
        // Decided again under the lock: a recorder may have promoted it meanwhile.
        let heads = hookrelay_shared::ordering::promote(&mut tx, &[webhook_id], 0.0).await?;
        tx.commit().await?;
        for h in &heads {
            tracing::warn!(%webhook_id, delivery_id = %h.delivery_id, seq = h.seq,
                "an ordered webhook's head was held with nothing to promote it; promoted");
        }
        promoted += heads.len() as u64;
    }
    Ok(promoted)
}

/// Takes the namespace's reconcile lock for `ttl` if no replica holds it (so one replica
/// reconciles per period). Correctness does not depend on it: two reconciles at once only add
/// the same members twice, which `ZADD NX` ignores.
pub async fn try_lock(
    redis: &mut ConnectionManager,
    ns: &str,
    ttl: std::time::Duration,
) -> redis::RedisResult<bool> {
    let got: Option<String> = redis::cmd("SET")
        .arg(redis_keys::key(ns, "reconcile"))
        .arg(std::process::id())
        .arg("NX")
        .arg("PX")
        .arg(ttl.as_millis() as u64)
        .query_async(redis)
        .await?;
    Ok(got.is_some())
}
