//! Lateness benchmark (not a test): 100,000 retries pending in Redis and 2,000 coming due per
//! second; reports the lateness (job received on `{ns}.deliveries` minus due time) at p50, p99
//! and max, and Redis memory per pending retry. Needs the real Redis, RabbitMQ and PostgreSQL.
//!
//! `cargo bench -p hookrelay-scheduler --bench lateness` (env: `BENCH_SECONDS`, default 40;
//! `BENCH_RATE`, default 2000; `BENCH_PENDING`, default 100000; `BENCH_REPLICAS`, default 1).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use hookrelay_scheduler::{Options, Scheduler};
use hookrelay_shared::{jobs::DeliveryJob, redis_keys, retry_store::RetryEntry, testing::TestEnv};
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

type Dues = Arc<Mutex<HashMap<Uuid, OffsetDateTime>>>;

async fn add(
    con: &mut redis::aio::MultiplexedConnection,
    ns: &str,
    dues: &Dues,
    from: OffsetDateTime,
    n: u64,
    rate: u64,
) {
    let received = OffsetDateTime::now_utc();
    let entries: Vec<RetryEntry> = (0..n)
        .map(|i| RetryEntry {
            delivery_id: Uuid::now_v7(),
            event_received_at: received,
            attempt: 2,
            due: from + Duration::from_micros(i * 1_000_000 / rate),
        })
        .collect();
    if let Ok(mut d) = dues.lock() {
        for e in &entries {
            d.insert(e.delivery_id, e.due);
        }
    }
    for chunk in entries.chunks(1000) {
        hookrelay_shared::retry_store::schedule(con, ns, chunk)
            .await
            .expect("ZADD");
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let seconds = env_num("BENCH_SECONDS", 40);
    let rate = env_num("BENCH_RATE", 2000);
    let pending = env_num("BENCH_PENDING", 100_000);
    let replicas = env_num("BENCH_REPLICAS", 1);
    hookrelay_shared::telemetry::init(hookrelay_shared::config::LogFormat::Text);
    let env = TestEnv::new().await;
    let ns = env.config.namespace.clone();
    let mut con = redis::Client::open(env.config.redis_url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis is up");
    let dues: Dues = Arc::default();

    // Pending: `pending` entries coming due at `rate`/s from 5 s on; a feeder keeps adding
    // `rate`/s at the far end so the set stays at about `pending`.
    let start = OffsetDateTime::now_utc() + Duration::from_secs(5);
    add(&mut con, &ns, &dues, start, pending, rate).await;
    let loaded: i64 = redis::cmd("ZCARD")
        .arg(redis_keys::retries(&ns))
        .query_async(&mut con)
        .await
        .expect("ZCARD");
    let bytes: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(redis_keys::retries(&ns))
        .arg("SAMPLES")
        .arg(0)
        .query_async(&mut con)
        .await
        .expect("MEMORY USAGE");
    println!(
        "pending: {loaded}, sorted set: {bytes} bytes = {:.1} bytes per pending retry",
        bytes as f64 / loaded as f64
    );

    let stop = CancellationToken::new();
    let feeder = {
        let (mut con, ns, dues, stop) = (con.clone(), ns.clone(), dues.clone(), stop.clone());
        let span = Duration::from_micros(pending * 1_000_000 / rate);
        tokio::spawn(async move {
            let mut next = start + span;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while !stop.is_cancelled() {
                tick.tick().await;
                add(&mut con, &ns, &dues, next, rate, rate).await;
                next += Duration::from_secs(1);
            }
        })
    };

    let lateness: Arc<Mutex<Vec<(f64, f64)>>> = Arc::default();
    let ch = env.channel().await;
    ch.basic_qos(1000, BasicQosOptions::default()).await.expect("qos");
    let mut consumer = ch
        .basic_consume(
            env.names.deliveries_queue.as_str().into(),
            "bench".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .expect("consume");
    let measured = {
        let (lateness, dues, stop) = (lateness.clone(), dues.clone(), stop.clone());
        let end = start + Duration::from_secs(seconds);
        tokio::spawn(async move {
            while let Some(Ok(d)) = tokio::select! { m = consumer.next() => m, _ = stop.cancelled() => None }
            {
                let now = OffsetDateTime::now_utc();
                let Ok(job) = serde_json::from_slice::<DeliveryJob>(&d.data) else {
                    continue;
                };
                let due = dues.lock().ok().and_then(|m| m.get(&job.delivery_id).copied());
                if let Some(due) = due
                    && due < end
                    && let Ok(mut l) = lateness.lock()
                {
                    l.push(((due - start).as_seconds_f64(), (now - due).as_seconds_f64()));
                }
            }
        })
    };

    let mut runs = vec![];
    for _ in 0..replicas {
        let s = Scheduler::build(env.context(), Options::for_config(&env.config))
            .await
            .expect("scheduler");
        runs.push(tokio::spawn(s.run(stop.clone())));
    }
    tokio::time::sleep(Duration::from_secs(5 + seconds + 3)).await;
    stop.cancel();
    for r in runs {
        let _ = r.await;
    }
    let _ = feeder.await;
    let _ = measured.await;

    let all = lateness.lock().map(|l| l.clone()).unwrap_or_default();
    // Per 5 s of due time, to tell a start-up transient from a steady backlog.
    for w in 0..seconds.div_ceil(5) {
        let mut part: Vec<f64> = all
            .iter()
            .filter(|(at, _)| (*at / 5.0).floor() as u64 == w)
            .map(|(_, l)| *l)
            .collect();
        part.sort_by(|a, b| a.total_cmp(b));
        println!(
            "  due {:>3}-{:>3} s: n {:>6}, p50 {:.3} s, p99 {:.3} s",
            w * 5,
            w * 5 + 5,
            part.len(),
            pct(&part, 0.5),
            pct(&part, 0.99)
        );
    }
    let mut l: Vec<f64> = all.iter().map(|(_, l)| *l).collect();
    l.sort_by(|a, b| a.total_cmp(b));
    let expected = seconds * rate;
    println!(
        "fired and received: {} of {expected} due in {seconds} s at {rate}/s with ~{pending} pending, {replicas} replica(s)",
        l.len()
    );
    println!(
        "lateness (received on the jobs queue minus due): p50 {:.3} s, p99 {:.3} s, max {:.3} s",
        pct(&l, 0.5),
        pct(&l, 0.99),
        l.last().copied().unwrap_or(f64::NAN)
    );
    env.cleanup().await;
}
