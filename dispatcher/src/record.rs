//! The recorder: one task that batches attempt records and writes them in one transaction
//! (attempts INSERT + deliveries UPDATE), then schedules new retries in Redis.
//!
//! Records are never dropped: a PostgreSQL failure is retried with backoff, and the bounded
//! channel in front of the recorder slows the senders down meanwhile (a sender keeps its
//! concurrency slot until its record is queued). A job ack that rides on a record is only
//! released once the record is committed.
//!
//! For an ordered webhook the same transaction promotes the next head when a sequenced
//! delivery ends ([`hookrelay_shared::ordering::promote`]); promoted heads go out on the
//! [`PromotedSender`] after the commit, to be sent at once.

use std::{collections::HashSet, sync::Arc, time::Duration};

use hookrelay_shared::{
    Context, db, ids,
    jobs::Trigger,
    ordering::{self, Promoted},
    retry, retry_store,
    retry_store::RetryEntry,
};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    rollup::{self, RollupSink},
    send::{AttemptOutcome, AttemptRequest, clean_text},
};

/// Most records written in one transaction.
const MAX_BATCH: usize = 500;
/// How long the recorder waits to fill a batch after its first record.
const BATCH_WINDOW: Duration = Duration::from_millis(10);
/// Transactions the recorder runs at once.
const WRITERS: usize = 2;
/// Records waiting for the recorder before senders have to wait (two full batches ahead, and
/// a bound on memory: a record carries up to 64 KiB of response body).
pub const CHANNEL_CAPACITY: usize = 2048;

/// What the attempt means for its delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    Success,
    /// Failed; the next automatic retry is due then.
    Retry {
        at: OffsetDateTime,
    },
    /// Failed and no retry is left.
    Exhausted,
    /// A manual attempt failed: the automatic schedule, if any, stays as it is.
    ManualFailed,
}

impl Plan {
    fn mode(self) -> &'static str {
        match self {
            Plan::Success => "success",
            Plan::Retry { .. } => "retry",
            Plan::Exhausted => "exhausted",
            Plan::ManualFailed => "manual_failed",
        }
    }

    /// Decides what follows an attempt, from the webhook's retry policy.
    pub fn decide(ctx: &Context, req: &AttemptRequest, out: &AttemptOutcome) -> Self {
        if out.success() {
            return Plan::Success;
        }
        if req.trigger == Trigger::Manual {
            return Plan::ManualFailed;
        }
        // 410 Gone: the endpoint says it will never take them; its webhook is disabled.
        if out.response_code == Some(410) {
            return Plan::Exhausted;
        }
        // The default in force: `PUT /api/v1/settings`, else the config (refreshed in the background).
        let default = ctx.settings.retry_policy();
        let policy = match &req.target.webhook.retry_policy {
            Some(spec) => spec.resolve(&default),
            None => default,
        };
        let since = out.attempted_at - req.delivery_created_at;
        let failed = retry::FailedAttempt {
            failures: req.attempt.max(1) as u32,
            since_first_failure: since.try_into().unwrap_or(Duration::ZERO),
            retry_after: out.retry_after,
        };
        let now = OffsetDateTime::now_utc();
        match retry::next_delay(&policy, failed, &mut rand::rng()).and_then(|d| retry::retry_at(now, d)) {
            Some(at) => Plan::Retry { at },
            None => Plan::Exhausted,
        }
    }
}

/// One attempt to record.
pub struct Record {
    pub req: AttemptRequest,
    pub out: AttemptOutcome,
    pub plan: Plan,
    /// Told after the commit (a job is acked then).
    pub done: Option<oneshot::Sender<()>>,
}

/// The sending side of the recorder.
#[derive(Clone)]
pub struct RecorderHandle {
    tx: mpsc::Sender<Record>,
}

impl RecorderHandle {
    /// Hands a record to the recorder, waiting while it is backed up.
    pub async fn record(&self, record: Record) {
        if self.tx.send(record).await.is_err() {
            // Only after shutdown, when the recorder is gone: the delivery's lease makes sure
            // the attempt is made again.
            tracing::error!("recorder stopped; attempt not recorded");
        }
    }
}

/// Where the heads the recorder promotes go (the dispatcher sends them at once). Unbounded: at
/// most one per ordered webhook per committed batch.
pub type PromotedSender = mpsc::UnboundedSender<Promoted>;

/// Starts the recorder task. After `stop` it writes what is queued and ends.
pub fn spawn(
    ctx: Context,
    stop: CancellationToken,
    promoted: PromotedSender,
) -> (RecorderHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let task = tokio::spawn(run(ctx, rx, stop, promoted));
    (RecorderHandle { tx }, task)
}

