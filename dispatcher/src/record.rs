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
//!
//! Its parts: what an attempt means for its delivery (`record_plan.rs`), the transaction
//! (`record_write.rs`), and the Redis set it schedules retries in (`record_retry_set.rs`, which
//! the deferral writer uses too).

#[path = "record_plan.rs"]
mod plan;
#[path = "record_retry_set.rs"]
mod retry_set;
#[path = "record_write.rs"]
mod write;

use std::{collections::HashSet, sync::Arc, time::Duration};

use hookrelay_shared::{Context, ordering::Promoted, retry_store::RetryEntry};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use plan::Plan;
pub(crate) use retry_set::{RetrySet, Unscheduled};
pub use write::is_missing_partition;

use crate::{
    rollup::{self, RollupSink},
    send::{AttemptOutcome, AttemptRequest},
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
    let redis = Arc::new(tokio::sync::Mutex::new(RetrySet::new(&ctx.config.redis_url)));
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
    redis: &tokio::sync::Mutex<RetrySet>,
    stats: &RollupSink,
    promoted: &PromotedSender,
) {
    let (entries, heads) = write::write_with_retry(ctx, &batch).await;
    for p in heads {
        // Only fails once the dispatcher is gone: the head's lease brings it back.
        let _ = promoted.send(p);
    }
    stats.add(&batch);
    // The retry-set entries of the attempts just made, which a reconcile may have re-added
    // while they were in flight (due when their lease ends, where they would fire a stale
    // job). Taken out whenever the batch talks to Redis anyway, and for attempts made from
    // jobs (retries, deferred attempts coming back, recoveries); a batch of first attempts
    // that all succeeded makes no Redis call.
    let automatic = |r: &&Record| r.req.trigger != hookrelay_shared::jobs::Trigger::Manual;
    let needed = !entries.is_empty() || batch.iter().filter(automatic).any(|r| r.done.is_some());
    if needed {
        let made: Vec<RetryEntry> = batch
            .iter()
            .filter(automatic)
            .map(|r| RetryEntry {
                delivery_id: r.req.delivery_id,
                event_received_at: r.req.event_received_at,
                attempt: r.req.attempt,
                due: r.out.attempted_at,
            })
            .collect();
        ctx.metrics.retries_scheduled.inc_by(entries.len() as u64);
        schedule_retries(ctx, &mut *redis.lock().await, &entries, &made).await;
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

/// Adds a committed batch's retries to the scheduler's set (and removes its made attempts').
async fn schedule_retries(ctx: &Context, redis: &mut RetrySet, entries: &[RetryEntry], made: &[RetryEntry]) {
    let started = std::time::Instant::now();
    match redis.update(ctx, entries, made).await {
        Ok(()) => {
            ctx.metrics
                .redis_operation
                .get_or_create(&[("op", "schedule_retries")])
                .observe(started.elapsed().as_secs_f64());
        }
        Err(Unscheduled::NoConnection) => tracing::warn!(
            retries = entries.len(),
            "retries not added to redis; the scheduler's reconcile adds them from PostgreSQL"
        ),
        Err(Unscheduled::Failed(e)) => tracing::warn!(error = %e, retries = entries.len(),
            "adding retries to redis failed; the scheduler's reconcile adds them from PostgreSQL"),
        Err(Unscheduled::TimedOut) => tracing::warn!(
            retries = entries.len(),
            "adding retries to redis timed out; the scheduler's reconcile adds them from PostgreSQL"
        ),
    }
}
