//! Retention drops whole expired partitions, keeps days with waiting deliveries, and is idempotent.

use std::time::Duration;

use hookrelay_scheduler::purge_once;
use hookrelay_shared::testing::TestEnv;
use time::{OffsetDateTime, macros::format_description};

use crate::helpers::*;

fn part(table: &str, days_ago: i64) -> String {
    let day = (OffsetDateTime::now_utc() - Duration::from_secs(days_ago as u64 * 86_400)).date();
    let fmt = format_description!("[year][month][day]");
    format!("{table}_p{}", day.format(&fmt).expect("formats"))
}

fn midday(days_ago: i64) -> OffsetDateTime {
    let d = (OffsetDateTime::now_utc() - Duration::from_secs(days_ago as u64 * 86_400)).date();
    d.midnight().assume_utc() + Duration::from_secs(12 * 3600)
}

async fn tables(env: &TestEnv) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT relname::text FROM pg_class WHERE relkind = 'r' AND relname ~ '^(attempts|deliveries|events)_p[0-9]{8}$' ORDER BY 1",
    )
    .fetch_all(&env.db)
    .await
    .expect("catalog")
}

async fn insert_day(env: &TestEnv, days_ago: i64, events: i64) {
    let at = midday(days_ago);
    sqlx::query(
        "INSERT INTO events (id, received_at, event_type, category, occurred_at, body) \
         SELECT 'evt_' || g || '_' || $2, $1, 'license.assigned', 'license', $1, '{}' FROM generate_series(1, $3) g",
    )
    .bind(at)
    .bind(days_ago)
    .bind(events)
    .execute(&env.db)
    .await
    .expect("events");
    insert_deliveries(env, events, "succeeded", 1, None, at).await;
    sqlx::query(
        "INSERT INTO attempts (id, delivery_id, event_id, event_received_at, webhook_id, event_type, category, \
           attempt, trigger, status, request_url, request_headers, duration_ms, attempted_at) \
         SELECT gen_random_uuid(), gen_random_uuid(), 'evt', $1, gen_random_uuid(), 'license.assigned', 'license', \
           1, 'initial', 'success', 'http://example.test/', '{}'::jsonb, 5, $1 FROM generate_series(1, $2 * 2)",
    )
    .bind(at)
    .bind(events)
    .execute(&env.db)
    .await
    .expect("attempts");
}

#[tokio::test]
async fn retention_drops_expired_partitions_but_keeps_days_with_waiting_deliveries() {
    let env = TestEnv::new().await;
    sqlx::query("SELECT hookrelay_ensure_partitions(40, 0)")
        .execute(&env.db)
        .await
        .expect("old partitions");
    insert_day(&env, 35, 10).await;
    insert_day(&env, 33, 3).await;
    insert_day(&env, 2, 4).await;
    // Day -33 still has a retry pending (e.g. a long outage): its deliveries and events stay.
    insert_deliveries(
        &env,
        1,
        "retrying",
        2,
        Some(OffsetDateTime::now_utc()),
        midday(33),
    )
    .await;

    let report = purge_once(&env.context()).await.expect("purge");
    let after = tables(&env).await;
    for gone in [
        part("attempts", 35),
        part("deliveries", 35),
        part("events", 35),
        part("attempts", 33),
        part("attempts", 40),
        part("events", 31),
    ] {
        assert!(!after.contains(&gone), "{gone} should be dropped");
    }
    for kept in [
        part("deliveries", 33),
        part("events", 33),
        part("attempts", 29),
        part("events", 29),
        part("deliveries", 2),
        part("attempts", 0),
    ] {
        assert!(after.contains(&kept), "{kept} should be kept");
    }
    let kept: Vec<_> = report
        .partitions_kept
        .iter()
        .map(|k| k.partition.clone())
        .collect();
    assert_eq!(kept, vec![part("deliveries", 33), part("events", 33)]);
    assert_eq!(report.rows_purged.attempts, 26);
    assert_eq!(report.rows_purged.deliveries, 10);
    assert_eq!(report.rows_purged.events, 10);
    // Days -40..-31 of three tables, minus the two kept.
    assert_eq!(report.partitions_dropped.len(), 28);
    let metrics = env.metrics.render();
    assert!(
        metrics.contains("hookrelay_retention_purged_total{table=\"attempts\"} 26"),
        "{metrics}"
    );
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM attempts")
        .fetch_one(&env.db)
        .await
        .expect("count");
    assert_eq!(live, 8, "recent attempts are untouched");

    // Idempotent: a second run finds nothing more to drop and keeps the same.
    let again = purge_once(&env.context()).await.expect("purge again");
    assert!(
        again.partitions_dropped.is_empty(),
        "{:?}",
        again.partitions_dropped
    );
    assert_eq!(again.partitions_kept.len(), 2);
    assert_eq!(tables(&env).await, after);
    env.cleanup().await;
}

