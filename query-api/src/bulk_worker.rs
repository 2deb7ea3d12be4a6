//! The bulk-retry worker of every API replica: claims an open job with a lease, works through
//! it a chunk at a time (publish, wait for the confirms, then record the chunk), finishes it
//! with an activity entry, and purges old jobs. The job row and its filter are in `bulk.rs`.

use std::{collections::HashSet, sync::Arc, time::Duration};

use hookrelay_shared::{activity, manual_retry::DeliveryRef};
use sqlx::{PgPool, QueryBuilder};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{JobFilter, LEASE, POLL, REQUEUE_GUARD, RETRY_AFTER_ERROR};
use crate::state::AppState;

/// A claimed job.
#[derive(Debug, sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    filter: sqlx::types::Json<JobFilter>,
    after_at: Option<OffsetDateTime>,
    after_id: Option<Uuid>,
}

/// Claims the oldest open job nobody holds, for `owner`.
async fn claim(db: &PgPool, owner: Uuid) -> sqlx::Result<Option<Claimed>> {
    sqlx::query_as(
        "UPDATE bulk_retry_jobs SET state = 'running', lease_owner = $1, lease_until = now() + $2,
                started_at = COALESCE(started_at, now()), updated_at = now()
         WHERE id = (SELECT id FROM bulk_retry_jobs
                     WHERE state IN ('pending', 'running') AND (lease_until IS NULL OR lease_until < now())
                     ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING id, filter, after_at, after_id",
    )
    .bind(owner)
    .bind(LEASE)
    .fetch_optional(db)
    .await
}

#[derive(Debug, sqlx::FromRow)]
struct Candidate {
    id: Uuid,
    event_received_at: OffsetDateTime,
    attempt_count: i32,
    succeeded: bool,
    live: bool,
    in_job: bool,
    queued_elsewhere: bool,
}

/// What one step of a job did.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// More attempts after this chunk.
    More,
    /// The job is finished.
    Done,
    /// Another worker holds the job now (the lease ran out): stop.
    LostLease,
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("publishing: {0}")]
    Publish(String),
}

