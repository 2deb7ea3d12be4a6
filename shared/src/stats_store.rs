//! The rollup in PostgreSQL (`webhook_stats`, migration `0700_webhook_stats.sql`): the
//! recorder's upsert, the stats route's read, the webhook list's 24 h summaries and the purge.
//! The model (buckets, windows, histogram) is [`crate::stats`].

use std::{collections::HashMap, time::Duration};

use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::stats::{self, Counts, Rollup, Window};

const UPSERT: &str = "
INSERT INTO webhook_stats AS s (webhook_id, span_secs, bucket, shard, attempts, succeeded,
    last_success_at, last_failure_at, latency)
SELECT u.w, u.span, u.b, $9, u.a, u.ok, u.ls, u.lf, u.h::bigint[]
FROM UNNEST($1::uuid[], $2::int4[], $3::timestamptz[], $4::int8[], $5::int8[], $6::timestamptz[],
    $7::timestamptz[], $8::text[]) AS u(w, span, b, a, ok, ls, lf, h)
ON CONFLICT (webhook_id, span_secs, bucket, shard) DO UPDATE SET
    attempts = s.attempts + EXCLUDED.attempts,
    succeeded = s.succeeded + EXCLUDED.succeeded,
    last_success_at = GREATEST(s.last_success_at, EXCLUDED.last_success_at),
    last_failure_at = GREATEST(s.last_failure_at, EXCLUDED.last_failure_at),
    latency = ARRAY(SELECT COALESCE(x, 0) + COALESCE(y, 0)
                    FROM unnest(s.latency, EXCLUDED.latency) WITH ORDINALITY AS t(x, y, i) ORDER BY i)";

fn ts(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Adds a rollup to the rows of `shard` (one statement; rows in key order).
pub async fn upsert<'e>(db: impl PgExecutor<'e>, shard: i32, rollup: &Rollup) -> sqlx::Result<()> {
    if rollup.is_empty() {
        return Ok(());
    }
    let mut keys: Vec<_> = rollup.rows.keys().copied().collect();
    keys.sort_unstable();
    let n = keys.len();
    let (mut w, mut span, mut b, mut a, mut ok) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut ls, mut lf, mut h) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for k in keys {
        let Some(c) = rollup.rows.get(&k) else { continue };
        w.push(k.0);
        span.push(i32::try_from(k.1).unwrap_or(i32::MAX));
        b.push(ts(k.2));
        a.push(to_i64(c.attempts));
        ok.push(to_i64(c.succeeded));
        ls.push(c.last_success_at);
        lf.push(c.last_failure_at);
        h.push(c.latency_literal());
    }
    sqlx::query(UPSERT)
        .bind(&w)
        .bind(&span)
        .bind(&b)
        .bind(&a)
        .bind(&ok)
        .bind(&ls)
        .bind(&lf)
        .bind(&h)
        .bind(shard)
        .execute(db)
        .await?;
    Ok(())
}

type Row = (i64, i64, Option<OffsetDateTime>, Option<OffsetDateTime>, Vec<i64>);

fn counts((attempts, succeeded, ls, lf, latency): Row) -> Counts {
    Counts {
        attempts: attempts.max(0) as u64,
        succeeded: succeeded.max(0) as u64,
        last_success_at: ls,
        last_failure_at: lf,
        latency: latency.into_iter().map(|c| c.max(0) as u64).collect(),
    }
}

/// A webhook's attempts in `window` up to `now`: every shard's minute rows for the window's
/// start and hour rows for the rest, summed.
pub async fn read(
    pool: &PgPool,
    webhook_id: Uuid,
    window: Window,
    now: OffsetDateTime,
) -> sqlx::Result<Counts> {
    let (minutes_from, hours_from) = window.bounds(now);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT attempts, succeeded, last_success_at, last_failure_at, latency FROM webhook_stats
         WHERE webhook_id = $1 AND span_secs = 60 AND bucket >= $2 AND bucket < $3
         UNION ALL
         SELECT attempts, succeeded, last_success_at, last_failure_at, latency FROM webhook_stats
         WHERE webhook_id = $1 AND span_secs = 3600 AND bucket >= $3",
    )
    .bind(webhook_id)
    .bind(minutes_from)
    .bind(hours_from)
    .fetch_all(pool)
    .await?;
    let mut total = Counts::default();
    for r in rows {
        total.merge(&counts(r));
    }
    Ok(total)
}

/// Attempts and successes in the last 24 h of each of `ids` (one query; a webhook with none is
/// absent from the map).
pub async fn summaries(
    pool: &PgPool,
    ids: &[Uuid],
    now: OffsetDateTime,
) -> sqlx::Result<HashMap<Uuid, (u64, u64)>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let (minutes_from, hours_from) = Window::Day.bounds(now);
    let rows: Vec<(Uuid, i64, i64)> = sqlx::query_as(
        "SELECT webhook_id, sum(attempts)::int8, sum(succeeded)::int8 FROM (
             SELECT webhook_id, attempts, succeeded FROM webhook_stats
             WHERE webhook_id = ANY($1) AND span_secs = 60 AND bucket >= $2 AND bucket < $3
             UNION ALL
             SELECT webhook_id, attempts, succeeded FROM webhook_stats
             WHERE webhook_id = ANY($1) AND span_secs = 3600 AND bucket >= $3) r
         GROUP BY webhook_id",
    )
    .bind(ids)
    .bind(minutes_from)
    .bind(hours_from)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, a, s)| (id, (a.max(0) as u64, s.max(0) as u64)))
        .collect())
}

/// The success rate of `succeeded` out of `attempts`; `None` without attempts.
pub fn success_rate(attempts: u64, succeeded: u64) -> Option<f64> {
    (attempts > 0).then(|| succeeded.min(attempts) as f64 / attempts as f64)
}

/// Minute rows are read only for the start of a 24 h window: kept this long.
pub const MINUTE_ROWS_KEPT: Duration = Duration::from_secs(26 * 3600);
/// Hour rows are read for 7 days at most: kept this long, or less when the retention is shorter.
pub const HOUR_ROWS_KEPT: Duration = Duration::from_secs(8 * 86_400);

/// Deletes rollup rows no window reads any more, and every row older than `retention` (the
/// stats never show attempts the log no longer has); a batch at a time. Returns how many.
pub async fn purge(db: &PgPool, retention: Duration) -> sqlx::Result<u64> {
    let hours = retention.min(HOUR_ROWS_KEPT).as_secs_f64();
    let minutes = retention.min(MINUTE_ROWS_KEPT).as_secs_f64();
    // The bucket's end must be before the cutoff: a row is removed once all of it expired.
    crate::db::delete_in_batches(|| async move {
        sqlx::query(
            "DELETE FROM webhook_stats WHERE ctid IN (
                 SELECT ctid FROM webhook_stats
                 WHERE (span_secs = 3600 AND bucket < now() - make_interval(secs => $1) - interval '1 hour')
                    OR (span_secs = 60 AND bucket < now() - make_interval(secs => $2) - interval '1 minute')
                 LIMIT $3)",
        )
        .bind(hours)
        .bind(minutes)
        .bind(crate::db::PURGE_BATCH)
        .execute(db)
        .await
        .map(|done| done.rows_affected())
    })
    .await
}

/// The percentiles the route reports.
pub fn response_ms(c: &Counts) -> [Option<f64>; 3] {
    [0.5, 0.95, 0.99].map(|q| stats::percentile(&c.latency, q))
}
