//! Retention benchmark (not a test): one expired day holding `PURGE_ROWS` attempts (default
//! 1,000,000) is purged while the delivery log is queried (newest 50 attempts) and written to
//! without pause; reports the purge's duration and the query and insert latencies before and
//! during it. Needs the real PostgreSQL (plus Redis and RabbitMQ for the test environment).
//!
//! `cargo bench -p hookrelay-scheduler --bench purge`

use std::time::{Duration, Instant};

use hookrelay_scheduler::purge_once;
use hookrelay_shared::testing::TestEnv;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

const INSERT: &str = "INSERT INTO attempts (id, delivery_id, event_id, event_received_at, webhook_id, event_type, category, \
   attempt, trigger, status, request_url, request_headers, response_code, duration_ms, attempted_at) \
 SELECT gen_random_uuid(), gen_random_uuid(), 'evt_' || g, $1, gen_random_uuid(), 'license.assigned', 'license', \
   1, 'initial', CASE WHEN g % 5 = 0 THEN 'failed' ELSE 'success' END, 'https://example.test/hook', \
   '{\"content-type\": \"application/json\"}'::jsonb, CASE WHEN g % 5 = 0 THEN 500 ELSE 200 END, 12, \
   $1 + (g % 86000) * interval '1 second' \
 FROM generate_series(1, $2) g";

fn summary(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "no samples".into();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    format!(
        "n {}, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        v.len(),
        p(0.5),
        p(0.99),
        p(1.0)
    )
}

/// Runs the log query and a one-row insert in a loop until `stop`, recording latencies (ms).
fn probe(db: PgPool, stop: CancellationToken) -> tokio::task::JoinHandle<(Vec<f64>, Vec<f64>)> {
    tokio::spawn(async move {
        let (mut reads, mut writes) = (vec![], vec![]);
        while !stop.is_cancelled() {
            let t = Instant::now();
            let _: Vec<(uuid::Uuid,)> =
                sqlx::query_as("SELECT id FROM attempts ORDER BY attempted_at DESC, id DESC LIMIT 50")
                    .fetch_all(&db)
                    .await
                    .expect("log query");
            reads.push(t.elapsed().as_secs_f64() * 1000.0);
            let t = Instant::now();
            sqlx::query(INSERT)
                .bind(OffsetDateTime::now_utc())
                .bind(1i64)
                .execute(&db)
                .await
                .expect("insert");
            writes.push(t.elapsed().as_secs_f64() * 1000.0);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (reads, writes)
    })
}

#[tokio::main]
async fn main() {
    let rows: i64 = std::env::var("PURGE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let env = TestEnv::new().await;
    sqlx::query("SELECT hookrelay_ensure_partitions(35, 0)")
        .execute(&env.db)
        .await
        .expect("partitions");
    let old_day = (OffsetDateTime::now_utc() - Duration::from_secs(32 * 86_400))
        .date()
        .midnight()
        .assume_utc();
    let t = Instant::now();
    for _ in 0..(rows / 100_000).max(1) {
        sqlx::query(INSERT)
            .bind(old_day)
            .bind(rows.min(100_000))
            .execute(&env.db)
            .await
            .expect("old attempts");
    }
    sqlx::query(INSERT)
        .bind(OffsetDateTime::now_utc() - Duration::from_secs(3600))
        .bind(100_000i64)
        .execute(&env.db)
        .await
        .expect("recent attempts");
    let _ = sqlx::query("ANALYZE attempts").execute(&env.db).await;
    println!(
        "loaded {rows} attempts into one expired day in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let stop = CancellationToken::new();
    let baseline = probe(env.db.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.cancel();
    let (reads, writes) = baseline.await.expect("probe");
    println!(
        "before the purge: log query {}; insert {}",
        summary(reads),
        summary(writes)
    );

    let stop = CancellationToken::new();
    let during = probe(env.db.clone(), stop.clone());
    let t = Instant::now();
    let report = purge_once(&env.context()).await.expect("purge");
    let took = t.elapsed();
    stop.cancel();
    let (reads, writes) = during.await.expect("probe");
    println!(
        "purge: {:.2} s, dropped {} partitions, {} attempts",
        took.as_secs_f64(),
        report.partitions_dropped.len(),
        report.rows_purged.attempts
    );
    println!(
        "during the purge: log query {}; insert {}",
        summary(reads),
        summary(writes)
    );
    env.cleanup().await;
}