/// Works through one chunk of `job`.
async fn step(state: &AppState, owner: Uuid, job: &mut Claimed) -> Result<Step, StepError> {
    let db = &state.ctx.db;
    let chunk = state.bulk_chunk.max(1);
    let mut qb = QueryBuilder::new(
        "SELECT a.attempted_at, a.id, a.delivery_id, a.event_received_at FROM attempts a WHERE TRUE",
    );
    job.filter.push(&mut qb);
    if let (Some(t), Some(id)) = (job.after_at, job.after_id) {
        qb.push(" AND (a.attempted_at, a.id) > (")
            .push_bind(t)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    qb.push(" ORDER BY a.attempted_at, a.id LIMIT ").push_bind(chunk);
    let attempts: Vec<(OffsetDateTime, Uuid, Uuid, OffsetDateTime)> =
        qb.build_query_as().fetch_all(db).await?;
    let last = attempts.last().map(|(t, id, _, _)| (*t, *id));
    let finished = (attempts.len() as i64) < chunk;

    let mut seen = HashSet::new();
    let (ids, times): (Vec<Uuid>, Vec<OffsetDateTime>) = attempts
        .iter()
        .filter(|(_, _, d, _)| seen.insert(*d))
        .map(|(_, _, d, t)| (*d, *t))
        .unzip();
    let candidates: Vec<Candidate> = sqlx::query_as(
        "SELECT d.id, d.event_received_at, d.attempt_count, d.state = 'succeeded' AS succeeded,
                COALESCE(w.enabled AND w.deleted_at IS NULL, false) AS live,
                EXISTS (SELECT 1 FROM bulk_retry_items i WHERE i.job_id = $3 AND i.delivery_id = d.id) AS in_job,
                EXISTS (SELECT 1 FROM bulk_retry_items i
                        WHERE i.delivery_id = d.id AND i.queued AND i.job_id <> $3
                          AND i.at > COALESCE(d.last_attempt_at, '-infinity') AND i.at > now() - $4) AS queued_elsewhere
         FROM deliveries d
         JOIN UNNEST($1::uuid[], $2::timestamptz[]) AS u(id, t) ON d.id = u.id AND d.event_received_at = u.t
         LEFT JOIN webhooks w ON w.id = d.webhook_id",
    )
    .bind(&ids)
    .bind(&times)
    .bind(job.id)
    .bind(REQUEUE_GUARD)
    .fetch_all(db)
    .await?;

    let mut to_queue = vec![];
    let mut skipped = vec![];
    for c in candidates.iter().filter(|c| !c.in_job) {
        if c.succeeded || !c.live || c.queued_elsewhere {
            skipped.push(c.id);
        } else {
            to_queue.push(DeliveryRef {
                id: c.id,
                event_received_at: c.event_received_at,
                attempt_count: c.attempt_count,
            });
        }
    }

    let (confirmed, publish_error) = publish(state, &to_queue).await;
    let complete = publish_error.is_none();
    let mut tx = db.begin().await?;
    let marked: Vec<Uuid> = confirmed.iter().chain(&skipped).copied().collect();
    let queued_flags: Vec<bool> = confirmed
        .iter()
        .map(|_| true)
        .chain(skipped.iter().map(|_| false))
        .collect();
    sqlx::query(
        "INSERT INTO bulk_retry_items (job_id, delivery_id, queued)
         SELECT $1, u.id, u.q FROM UNNEST($2::uuid[], $3::bool[]) AS u(id, q)
         ON CONFLICT DO NOTHING",
    )
    .bind(job.id)
    .bind(&marked)
    .bind(&queued_flags)
    .execute(&mut *tx)
    .await?;
    // The position only moves past a chunk whose every publish was confirmed.
    let (after_at, after_id) = match last {
        Some((t, id)) if complete => (Some(t), Some(id)),
        _ => (job.after_at, job.after_id),
    };
    let done = complete && finished;
    let updated = sqlx::query(
        "UPDATE bulk_retry_jobs SET queued = queued + $3, skipped = skipped + $4, after_at = $5, after_id = $6,
                state = CASE WHEN $7 THEN 'done' ELSE state END,
                finished_at = CASE WHEN $7 THEN now() END,
                lease_owner = CASE WHEN $7 OR $9::text IS NOT NULL THEN NULL ELSE lease_owner END,
                lease_until = CASE WHEN $7 THEN NULL WHEN $9::text IS NOT NULL THEN now() + $10 ELSE now() + $8 END,
                error = $9, updated_at = now()
         WHERE id = $1 AND lease_owner = $2",
    )
    .bind(job.id)
    .bind(owner)
    .bind(confirmed.len() as i64)
    .bind(skipped.len() as i64)
    .bind(after_at)
    .bind(after_id)
    .bind(done)
    .bind(LEASE)
    .bind(publish_error.as_deref())
    .bind(RETRY_AFTER_ERROR)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(Step::LostLease);
    }
    if done {
        // In the same transaction: the job is recorded as finished exactly once.
        sqlx::query(
            "INSERT INTO activity (id, at, actor, kind, webhook_id, details)
             SELECT $1, now(), $2, $3, job.webhook_id,
                    jsonb_build_object('job_id', job.id, 'total', job.total, 'queued', job.queued,
                                       'skipped', job.skipped, 'skipped_disabled', job.skipped_disabled)
             FROM (SELECT id, total, queued, skipped, skipped_disabled,
                          CASE WHEN filter->>'webhook_id' ~ '^[0-9a-fA-F-]{36}$'
                               THEN (filter->>'webhook_id')::uuid END AS webhook_id
                   FROM bulk_retry_jobs WHERE id = $4) AS job",
        )
        .bind(hookrelay_shared::ids::new_id())
        .bind(activity::SYSTEM)
        .bind(activity::kind::BULK_RETRY_FINISHED)
        .bind(job.id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    if let Some(e) = publish_error {
        return Err(StepError::Publish(e));
    }
    job.after_at = after_at;
    job.after_id = after_id;
    Ok(if done { Step::Done } else { Step::More })
}

/// Publishes one manual job per delivery; returns the ids the broker confirmed and, when any
/// publish failed, why.
async fn publish(state: &AppState, deliveries: &[DeliveryRef]) -> (Vec<Uuid>, Option<String>) {
    if deliveries.is_empty() {
        return (vec![], None);
    }
    let channel = match state.publisher.channel().await {
        Ok(c) => c,
        Err(e) => return (vec![], Some(e.to_string())),
    };
    let names = &state.publisher.names;
    let jobs: Vec<_> = deliveries.iter().map(DeliveryRef::job).collect();
    let results = futures::future::join_all(
        jobs.iter()
            .map(|j| hookrelay_shared::jobs::publish_job(&channel, names, j)),
    )
    .await;
    let mut confirmed = Vec::with_capacity(deliveries.len());
    let mut error = None;
    for (d, r) in deliveries.iter().zip(results) {
        match r {
            Ok(()) => confirmed.push(d.id),
            Err(e) => error = Some(e.to_string()),
        }
    }
    if error.is_some() {
        state.publisher.reset().await;
    }
    (confirmed, error)
}

/// Claims one open job and works on it until it is done, the lease is lost, `shutdown` is
/// cancelled or a step fails. Returns whether a job was claimed. The steppable form of
/// [`run_worker`], for tests.
pub async fn run_one(state: &AppState, owner: Uuid, shutdown: &CancellationToken) -> sqlx::Result<bool> {
    let Some(mut job) = claim(&state.ctx.db, owner).await? else {
        return Ok(false);
    };
    tracing::info!(job_id = %job.id, "bulk retry job claimed");
    loop {
        if shutdown.is_cancelled() {
            // Hand the job back at once so another replica continues it.
            sqlx::query(
                "UPDATE bulk_retry_jobs SET lease_owner = NULL, lease_until = NULL, updated_at = now()
                 WHERE id = $1 AND lease_owner = $2",
            )
            .bind(job.id)
            .bind(owner)
            .execute(&state.ctx.db)
            .await?;
            return Ok(true);
        }
        match step(state, owner, &mut job).await {
            Ok(Step::More) => continue,
            Ok(Step::Done) => {
                tracing::info!(job_id = %job.id, "bulk retry job done");
                return Ok(true);
            }
            Ok(Step::LostLease) => {
                tracing::warn!(job_id = %job.id, "bulk retry job lease lost; another worker continues it");
                return Ok(true);
            }
            Err(e) => {
                tracing::warn!(job_id = %job.id, error = %e, "bulk retry chunk failed; it is tried again shortly");
                return Ok(true);
            }
        }
    }
}

/// Finished jobs (and their items) older than the retention are deleted.
async fn purge(db: &PgPool, retention: Duration) -> sqlx::Result<u64> {
    let keep = time::Duration::try_from(retention).unwrap_or(time::Duration::days(30));
    let done = sqlx::query(
        "DELETE FROM bulk_retry_jobs WHERE state IN ('done', 'failed') AND finished_at < now() - $1",
    )
    .bind(keep)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// The worker every API replica runs until `shutdown`: open jobs, oldest first; woken at once
/// by `wakeup` (a job made on this replica), otherwise every [`POLL`].
pub async fn run_worker(state: AppState, wakeup: Arc<Notify>, shutdown: CancellationToken) {
    let owner = Uuid::now_v7();
    let mut polls = 0u64;
    loop {
        loop {
            match run_one(&state, owner, &shutdown).await {
                Ok(true) if !shutdown.is_cancelled() => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "bulk retry worker: database unavailable");
                    break;
                }
            }
        }
        if polls.is_multiple_of(720)
            && let Err(e) = purge(&state.ctx.db, state.ctx.settings.retention()).await
        {
            tracing::warn!(error = %e, "bulk retry worker: purging old jobs failed");
        }
        polls = polls.wrapping_add(1);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wakeup.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