#[tokio::test]
async fn retention_finishes_what_a_crashed_run_left_detached() {
    let env = TestEnv::new().await;
    sqlx::query("SELECT hookrelay_ensure_partitions(35, 0)")
        .execute(&env.db)
        .await
        .expect("old partitions");
    insert_day(&env, 34, 5).await;
    // A run that detached a partition and died before dropping it.
    let name = part("attempts", 34);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER TABLE attempts DETACH PARTITION {name}"
    )))
    .execute(&env.db)
    .await
    .expect("detach");
    let report = purge_once(&env.context()).await.expect("purge");
    assert!(
        report
            .partitions_dropped
            .iter()
            .any(|d| d.partition == name && d.rows == 10)
    );
    assert!(!tables(&env).await.contains(&name));
    env.cleanup().await;
}

#[tokio::test]
async fn retention_uses_the_stored_setting_purges_old_activity_and_records_its_run() {
    let env = TestEnv::new().await;
    sqlx::query("SELECT hookrelay_ensure_partitions(12, 0)")
        .execute(&env.db)
        .await
        .expect("old partitions");
    insert_day(&env, 10, 2).await;
    insert_day(&env, 3, 1).await;
    // An owner set 7 days (HOOKRELAY_RETENTION says 30): day -10 expires, day -3 does not.
    sqlx::query("INSERT INTO settings (id, retention_secs, updated_by) VALUES (true, 7 * 86400, 'owner')")
        .execute(&env.db)
        .await
        .expect("settings");
    sqlx::query(
        "INSERT INTO activity (id, at, actor, kind, details) VALUES
           (gen_random_uuid(), now() - interval '8 days', 'owner', 'token.created', '{}'),
           (gen_random_uuid(), now() - interval '6 days', 'owner', 'token.revoked', '{}')",
    )
    .execute(&env.db)
    .await
    .expect("activity");
    let ctx = env.context();
    let report = purge_once(&ctx).await.expect("purge");
    assert_eq!(report.retention, "7d");
    assert_eq!(report.rows_purged.events, 2);
    assert_eq!(report.rows_purged.attempts, 4);
    assert_eq!(report.rows_purged.activity, 1);
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM activity ORDER BY at")
        .fetch_all(&env.db)
        .await
        .expect("activity");
    assert_eq!(kinds, ["token.revoked", "retention.run"]);
    let (actor, details): (String, serde_json::Value) =
        sqlx::query_as("SELECT actor, details FROM activity WHERE kind = 'retention.run'")
            .fetch_one(&env.db)
            .await
            .expect("run recorded");
    assert_eq!(actor, "system");
    assert_eq!(details["retention"], "7d");
    assert_eq!(details["rows_purged"]["events"], 2);
    assert_eq!(details["rows_purged"]["activity"], 1);
    // A run with nothing to do records nothing.
    let again = purge_once(&ctx).await.expect("purge again");
    assert!(again.partitions_dropped.is_empty());
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM activity WHERE kind = 'retention.run'")
        .fetch_one(&env.db)
        .await
        .expect("count");
    assert_eq!(runs, 1);
    env.cleanup().await;
}

#[tokio::test]
async fn retention_purges_the_stats_rollup_rows_no_window_reads_and_those_past_the_retention() {
    use hookrelay_shared::stats::Rollup;
    let env = TestEnv::new().await;
    let hook = uuid::Uuid::now_v7();
    let now = OffsetDateTime::now_utc();
    let mut r = Rollup::default();
    // Minutes and hours of: now, 2 days ago (minute rows expire after 26 h), 9 days ago (hour
    // rows after 8 days).
    for days in [0i64, 2, 9] {
        r.add(hook, true, now - Duration::from_secs(days as u64 * 86_400), 12);
    }
    hookrelay_shared::stats_store::upsert(&env.db, 7, &r)
        .await
        .expect("rollup");
    let rows = |env: &TestEnv| {
        let db = env.db.clone();
        async move {
            sqlx::query_as::<_, (i32, i64)>(
                "SELECT span_secs, (extract(epoch FROM now() - bucket) / 86400)::int8 AS days
                 FROM webhook_stats ORDER BY span_secs, bucket DESC",
            )
            .fetch_all(&db)
            .await
            .expect("rows")
        }
    };
    assert_eq!(rows(&env).await.len(), 6);
    let ctx = env.context();
    let report = purge_once(&ctx).await.expect("purge");
    assert_eq!(
        report.rows_purged.stats, 3,
        "2- and 9-day-old minutes, the 9-day-old hour"
    );
    assert_eq!(rows(&env).await, [(60, 0), (3600, 0), (3600, 2)]);
    // A retention of 1 day takes the 2-day-old hour too.
    sqlx::query("INSERT INTO settings (id, retention_secs, updated_by) VALUES (true, 86400, 'owner')")
        .execute(&env.db)
        .await
        .expect("settings");
    let report = purge_once(&ctx).await.expect("purge");
    assert_eq!(report.rows_purged.stats, 1);
    assert_eq!(rows(&env).await, [(60, 0), (3600, 0)]);
    env.cleanup().await;
}