async fn run(
    ctx: Context,
    mut rx: mpsc::Receiver<Record>,
    stop: CancellationToken,
    promoted: PromotedSender,
) {
    let redis = Arc::new(tokio::sync::Mutex::new(RedisSlot::new(&ctx.config.redis_url)));
    // The health stats of what is committed, written once a second (see `rollup`).
    let stats = Arc::new(RollupSink::new());
    let stats_stop = CancellationToken::new();
    let stats_task = tokio::spawn(rollup::run(ctx.clone(), stats.clone(), stats_stop.clone()));
    // Two transactions in flight: while one commits (waiting on the WAL flush), the next
    // batch is already being sent, which roughly doubles what one recorder can write.
    let writers = Arc::new(Semaphore::new(WRITERS));
    let mut carry: Vec<Record> = Vec::new();
    loop {
        let mut batch = std::mem::take(&mut carry);
        if batch.is_empty() {
            let next = tokio::select! {
                r = rx.recv() => r,
                _ = stop.cancelled() => rx.try_recv().ok(),
            };
            match next {
                Some(r) => batch.push(r),
                None => break,
            }
        }
        // The next delivery of an ordered webhook waits for this commit: no window for it
        // (what is queued already is still taken), else every ordered delivery costs 10 ms more.
        let window = if batch.iter().any(|r| r.req.seq.is_some()) {
            Duration::ZERO
        } else {
            BATCH_WINDOW
        };
        let deadline = tokio::time::Instant::now() + window;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(r)) => batch.push(r),
                Ok(None) | Err(_) => break,
            }
        }
        // One UPDATE row per delivery per statement: a second record of the same delivery
        // (a manual retry racing an automatic one) waits for the next batch.
        let mut seen = HashSet::new();
        let (mut now, later): (Vec<Record>, Vec<Record>) =
            batch.into_iter().partition(|r| seen.insert(r.req.delivery_id));
        carry = later;
        // Delivery rows are locked by id, the order every writer uses.
        now.sort_unstable_by_key(|r| r.req.delivery_id);
        let Ok(writer) = writers.clone().acquire_owned().await else {
            break;
        };
        let (ctx, redis, stats, promoted) = (ctx.clone(), redis.clone(), stats.clone(), promoted.clone());
        tokio::spawn(async move {
            finish(&ctx, now, &redis, &stats, &promoted).await;
            drop(writer);
        });
    }
    // Every write in flight completes before the recorder reports that it is done.
    let _ = writers.acquire_many(WRITERS as u32).await;
    stats_stop.cancel();
    let _ = stats_task.await;
}

/// Writes a batch, schedules its retries, then tells the jobs waiting for it (they ack).
async fn finish(
    ctx: &Context,
    batch: Vec<Record>,
    redis: &tokio::sync::Mutex<RedisSlot>,
    stats: &RollupSink,
    promoted: &PromotedSender,
) {
    let (entries, heads) = write_with_retry(ctx, &batch).await;
    for p in heads {
        // Only fails once the dispatcher is gone: the head's lease brings it back.
        let _ = promoted.send(p);
    }
    stats.add(&batch);
    if !entries.is_empty() {
        ctx.metrics.retries_scheduled.inc_by(entries.len() as u64);
        redis.lock().await.schedule(ctx, &entries).await;
    }
    for r in batch {
        observe(ctx, &r);
        if let Some(done) = r.done {
            let _ = done.send(());
        }
    }
}

fn observe(ctx: &Context, r: &Record) {
    ctx.metrics
        .attempt(r.out.success(), r.req.trigger.as_str(), r.out.response_code);
    ctx.metrics
        .delivery_duration
        .observe(r.out.duration.as_secs_f64());
}

async fn write_with_retry(ctx: &Context, batch: &[Record]) -> (Vec<RetryEntry>, Vec<Promoted>) {
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

/// A lazily (re)connected Redis connection: Redis being down never stops recording.
struct RedisSlot {
    url: String,
    conn: Option<redis::aio::ConnectionManager>,
}

impl RedisSlot {
    fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            conn: None,
        }
    }

    async fn schedule(&mut self, ctx: &Context, entries: &[RetryEntry]) {
        let started = std::time::Instant::now();
        if self.conn.is_none() {
            let client = redis::Client::open(self.url.as_str());
            match client {
                Ok(c) => match tokio::time::timeout(Duration::from_secs(2), c.get_connection_manager()).await
                {
                    Ok(Ok(m)) => self.conn = Some(m),
                    Ok(Err(e)) => tracing::warn!(error = %e, "redis connect failed"),
                    Err(_) => tracing::warn!("redis connect timed out"),
                },
                Err(e) => tracing::warn!(error = %e, "redis url invalid"),
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            tracing::warn!(
                retries = entries.len(),
                "retries not added to redis; the scheduler's reconcile adds them from PostgreSQL"
            );
            return;
        };
        let result = tokio::time::timeout(
            Duration::from_secs(2),
            retry_store::schedule(conn, &ctx.config.namespace, entries),
        )
        .await;
        match result {
            Ok(Ok(())) => {
                ctx.metrics
                    .redis_operation
                    .get_or_create(&[("op", "schedule_retries")])
                    .observe(started.elapsed().as_secs_f64());
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, retries = entries.len(),
                    "adding retries to redis failed; the scheduler's reconcile adds them from PostgreSQL");
            }
            Err(_) => {
                self.conn = None;
                tracing::warn!(
                    retries = entries.len(),
                    "adding retries to redis timed out; the scheduler's reconcile adds them from PostgreSQL"
                );
            }
        }
    }
}
