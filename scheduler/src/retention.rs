//! Retention: drop whole daily partitions older than `HOOKRELAY_RETENTION`, never one of
//! events/deliveries that still holds a `pending`/`retrying` delivery.
//!
//! Each expired partition is detached with `DETACH PARTITION ... CONCURRENTLY` (PostgreSQL
//! 14+; allowed here because the tables have no default partition and no foreign keys), which
//! takes only a SHARE UPDATE EXCLUSIVE lock on the parent, so the delivery log keeps answering
//! and inserts keep going. Its rows are then counted exactly (`count(*)` on the detached table,
//! which nothing else reads any more) and it is dropped. The run is idempotent and resumes
//! anything a crash left half done: a detach left pending is finalized, and a detached but not
//! yet dropped `<table>_pYYYYMMDD` is dropped. One replica at a time (a session advisory lock).

use std::time::Instant;

use hookrelay_shared::{Context, activity, db, stats_store};
use serde::Serialize;
use sqlx::{AssertSqlSafe, Connection, PgConnection, Postgres, pool::PoolConnection};
use time::{Date, Duration as TimeDuration, OffsetDateTime, macros::format_description};

/// The partitioned tables retention manages.
const TABLES: [&str; 3] = ["attempts", "deliveries", "events"];

/// Advisory lock id of retention ("hookrelay retention"), so two replicas never detach the same
/// partition at once.
const LOCK_ID: i64 = 0x686f_6f6b_7265_7401;

/// What one retention run did (printed as JSON by `hookrelay purge`).
#[derive(Debug, Default, Serialize)]
pub struct PurgeReport {
    /// Partitions dropped, with the rows they held.
    pub partitions_dropped: Vec<DroppedPartition>,
    /// Expired partitions kept, and why.
    pub partitions_kept: Vec<KeptPartition>,
    /// New partitions created ahead of time.
    pub partitions_created: i32,
    /// Rows removed, by table.
    pub rows_purged: RowsPurged,
    /// Everything strictly before this instant is expired (now minus the retention).
    pub cutoff: String,
    /// The retention the run used (the setting in force).
    pub retention: String,
    /// True if another replica held the retention lock, so this run did nothing.
    pub skipped_locked: bool,
    pub duration_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct DroppedPartition {
    pub table: &'static str,
    pub partition: String,
    pub rows: i64,
}

#[derive(Debug, Serialize)]
pub struct KeptPartition {
    pub partition: String,
    pub reason: String,
}

#[derive(Debug, Default, Serialize)]
pub struct RowsPurged {
    pub attempts: i64,
    pub deliveries: i64,
    pub events: i64,
    /// Activity log entries older than the retention.
    pub activity: i64,
    /// Health-stats rollup rows (`webhook_stats`) older than the retention or than any
    /// window reads.
    pub stats: i64,
}

/// One daily partition found in the catalog.
#[derive(Debug, Clone)]
struct Part {
    table: &'static str,
    name: String,
    day: Date,
    /// Still attached (false: detached by an earlier run that did not get to drop it).
    attached: bool,
    detach_pending: bool,
}

/// Parses `<table>_pYYYYMMDD`; anything else is not ours to touch.
fn parse_partition(name: &str) -> Option<(&'static str, Date)> {
    let (table, day) = name.rsplit_once("_p")?;
    let table = TABLES.into_iter().find(|t| *t == table)?;
    if day.len() != 8 || !day.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let day = Date::parse(day, format_description!("[year][month][day]")).ok()?;
    Some((table, day))
}

/// A partition's name quoted as an identifier. Names come from [`parse_partition`], so they are
/// `[a-z]+_p[0-9]{8}` and quoting is belt and braces.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn partitions(conn: &mut PgConnection) -> Result<Vec<Part>, sqlx::Error> {
    // Attached partitions of our tables, and loose tables named like one (left by a crash
    // between detach and drop).
    let rows: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT c.relname::text, i.inhrelid IS NOT NULL, COALESCE(i.inhdetachpending, false) \
         FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() \
         LEFT JOIN pg_inherits i ON i.inhrelid = c.oid \
         WHERE c.relkind = 'r' AND c.relname ~ '^(attempts|deliveries|events)_p[0-9]{8}$'",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(name, attached, detach_pending)| {
            let (table, day) = parse_partition(&name)?;
            Some(Part {
                table,
                name,
                day,
                attached,
                detach_pending,
            })
        })
        .collect())
}

/// True if the deliveries partition of `day` holds a delivery still waiting for an attempt.
async fn has_waiting(conn: &mut PgConnection, day: Date) -> Result<bool, sqlx::Error> {
    let name = format!("deliveries_p{}", day_suffix(day));
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(&name)
        .fetch_one(&mut *conn)
        .await?;
    if exists.is_none() {
        return Ok(false);
    }
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE state IN ('pending', 'retrying'))",
        ident(&name)
    );
    sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(&mut *conn).await
}

fn day_suffix(day: Date) -> String {
    format!("{:04}{:02}{:02}", day.year(), u8::from(day.month()), day.day())
}

/// Detaches (if still attached), counts and drops one partition.
async fn drop_partition(conn: &mut PgConnection, part: &Part) -> Result<i64, sqlx::Error> {
    let name = ident(&part.name);
    if part.attached {
        let sql = if part.detach_pending {
            format!("ALTER TABLE {} DETACH PARTITION {name} FINALIZE", part.table)
        } else {
            format!("ALTER TABLE {} DETACH PARTITION {name} CONCURRENTLY", part.table)
        };
        sqlx::query(AssertSqlSafe(sql)).execute(&mut *conn).await?;
    }
    let rows: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {name}")))
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS {name}")))
        .execute(&mut *conn)
        .await?;
    Ok(rows)
}

