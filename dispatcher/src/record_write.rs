//! The recorder's transaction: a batch of records becomes one attempts INSERT and one
//! deliveries UPDATE (column arrays through `UNNEST`), and for ordered webhooks the promotion
//! of the next head, all committed together; a failure is retried until it commits.

use std::{collections::HashSet, time::Duration};

use hookrelay_shared::{
    Context, db, ids,
    ordering::{self, Promoted},
    retry_store::RetryEntry,
};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Plan, Record};
use crate::send::clean_text;

/// Writes a batch, retrying until it is committed (creating partitions when one is missing);
/// returns the retries to schedule and the promoted heads.
pub(super) async fn write_with_retry(ctx: &Context, batch: &[Record]) -> (Vec<RetryEntry>, Vec<Promoted>) {
    let mut delay = Duration::from_millis(100);
    let lease_secs = ctx.config.attempt_lease.0.as_secs_f64();
    loop {
        let started = std::time::Instant::now();
        match write(&ctx.db, batch, lease_secs).await {
            Ok((entries, exhausted, heads)) => {
                ctx.metrics
                    .db_operation
                    .get_or_create(&[("op", "record_attempts")])
                    .observe(started.elapsed().as_secs_f64());
                ctx.metrics.deliveries_exhausted.inc_by(exhausted);
                return (entries, heads);
            }
            Err(e) => {
                if is_missing_partition(&e) {
                    tracing::warn!("no partition for an attempt; creating partitions");
                    if let Err(e) = db::ensure_partitions(&ctx.db, 1, db::PARTITION_DAYS_AHEAD).await {
                        tracing::error!(error = %e, "creating partitions failed");
                    }
                    continue;
                }
                tracing::error!(error = %e, records = batch.len(), retry_in_ms = delay.as_millis() as u64,
                    "recording attempts failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Whether an INSERT failed because no partition covers the row.
pub fn is_missing_partition(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.code().is_some_and(|c| c == "23514") && d.message().contains("no partition"))
}

#[derive(Default)]
struct Columns {
    id: Vec<Uuid>,
    delivery_id: Vec<Uuid>,
    event_id: Vec<String>,
    received_at: Vec<OffsetDateTime>,
    webhook_id: Vec<Uuid>,
    event_type: Vec<String>,
    category: Vec<String>,
    attempt: Vec<i32>,
    trigger: Vec<&'static str>,
    status: Vec<&'static str>,
    url: Vec<String>,
    request_headers: Vec<String>,
    code: Vec<Option<i32>>,
    response_headers: Vec<Option<String>>,
    body: Vec<Option<String>>,
    truncated: Vec<bool>,
    headers_truncated: Vec<bool>,
    error: Vec<Option<String>>,
    duration_ms: Vec<i32>,
    attempted_at: Vec<OffsetDateTime>,
    mode: Vec<&'static str>,
    next_at: Vec<Option<OffsetDateTime>>,
}

impl Columns {
    fn from(batch: &[Record]) -> Self {
        let mut c = Columns::default();
        for r in batch {
            let (req, out) = (&r.req, &r.out);
            c.id.push(ids::new_id());
            c.delivery_id.push(req.delivery_id);
            c.event_id.push(req.event_id.clone());
            c.received_at.push(req.event_received_at);
            c.webhook_id.push(req.target.webhook.id);
            c.category
                .push(hookrelay_shared::event::category_of(&req.event_type).to_owned());
            c.event_type.push(req.event_type.clone());
            c.attempt.push(req.attempt);
            c.trigger.push(req.trigger.as_str());
            c.status.push(if out.success() { "success" } else { "failed" });
            c.url.push(clean_text(&out.request_url));
            c.request_headers.push(out.request_headers.to_string());
            c.code.push(out.response_code.map(i32::from));
            c.response_headers
                .push(out.response_headers.as_ref().map(|h| h.to_string()));
            c.body.push(out.response_body.clone());
            c.truncated.push(out.response_body_truncated);
            c.headers_truncated.push(out.response_headers_truncated);
            c.error.push(out.error.clone());
            c.duration_ms
                .push(out.duration.as_millis().min(i32::MAX as u128) as i32);
            c.attempted_at.push(out.attempted_at);
            c.mode.push(r.plan.mode());
            c.next_at.push(match r.plan {
                Plan::Retry { at } => Some(at),
                _ => None,
            });
        }
        c
    }
}

const INSERT_ATTEMPTS: &str = "
INSERT INTO attempts (id, delivery_id, event_id, event_received_at, webhook_id, event_type, category,
    attempt, trigger, status, request_url, request_headers, response_code, response_headers,
    response_body, response_body_truncated, error, duration_ms, attempted_at, response_headers_truncated)
SELECT u.id, u.delivery_id, u.event_id, u.rat, u.webhook_id, u.event_type, u.category,
    u.attempt, u.trigger, u.status, u.url, u.rh::jsonb, u.code, u.resh::jsonb,
    u.body, u.trunc, u.error, u.dur, u.at, u.htrunc
FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::uuid[], $6::text[], $7::text[],
    $8::int4[], $9::text[], $10::text[], $11::text[], $12::text[], $13::int4[], $14::text[],
    $15::text[], $16::bool[], $17::text[], $18::int4[], $19::timestamptz[], $20::bool[])
AS u(id, delivery_id, event_id, rat, webhook_id, event_type, category, attempt, trigger, status,
    url, rh, code, resh, body, trunc, error, dur, at, htrunc)";

// In SET, `d.*` is the row before the update. A manual failure leaves an automatic schedule
// alone; an automatic failure never undoes a success (a manual retry may have won the race).
const UPDATE_DELIVERIES: &str = "
UPDATE deliveries d SET
    state = CASE
        WHEN u.mode = 'success' THEN 'succeeded'
        WHEN u.mode = 'manual_failed' THEN
            CASE WHEN d.state IN ('pending', 'retrying') THEN d.state ELSE 'failed' END
        WHEN d.state = 'succeeded' THEN 'succeeded'
        WHEN u.mode = 'retry' THEN 'retrying'
        ELSE 'failed' END,
    next_attempt_at = CASE
        WHEN u.mode = 'success' THEN NULL
        WHEN u.mode = 'manual_failed' THEN
            CASE WHEN d.state IN ('pending', 'retrying') THEN d.next_attempt_at ELSE NULL END
        WHEN d.state = 'succeeded' THEN NULL
        WHEN u.mode = 'retry' THEN u.next_at
        ELSE NULL END,
    -- A failed manual attempt leaves the automatic budget and schedule alone: the pending
    -- automatic job still claims attempt_count + 1.
    attempt_count = CASE WHEN u.mode = 'manual_failed' THEN d.attempt_count
        ELSE GREATEST(d.attempt_count, u.attempt) END,
    last_attempt_at = GREATEST(d.last_attempt_at, u.at),
    deferred_reason = NULL,
    updated_at = now()
FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::timestamptz[], $5::int4[], $6::timestamptz[])
    AS u(id, rat, mode, next_at, attempt, at)
WHERE d.id = u.id AND d.event_received_at = u.rat
RETURNING d.id, d.event_received_at, d.state, d.next_attempt_at, u.mode, u.attempt";

type Updated = (Uuid, OffsetDateTime, String, Option<OffsetDateTime>, String, i32);

/// Writes a batch in one transaction; returns the retries to schedule, how many deliveries
/// ran out of retries, and the heads of ordered webhooks it promoted.
async fn write(
    pool: &PgPool,
    batch: &[Record],
    lease_secs: f64,
) -> sqlx::Result<(Vec<RetryEntry>, u64, Vec<Promoted>)> {
    let c = Columns::from(batch);
    let mut ordered: Vec<Uuid> = batch
        .iter()
        .filter(|r| r.req.seq.is_some())
        .map(|r| r.req.target.webhook.id)
        .collect();
    ordered.sort_unstable();
    ordered.dedup();
    let mut tx = pool.begin().await?;
    db::index_plans_only(&mut tx).await?;
    if !ordered.is_empty() {
        // The lock order of hookrelay_shared::ordering: sequence rows, then deliveries.
        ordering::lock(&mut tx, &ordered).await?;
    }
    sqlx::query(INSERT_ATTEMPTS)
        .bind(&c.id)
        .bind(&c.delivery_id)
        .bind(&c.event_id)
        .bind(&c.received_at)
        .bind(&c.webhook_id)
        .bind(&c.event_type)
        .bind(&c.category)
        .bind(&c.attempt)
        .bind(&c.trigger)
        .bind(&c.status)
        .bind(&c.url)
        .bind(&c.request_headers)
        .bind(&c.code)
        .bind(&c.response_headers)
        .bind(&c.body)
        .bind(&c.truncated)
        .bind(&c.error)
        .bind(&c.duration_ms)
        .bind(&c.attempted_at)
        .bind(&c.headers_truncated)
        .execute(&mut *tx)
        .await?;
    let updated: Vec<Updated> = sqlx::query_as(UPDATE_DELIVERIES)
        .bind(&c.delivery_id)
        .bind(&c.received_at)
        .bind(&c.mode)
        .bind(&c.next_at)
        .bind(&c.attempt)
        .bind(&c.attempted_at)
        .fetch_all(&mut *tx)
        .await?;
    // A head that ended (or is still waiting: then nothing changes) lets the next one go.
    let mut ended: Vec<Uuid> = Vec::new();
    if !ordered.is_empty() {
        let finished: HashSet<Uuid> = updated
            .iter()
            .filter(|u| u.2 != "pending" && u.2 != "retrying")
            .map(|u| u.0)
            .collect();
        ended = batch
            .iter()
            .filter(|r| r.req.seq.is_some() && finished.contains(&r.req.delivery_id))
            .map(|r| r.req.target.webhook.id)
            .collect();
        ended.sort_unstable();
        ended.dedup();
    }
    let heads = ordering::promote(&mut tx, &ended, lease_secs).await?;
    tx.commit().await?;
    let mut entries = Vec::new();
    let mut exhausted = 0;
    for (id, rat, state, next, mode, attempt) in updated {
        match (mode.as_str(), state.as_str(), next) {
            ("retry", "retrying", Some(due)) => entries.push(RetryEntry {
                delivery_id: id,
                event_received_at: rat,
                attempt: attempt + 1,
                due,
            }),
            ("exhausted", "failed", _) => exhausted += 1,
            _ => {}
        }
    }
    Ok((entries, exhausted, heads))
}
