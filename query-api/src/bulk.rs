//! Durable bulk retries. `POST /api/v1/deliveries/retry` counts what its filter matches and
//! stores a job in `bulk_retry_jobs` (migration 0410); a worker in every API replica claims open
//! jobs (`FOR UPDATE SKIP LOCKED` and a lease, so a job whose replica died is taken over), walks
//! the matching failed attempts (`bulk_worker.rs`) in keyset order `(attempted_at, id)` [`CHUNK`] at a time,
//! publishes one manual job per delivery that is still worth retrying, and after the broker's
//! confirms records the chunk's deliveries (`bulk_retry_items`), its position and counters.
//!
//! Each delivery is queued at most once per job (its item row), and not again by another job
//! while it is queued and not yet attempted (for [`REQUEUE_GUARD`]). A broker failure leaves the
//! position where it was: the chunk is read again after [`RETRY_AFTER_ERROR`], and the items of
//! the publishes that were confirmed keep those from going out twice. Only a worker that loses
//! its lease in the middle of a chunk (a chunk taking longer than [`LEASE`]) can publish a
//! delivery twice; the dispatcher then makes two manual attempts.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::deliveries::{Filter, QMatch, push_filter};

#[path = "bulk_worker.rs"]
mod worker;

pub use worker::{run_one, run_worker};

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