async fn lock(conn: &mut PoolConnection<Postgres>) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LOCK_ID)
        .fetch_one(&mut **conn)
        .await
}

async fn unlock(conn: &mut PoolConnection<Postgres>) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_ID)
        .fetch_one(&mut **conn)
        .await
}

/// Runs retention once: creates partitions ahead, then drops every expired one it may.
pub async fn purge_once(ctx: &Context) -> anyhow::Result<PurgeReport> {
    let started = Instant::now();
    // The retention in force now (`PUT /api/v1/settings`, else HOOKRELAY_RETENTION), read
    // afresh: a run is rare, and should not act on a value up to a refresh period old.
    let retention = match ctx.settings.refresh().await {
        Ok(s) => s.retention,
        Err(e) => {
            tracing::warn!(error = %e, "reading the settings failed; retention uses the last known value");
            ctx.settings.retention()
        }
    };
    let retention_std = retention;
    let retention = TimeDuration::try_from(retention)
        .map_err(|e| anyhow::anyhow!("the retention is out of range: {e}"))?;
    let cutoff = OffsetDateTime::now_utc() - retention;
    let mut report = PurgeReport {
        cutoff: cutoff
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        ..Default::default()
    };
    report.partitions_created = db::ensure_partitions(&ctx.db, 0, db::PARTITION_DAYS_AHEAD).await?;

    let mut conn = ctx.db.acquire().await?;
    if !lock(&mut conn).await? {
        report.skipped_locked = true;
        tracing::info!("retention: another replica is running it");
        return Ok(report);
    }
    let result = purge_locked(&mut conn, ctx, cutoff, &mut report).await;
    // If the unlock fails the session is in doubt: close it rather than return it to the pool
    // still holding the lock.
    if !matches!(unlock(&mut conn).await, Ok(true)) {
        let _ = conn.detach().close().await;
    }
    result?;
    report.rows_purged.activity = activity::purge(&ctx.db, retention_std).await? as i64;
    report.rows_purged.stats = stats_store::purge(&ctx.db, retention_std).await? as i64;
    report.retention = hookrelay_shared::duration::format_duration(retention_std);
    report.duration_ms = started.elapsed().as_millis() as u64;
    let r = &report.rows_purged;
    // Rollup rows age out every hour, so they alone don't make a run worth an entry.
    if r.attempts + r.deliveries + r.events + r.activity > 0 || !report.partitions_kept.is_empty() {
        activity::record_logged(
            &ctx.db,
            &activity::Actor::system(),
            activity::kind::RETENTION_RUN,
            None,
            serde_json::json!({
                "retention": report.retention,
                "cutoff": report.cutoff,
                "rows_purged": {"attempts": r.attempts, "deliveries": r.deliveries, "events": r.events, "activity": r.activity,
                    "stats": r.stats},
                "partitions_dropped": report.partitions_dropped.len(),
                "partitions_kept": report.partitions_kept.len(),
            }),
        )
        .await;
    }
    tracing::info!(
        dropped = report.partitions_dropped.len(),
        kept = report.partitions_kept.len(),
        attempts = report.rows_purged.attempts,
        deliveries = report.rows_purged.deliveries,
        events = report.rows_purged.events,
        duration_ms = report.duration_ms,
        "retention run finished"
    );
    Ok(report)
}

async fn purge_locked(
    conn: &mut PgConnection,
    ctx: &Context,
    cutoff: OffsetDateTime,
    report: &mut PurgeReport,
) -> anyhow::Result<()> {
    let mut parts = partitions(conn).await?;
    // Oldest first, attempts before deliveries before events, so a run cut short leaves the
    // newest data.
    parts.sort_by(|a, b| (a.day, a.table).cmp(&(b.day, b.table)));
    let mut waiting_days = std::collections::HashMap::new();
    for part in parts {
        // The partition holds [day, day + 1); it is expired when all of it is before the cutoff.
        let end = part.day.next_day().map(|d| d.midnight().assume_utc());
        if end.is_none_or(|end| end > cutoff) {
            continue;
        }
        if part.table != "attempts" && part.attached {
            let waiting = match waiting_days.get(&part.day) {
                Some(w) => *w,
                None => {
                    let w = has_waiting(conn, part.day).await?;
                    waiting_days.insert(part.day, w);
                    w
                }
            };
            if waiting {
                report.partitions_kept.push(KeptPartition {
                    partition: part.name.clone(),
                    reason: "holds deliveries that are still pending or retrying".into(),
                });
                continue;
            }
        }
        let rows = drop_partition(conn, &part).await?;
        ctx.metrics
            .retention_purged
            .get_or_create(&[("table", part.table)])
            .inc_by(rows.max(0) as u64);
        match part.table {
            "attempts" => report.rows_purged.attempts += rows,
            "deliveries" => report.rows_purged.deliveries += rows,
            _ => report.rows_purged.events += rows,
        }
        tracing::info!(partition = %part.name, rows, "retention dropped a partition");
        report.partitions_dropped.push(DroppedPartition {
            table: part.table,
            partition: part.name,
            rows,
        });
    }
    if !report.partitions_kept.is_empty() {
        tracing::warn!(
            kept = report.partitions_kept.len(),
            "retention kept expired partitions that still hold waiting deliveries"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_daily_partitions_are_recognised() {
        let (t, d) = parse_partition("attempts_p20261027").expect("a partition");
        assert_eq!(t, "attempts");
        assert_eq!(day_suffix(d), "20261027");
        assert!(parse_partition("events_p2026102").is_none());
        assert!(parse_partition("webhooks_p20261027").is_none());
        assert!(parse_partition("attempts_p20261399").is_none());
        assert!(parse_partition("attempts_p2026102x").is_none());
    }
}
