//! End-to-end tests: the scheduler as real `hookrelay scheduler` processes. Jobs are read off
//! `{ns}.deliveries` directly (no dispatcher), so what is counted is exactly what the
//! schedulers fired.

use std::{collections::HashMap, time::Duration};

use hookrelay_shared::{jobs::DeliveryJob, redis_keys, testing::TestEnv};
use lapin::options::BasicGetOptions;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::support;

/// Inserts `n` retrying deliveries (attempt 2 next), due `due_in` from now.
async fn waiting(env: &TestEnv, n: i64, due_in: Duration) -> Vec<Uuid> {
    let now = OffsetDateTime::now_utc();
    sqlx::query_scalar(
        "INSERT INTO deliveries (id, event_id, event_received_at, webhook_id, event_type, state, attempt_count, next_attempt_at) \
         SELECT gen_random_uuid(), 'evt_' || gen_random_uuid(), $1, gen_random_uuid(), 'license.assigned', 'retrying', 1, $2 \
         FROM generate_series(1, $3) RETURNING id",
    )
    .bind(now)
    .bind(now + due_in)
    .bind(n)
    .fetch_all(&env.db)
    .await
    .expect("deliveries inserted")
}

async fn take_jobs(env: &TestEnv, ch: &lapin::Channel, into: &mut Vec<DeliveryJob>) {
    into.extend(env.take_jobs(ch).await);
}

/// Reads jobs until every id in `ids` has one (or `timeout`), then `settle` longer.
async fn jobs_for(
    env: &TestEnv,
    ch: &lapin::Channel,
    ids: &[Uuid],
    timeout: Duration,
    settle: Duration,
    seen: Vec<DeliveryJob>,
) -> HashMap<Uuid, usize> {
    let mut jobs = seen;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        take_jobs(env, ch, &mut jobs).await;
        let distinct: std::collections::HashSet<_> = jobs.iter().map(|j| j.delivery_id).collect();
        if distinct.len() >= ids.len() || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(settle).await;
    take_jobs(env, ch, &mut jobs).await;
    let mut counts = HashMap::new();
    for j in jobs {
        assert_eq!(j.attempt, 2);
        *counts.entry(j.delivery_id).or_insert(0) += 1;
    }
    counts
}

async fn zcard(env: &TestEnv) -> i64 {
    let mut con = redis::Client::open(env.config.redis_url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis is up");
    redis::cmd("ZCARD")
        .arg(redis_keys::retries(&env.config.namespace))
        .query_async(&mut con)
        .await
        .expect("ZCARD")
}

#[tokio::test]
async fn two_scheduler_processes_fire_each_retry_once() {
    let env = TestEnv::new().await;
    let ch = env.channel().await;
    let mut ids = waiting(&env, 1000, Duration::from_secs(3)).await;
    ids.extend(waiting(&env, 1000, Duration::from_secs(5)).await);
    let mut a = support::spawn(&env.config, &["scheduler"]);
    let mut b = support::spawn(&env.config, &["scheduler"]);
    let counts = jobs_for(
        &env,
        &ch,
        &ids,
        Duration::from_secs(40),
        Duration::from_secs(3),
        vec![],
    )
    .await;
    let _ = a.kill();
    let _ = b.kill();
    let _ = a.wait();
    let _ = b.wait();
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{} retries fired twice", twice.len());
    assert_eq!(counts.len(), ids.len(), "every retry fired");
    env.cleanup().await;
}

#[tokio::test]
async fn a_scheduler_killed_mid_claim_and_restarted_loses_nothing() {
    let env = TestEnv::new().await;
    let ch = env.channel().await;
    // 20,000 retries due in 2 s: firing them takes many rounds, so the kill lands mid-stream.
    let ids = waiting(&env, 20_000, Duration::from_secs(2)).await;
    let mut first = support::spawn(&env.config, &["scheduler"]);
    let mut jobs = vec![];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // One message is enough to know firing started; draining the queue here would let the
    // scheduler finish before the kill.
    while jobs.is_empty() && tokio::time::Instant::now() < deadline {
        if let Some(msg) = ch
            .basic_get(
                env.names.deliveries_queue.as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .expect("basic.get")
        {
            jobs.push(serde_json::from_slice(&msg.delivery.data).expect("a delivery job"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!jobs.is_empty(), "the first scheduler started firing");
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    let left = zcard(&env).await;
    assert!(left > 0, "the kill landed before everything fired (left {left})");

    let mut second = support::spawn(&env.config, &["scheduler"]);
    let counts = jobs_for(
        &env,
        &ch,
        &ids,
        Duration::from_secs(60),
        Duration::from_secs(2),
        jobs,
    )
    .await;
    let _ = second.kill();
    let _ = second.wait();
    let missing = ids.iter().filter(|id| !counts.contains_key(id)).count();
    assert_eq!(missing, 0, "no retry lost");
    // At-least-once toward RabbitMQ: only what the killed process had claimed and published
    // but not yet acknowledged may repeat (the dispatcher's claim drops those); bounded by
    // the batches in flight.
    let repeated = counts.values().filter(|n| **n > 1).count();
    assert!(
        repeated <= 2000,
        "{repeated} repeated jobs, more than the batches in flight (4 x 500)"
    );
    assert_eq!(zcard(&env).await, 0);
    env.cleanup().await;
}
