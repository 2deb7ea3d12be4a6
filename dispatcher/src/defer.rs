//! Deferrals: an attempt that a limit, an open circuit or a Retry-After holds back gets a later
//! `next_attempt_at` and goes into the scheduler's retry set, like a retry — but it writes no
//! attempt row and uses no retry (the attempt number stays the same). One task batches them:
//! one UPDATE per batch, then one ZADD. A job waiting for its deferral is told after the
//! commit (it is acked then); a failed write is retried, so no deferral is lost.

use std::time::Duration;

use hookrelay_shared::{Context, retry_store::RetryEntry};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::record::{RetrySet, Unscheduled};

const MAX_BATCH: usize = 500;
const BATCH_WINDOW: Duration = Duration::from_millis(10);
const CHANNEL_CAPACITY: usize = 4096;

/// One attempt not made now.
pub struct Deferral {
    pub delivery_id: Uuid,
    pub event_received_at: OffsetDateTime,
    /// The attempt number it will make when it comes back.
    pub attempt: i32,
    pub at: OffsetDateTime,
    pub reason: &'static str,
    pub done: Option<oneshot::Sender<()>>,
}

/// The sending side of the deferral writer.
#[derive(Clone)]
pub struct DeferHandle {
    tx: mpsc::Sender<Deferral>,
}

impl DeferHandle {
    /// Queues a deferral (waits while the writer is backed up).
    pub async fn defer(&self, d: Deferral) {
        if self.tx.send(d).await.is_err() {
            // Only after shutdown: the delivery's lease brings it back.
            tracing::debug!("deferral writer stopped; the delivery's lease brings it back");
        }
    }
}

/// Starts the writer; after `stop` it writes what is queued and ends.
pub fn spawn(ctx: Context, stop: CancellationToken) -> (DeferHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    (DeferHandle { tx }, tokio::spawn(run(ctx, rx, stop)))
}

async fn run(ctx: Context, mut rx: mpsc::Receiver<Deferral>, stop: CancellationToken) {
    let mut redis = RetrySet::new(&ctx.config.redis_url);
    loop {
        let first = tokio::select! {
            r = rx.recv() => r,
            _ = stop.cancelled() => rx.try_recv().ok(),
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(d)) => batch.push(d),
                Ok(None) | Err(_) => break,
            }
        }
        // One row per delivery per statement; a second deferral of one delivery is stale.
        let mut seen = std::collections::HashSet::new();
        batch.retain(|d| seen.insert(d.delivery_id));
        let entries = write_with_retry(&ctx, &batch).await;
        schedule(&ctx, &mut redis, &entries).await;
        for d in batch {
            ctx.metrics
                .deliveries_deferred
                .get_or_create(&[("reason", d.reason)])
                .inc();
            if let Some(done) = d.done {
                let _ = done.send(());
            }
        }
    }
}

const UPDATE: &str = "
UPDATE deliveries d SET next_attempt_at = u.at, deferrals = d.deferrals + 1,
    deferred_reason = u.reason, updated_at = now()
FROM UNNEST($1::uuid[], $2::timestamptz[], $3::int4[], $4::timestamptz[], $5::text[])
    AS u(id, rat, attempt, at, reason)
WHERE d.id = u.id AND d.event_received_at = u.rat AND d.state IN ('pending', 'retrying')
    AND d.attempt_count = u.attempt - 1
RETURNING d.id, d.event_received_at, u.attempt, u.at";

async fn write_with_retry(ctx: &Context, batch: &[Deferral]) -> Vec<RetryEntry> {
    let ids: Vec<Uuid> = batch.iter().map(|d| d.delivery_id).collect();
    let rats: Vec<OffsetDateTime> = batch.iter().map(|d| d.event_received_at).collect();
    let attempts: Vec<i32> = batch.iter().map(|d| d.attempt).collect();
    let ats: Vec<OffsetDateTime> = batch.iter().map(|d| d.at).collect();
    let reasons: Vec<&str> = batch.iter().map(|d| d.reason).collect();
    let mut delay = Duration::from_millis(100);
    loop {
        let started = std::time::Instant::now();
        let result: sqlx::Result<Vec<(Uuid, OffsetDateTime, i32, OffsetDateTime)>> = async {
            let mut tx = ctx.db.begin().await?;
            hookrelay_shared::db::index_plans_only(&mut tx).await?;
            let rows = sqlx::query_as(UPDATE)
                .bind(&ids)
                .bind(&rats)
                .bind(&attempts)
                .bind(&ats)
                .bind(&reasons)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(rows)
        }
        .await;
        match result {
            Ok(rows) => {
                ctx.metrics
                    .db_operation
                    .get_or_create(&[("op", "defer")])
                    .observe(started.elapsed().as_secs_f64());
                return rows
                    .into_iter()
                    .map(|(delivery_id, event_received_at, attempt, due)| RetryEntry {
                        delivery_id,
                        event_received_at,
                        attempt,
                        due,
                    })
                    .collect();
            }
            Err(e) => {
                tracing::error!(error = %e, deferrals = batch.len(), retry_in_ms = delay.as_millis() as u64,
                    "recording deferrals failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn schedule(ctx: &Context, redis: &mut RetrySet, entries: &[RetryEntry]) {
    if entries.is_empty() {
        return;
    }
    match redis.schedule(ctx, entries).await {
        Ok(()) => {}
        Err(Unscheduled::NoConnection) => tracing::warn!(
            deferrals = entries.len(),
            "deferrals not added to redis; the scheduler's reconcile adds them from PostgreSQL"
        ),
        Err(Unscheduled::Failed(e)) => tracing::warn!(error = %e, deferrals = entries.len(),
            "adding deferrals to redis failed; the scheduler's reconcile adds them from PostgreSQL"),
        Err(Unscheduled::TimedOut) => tracing::warn!(
            deferrals = entries.len(),
            "adding deferrals to redis timed out; the scheduler's reconcile adds them from PostgreSQL"
        ),
    }
}
