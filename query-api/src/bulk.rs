//! Durable bulk retries. `POST /api/v1/deliveries/retry` counts what its filter matches and
//! stores a job in `bulk_retry_jobs` (migration 0410); a worker in every API replica claims open
//! jobs (`FOR UPDATE SKIP LOCKED` and a lease, so a job whose replica died is taken over), walks
//! the matching failed attempts in keyset order `(attempted_at, id)` [`CHUNK`] at a time,
//! publishes one manual job per delivery that is still worth retrying, and after the broker's
//! confirms records the chunk's deliveries (`bulk_retry_items`), its position and counters.
//!
//! Each delivery is queued at most once per job (its item row), and not again by another job
//! while it is queued and not yet attempted (for [`REQUEUE_GUARD`]). A broker failure leaves the
//! position where it was: the chunk is read again after [`RETRY_AFTER_ERROR`], and the items of
//! the publishes that were confirmed keep those from going out twice. Only a worker that loses
//! its lease in the middle of a chunk (a chunk taking longer than [`LEASE`]) can publish a
//! delivery twice; the dispatcher then makes two manual attempts.

use std::{collections::HashSet, sync::Arc, time::Duration};

use hookrelay_shared::{activity, manual_retry::DeliveryRef};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, QueryBuilder};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    deliveries::{Filter, QMatch, push_filter},
    state::AppState,
};

/// Deliveries (at most; failed attempts read) per chunk.
pub const CHUNK: i64 = 500;
/// How long a claim lasts without progress before another replica may take the job over.
pub const LEASE: time::Duration = time::Duration::seconds(30);
/// How often an idle worker looks for open jobs (a job made on this replica wakes it at once).
pub const POLL: Duration = Duration::from_secs(5);
/// After a broker or database error, how long the job waits before any worker tries again.
pub const RETRY_AFTER_ERROR: time::Duration = time::Duration::seconds(5);
/// A delivery another job queued, and that has not been attempted since, is skipped for this long.
pub const REQUEUE_GUARD: time::Duration = time::Duration::hours(1);

/// The filter of a job as stored: the request's, with `q` resolved and `until` frozen at the
/// time of the request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct JobFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<Uuid>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub since: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// What `q` matched at the time of the request (empty and unused when it matched everything).
    #[serde(default)]
    pub q_webhooks: Vec<Uuid>,
    #[serde(default)]
    pub q_types: Vec<String>,
    #[serde(default)]
    pub q_everything: bool,
}

impl JobFilter {
    /// `filter` (validated) and the resolved `q`, frozen at `now`.
    pub fn new(filter: &Filter, q: Option<(String, QMatch)>, now: OffsetDateTime) -> Self {
        let (q, m) = q.unzip();
        let m = m.unwrap_or_default();
        Self {
            webhook_id: filter.webhook_id,
            status: filter.status.unwrap_or("failed").to_owned(),
            category: filter.category.clone(),
            event_type: filter.event_type.clone(),
            since: filter.since,
            until: filter.until.map_or(now, |u| u.min(now)),
            q,
            q_webhooks: m.webhooks,
            q_types: m.types,
            q_everything: m.everything,
        }
    }

    fn filter(&self) -> Filter {
        Filter {
            category: self.category.clone(),
            event_type: self.event_type.clone(),
            status: Some(if self.status == "success" {
                "success"
            } else {
                "failed"
            }),
            webhook_id: self.webhook_id,
            response_code: None,
            since: self.since,
            until: Some(self.until),
        }
    }

    /// Appends the conditions on the attempts table (aliased `a`).
    fn push(&self, qb: &mut QueryBuilder<Postgres>) {
        push_filter(qb, &self.filter());
        if self.q.is_some() && !self.q_everything {
            qb.push(" AND (a.webhook_id = ANY(")
                .push_bind(self.q_webhooks.clone())
                .push(") OR a.event_type = ANY(")
                .push_bind(self.q_types.clone())
                .push("))");
        }
    }
}

/// What a job will do, counted when it is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Deliveries it will queue.
    pub total: i64,
    /// Deliveries skipped because their webhook is disabled or deleted.
    pub skipped_disabled: i64,
    /// Deliveries skipped because another job queued them and they have not been attempted since.
    pub skipped_queued: i64,
}

/// Counts the distinct deliveries `f` matches that have not succeeded, by what will happen to them.
pub async fn count(db: &PgPool, f: &JobFilter) -> sqlx::Result<Counts> {
    let mut qb = QueryBuilder::new(
        "SELECT count(*) FILTER (WHERE x.live AND NOT x.recent),
                count(*) FILTER (WHERE NOT x.live),
                count(*) FILTER (WHERE x.live AND x.recent)
         FROM (SELECT COALESCE(w.enabled AND w.deleted_at IS NULL, false) AS live,
                      EXISTS (SELECT 1 FROM bulk_retry_items i
                              WHERE i.delivery_id = d.id AND i.queued
                                AND i.at > COALESCE(d.last_attempt_at, '-infinity') AND i.at > now() - ",
    );
    qb.push_bind(REQUEUE_GUARD).push(
        ") AS recent
               FROM deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id
               WHERE d.state <> 'succeeded'
                 AND (d.id, d.event_received_at) IN
                     (SELECT a.delivery_id, a.event_received_at FROM attempts a WHERE TRUE",
    );
    f.push(&mut qb);
    qb.push(")) x");
    let (total, skipped_disabled, skipped_queued): (i64, i64, i64) =
        qb.build_query_as().fetch_one(db).await?;
    Ok(Counts {
        total,
        skipped_disabled,
        skipped_queued,
    })
}

/// Stores a new job (already `done` when there is nothing to queue) and returns its id.
pub async fn create(db: &PgPool, f: &JobFilter, counts: Counts, requested_by: Uuid) -> sqlx::Result<Uuid> {
    let id = hookrelay_shared::ids::new_id();
    let done = counts.total == 0;
    sqlx::query(
        "INSERT INTO bulk_retry_jobs (id, filter, state, total, skipped_disabled, skipped, requested_by, finished_at)
         VALUES ($1, $2, CASE WHEN $3 THEN 'done' ELSE 'pending' END, $4, $5, $6, $7,
                 CASE WHEN $3 THEN now() END)",
    )
    .bind(id)
    .bind(sqlx::types::Json(f))
    .bind(done)
    .bind(counts.total)
    .bind(counts.skipped_disabled)
    .bind(counts.skipped_queued)
    .bind(requested_by)
    .execute(db)
    .await?;
    Ok(id)
}

/// A job as `GET /api/v1/deliveries/retry/{job_id}` shows it.
#[derive(Debug, sqlx::FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub filter: sqlx::types::Json<serde_json::Value>,
    pub state: String,
    pub total: i64,
    pub skipped_disabled: i64,
    pub queued: i64,
    pub skipped: i64,
    pub error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
}

/// One job, or `None`.
pub async fn get(db: &PgPool, id: Uuid) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as(
        "SELECT id, filter, state, total, skipped_disabled, queued, skipped, error,
                created_at, updated_at, started_at, finished_at
         FROM bulk_retry_jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

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
