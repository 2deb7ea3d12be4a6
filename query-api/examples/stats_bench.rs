//! Benchmark of the endpoint health stats (not a test): seeds one webhook with 10 million
//! attempts over the last 7 days into the rollup, as the dispatchers' recorders write it, then
//! measures p50/p99 of the stats read per window and of the webhook list's 24 h summaries.
//!
//! ```text
//! cargo run --release -p hookrelay-query-api --example stats_bench -- [attempts] [runs]
//! ```
//! `HOOKRELAY_BENCH_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/hookrelay_stats_bench`).
//!
//! The seed: attempts spread evenly over 7 days (about 990 a minute for 10 M), response times
//! log-normal around 40 ms, 3 % failures, alternating between two shards (two dispatcher
//! replicas); 50 quieter webhooks (one attempt a minute) share the table. Every simulated
//! minute each shard's [`Rollup`] is upserted with the recorder's own statement
//! ([`stats_store::upsert`]): the minute rows are written once and each hour row is updated
//! 60 times, which leaves exactly the rows one-second flushes would (they are sums). Minute
//! rows are seeded for all 7 days (more than the 26 h retention keeps: the worst case).

use std::time::{Duration, Instant};

use hookrelay_shared::{
    Config, db,
    stats::{Rollup, Window},
    stats_store,
};
use rand::Rng;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

const QUIET_WEBHOOKS: usize = 50;
const SHARDS: i32 = 2;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hookrelay_shared::install_crypto_provider();
    let args: Vec<String> = std::env::args().collect();
    let attempts: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let config = Config {
        database_url: std::env::var("HOOKRELAY_BENCH_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/hookrelay_stats_bench".into()),
        ..Config::default()
    };
    db::create_database_if_missing(&config).await?;
    let pool = db::connect(&config, 4).await?;
    db::MIGRATOR.run(&pool).await?;
    let (hot, quiet) = seed(&pool, attempts).await?;
    measure(&pool, hot, &quiet, runs).await
}

/// A log-normal response time around 40 ms (Box-Muller), capped at the 10 s timeout.
fn response_ms(rng: &mut impl Rng) -> u64 {
    let (u1, u2): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (40.0 * (0.6 * z).exp()).clamp(1.0, 10_000.0) as u64
}

async fn seed(pool: &PgPool, attempts: u64) -> anyhow::Result<(Uuid, Vec<Uuid>)> {
    sqlx::query("TRUNCATE webhook_stats").execute(pool).await?;
    let hot = Uuid::now_v7();
    let quiet: Vec<Uuid> = (0..QUIET_WEBHOOKS).map(|_| Uuid::now_v7()).collect();
    let started = Instant::now();
    let now = OffsetDateTime::now_utc();
    let minutes: i64 = 7 * 24 * 60;
    let per_minute = attempts.div_ceil(minutes as u64);
    let mut rng = rand::rng();
    let mut seeded = 0u64;
    for m in 0..minutes {
        let minute_start = now - time::Duration::minutes(minutes - m);
        let mut shards: Vec<Rollup> = (0..SHARDS).map(|_| Rollup::default()).collect();
        for i in 0..per_minute.min(attempts - seeded) {
            let at = minute_start + time::Duration::milliseconds(rng.random_range(0..60_000));
            let ok = rng.random_range(0..100) >= 3;
            let shard = &mut shards[(i % SHARDS as u64) as usize];
            shard.add(hot, ok, at, response_ms(&mut rng));
        }
        seeded += per_minute.min(attempts - seeded);
        for q in &quiet {
            shards[0].add(*q, true, minute_start, response_ms(&mut rng));
        }
        for (shard, rollup) in shards.iter().enumerate() {
            stats_store::upsert(pool, shard as i32 + 1, rollup).await?;
        }
        if m % 1440 == 1439 {
            println!(
                "seed: day {} done ({seeded} attempts, {:?})",
                m / 1440 + 1,
                started.elapsed()
            );
        }
    }
    sqlx::query("VACUUM ANALYZE webhook_stats").execute(pool).await?;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_stats")
        .fetch_one(pool)
        .await?;
    let size: String = sqlx::query_scalar("SELECT pg_size_pretty(pg_total_relation_size('webhook_stats'))")
        .fetch_one(pool)
        .await?;
    println!(
        "seed: {seeded} attempts of one webhook, {rows} rollup rows ({size}) in {:?}",
        started.elapsed()
    );
    Ok((hot, quiet))
}

fn pct(mut v: Vec<Duration>, q: f64) -> Duration {
    v.sort_unstable();
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

async fn measure(pool: &PgPool, hot: Uuid, quiet: &[Uuid], runs: usize) -> anyhow::Result<()> {
    for window in [Window::Hour, Window::Day, Window::Week] {
        let mut took = Vec::with_capacity(runs);
        let mut last = None;
        for _ in 0..runs {
            let t = Instant::now();
            let c = stats_store::read(pool, hot, window, OffsetDateTime::now_utc()).await?;
            let p = stats_store::response_ms(&c);
            took.push(t.elapsed());
            last = Some((c.attempts, c.succeeded, p));
        }
        let (n, ok, p) = last.unwrap_or_default();
        println!(
            "stats window={:<3}  p50 {:>7.2} ms  p99 {:>7.2} ms   ({n} attempts, {ok} succeeded, response p50/p95/p99 {:?})",
            window.as_str(),
            pct(took.clone(), 0.5).as_secs_f64() * 1e3,
            pct(took, 0.99).as_secs_f64() * 1e3,
            p
        );
    }
    let mut page = vec![hot];
    page.extend_from_slice(quiet);
    let mut took = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let s = stats_store::summaries(pool, &page, OffsetDateTime::now_utc()).await?;
        took.push(t.elapsed());
        anyhow::ensure!(s.len() == page.len(), "every webhook has a summary");
    }
    println!(
        "list summaries ({} webhooks)  p50 {:>7.2} ms  p99 {:>7.2} ms",
        page.len(),
        pct(took.clone(), 0.5).as_secs_f64() * 1e3,
        pct(took, 0.99).as_secs_f64() * 1e3
    );
    Ok(())
}
