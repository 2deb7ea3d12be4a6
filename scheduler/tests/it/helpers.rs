//! Helpers: a scheduler with short periods, jobs read off `{ns}.deliveries`, waiting
//! deliveries inserted straight into PostgreSQL, and the namespace's Redis keys.
#![allow(dead_code)] // each test module uses a different subset

use std::time::Duration;

use hookrelay_scheduler::{Options, Scheduler};
use hookrelay_shared::{jobs::DeliveryJob, redis_keys, retry_store::RetryEntry, testing::TestEnv};
use redis::aio::MultiplexedConnection;
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Options with periods short enough for tests.
pub fn fast(env: &TestEnv) -> Options {
    Options {
        poll_every: Duration::from_millis(20),
        claim_batch: 100,
        claim_lease: Duration::from_secs(1),
        reconcile_every: Duration::from_millis(500),
        reconcile_batch: 150,
        ..Options::for_config(&env.config)
    }
}

/// A running scheduler replica.
pub struct Running {
    pub stop: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn stop(self) {
        self.stop.cancel();
        self.task
            .await
            .expect("scheduler task joins")
            .expect("scheduler stops cleanly");
    }
}

pub async fn start(env: &TestEnv, opts: Options) -> Running {
    let scheduler = Scheduler::build(env.context(), opts)
        .await
        .expect("scheduler builds");
    let stop = CancellationToken::new();
    let task = tokio::spawn(scheduler.run(stop.clone()));
    Running { stop, task }
}

pub async fn redis(env: &TestEnv) -> MultiplexedConnection {
    redis::Client::open(env.config.redis_url.as_str())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis is up")
}

/// Deletes every Redis key of the namespace (the test's FLUSHALL: Redis is shared).
pub async fn flush_namespace(env: &TestEnv) {
    let mut con = redis(env).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{}}}:*", env.config.namespace))
        .query_async(&mut con)
        .await
        .expect("KEYS");
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut con)
            .await
            .expect("DEL");
    }
}

pub async fn zcard(env: &TestEnv) -> i64 {
    redis::cmd("ZCARD")
        .arg(redis_keys::retries(&env.config.namespace))
        .query_async(&mut redis(env).await)
        .await
        .expect("ZCARD")
}

/// Every member of the retry set with its score (Unix ms), for failure messages.
pub async fn retry_set(env: &TestEnv) -> Vec<(String, i64)> {
    redis::cmd("ZRANGE")
        .arg(redis_keys::retries(&env.config.namespace))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut redis(env).await)
        .await
        .expect("ZRANGE")
}

pub async fn schedule(env: &TestEnv, entries: &[RetryEntry]) {
    for chunk in entries.chunks(500) {
        hookrelay_shared::retry_store::schedule(&mut redis(env).await, &env.config.namespace, chunk)
            .await
            .expect("ZADD");
    }
}

/// `n` entries due at `due` for made-up deliveries.
pub fn entries(n: usize, attempt: i32, due: OffsetDateTime) -> Vec<RetryEntry> {
    let received = OffsetDateTime::now_utc().replace_nanosecond(0).expect("valid");
    (0..n)
        .map(|_| RetryEntry {
            delivery_id: Uuid::now_v7(),
            event_received_at: received,
            attempt,
            due,
        })
        .collect()
}

/// Takes every job now on `{ns}.deliveries`.
pub async fn take_jobs(env: &TestEnv, channel: &lapin::Channel) -> Vec<DeliveryJob> {
    env.take_jobs(channel).await
}

/// Collects jobs until `n` arrived or `timeout` passed, then keeps reading for `settle` to
/// catch any extra (duplicate) job.
pub async fn collect_jobs(
    env: &TestEnv,
    channel: &lapin::Channel,
    n: usize,
    timeout: Duration,
    settle: Duration,
) -> Vec<DeliveryJob> {
    let mut jobs = vec![];
    let deadline = tokio::time::Instant::now() + timeout;
    while jobs.len() < n && tokio::time::Instant::now() < deadline {
        jobs.extend(take_jobs(env, channel).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(settle).await;
    jobs.extend(take_jobs(env, channel).await);
    jobs
}

/// Inserts `n` deliveries in state `state` (attempt_count `attempts`, due at `due`) received
/// at `received_at`; returns their ids.
pub async fn insert_deliveries(
    env: &TestEnv,
    n: i64,
    state: &str,
    attempts: i32,
    due: Option<OffsetDateTime>,
    received_at: OffsetDateTime,
) -> Vec<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO deliveries (id, event_id, event_received_at, webhook_id, event_type, state, attempt_count, next_attempt_at) \
         SELECT gen_random_uuid(), 'evt_' || gen_random_uuid(), $1, gen_random_uuid(), 'license.assigned', $2, $3, $4 \
         FROM generate_series(1, $5) RETURNING id",
    )
    .bind(received_at)
    .bind(state)
    .bind(attempts)
    .bind(due)
    .bind(n)
    .fetch_all(&env.db)
    .await
    .expect("deliveries inserted")
}

/// Panics with the duplicated ids if any delivery got more than one job.
pub fn assert_no_duplicates(jobs: &[DeliveryJob]) {
    let mut seen = std::collections::HashMap::new();
    for j in jobs {
        *seen.entry((j.delivery_id, j.attempt)).or_insert(0) += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        dups.is_empty(),
        "{} retries fired more than once: {:?}",
        dups.len(),
        &dups[..dups.len().min(5)]
    );
}
