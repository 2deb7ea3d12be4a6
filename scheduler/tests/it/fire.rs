//! Firing: due entries become jobs once, leases survive crashes, replicas don't double-fire.

use std::time::Duration;

use hookrelay_scheduler::Scheduler;
use hookrelay_shared::{jobs::Trigger, redis_keys, testing::TestEnv};
use time::OffsetDateTime;

use crate::helpers::*;

#[tokio::test]
async fn a_due_retry_becomes_one_job_and_leaves_the_set() {
    let env = TestEnv::new().await;
    let ch = env.channel().await;
    let now = OffsetDateTime::now_utc();
    let mut due = entries(3, 2, now - Duration::from_millis(10));
    due.extend(entries(1, 1, now - Duration::from_millis(10)));
    let later = entries(2, 3, now + Duration::from_secs(3600));
    schedule(&env, &due).await;
    schedule(&env, &later).await;

    let mut s = Scheduler::build(env.context(), fast(&env)).await.expect("builds");
    let round = s.fire_due().await.expect("round");
    assert_eq!((round.claimed, round.fired, round.failed), (4, 4, 0));
    assert_eq!(
        s.refresh_pending().await.expect("zcard"),
        2,
        "only the future entries stay"
    );
    assert!(env.metrics.render().contains("hookrelay_retries_pending 2"));

    let jobs = collect_jobs(&env, &ch, 4, Duration::from_secs(5), Duration::ZERO).await;
    assert_eq!(jobs.len(), 4);
    for e in &due {
        let job = jobs
            .iter()
            .find(|j| j.delivery_id == e.delivery_id)
            .expect("job for each due entry");
        assert_eq!(job.attempt, e.attempt);
        assert_eq!(job.event_received_at, e.event_received_at);
        assert_eq!(
            job.trigger,
            if e.attempt == 1 {
                Trigger::Initial
            } else {
                Trigger::Automatic
            }
        );
    }
    let round = s.fire_due().await.expect("round");
    assert_eq!(round.claimed, 0, "nothing more is due");
    assert!(
        env.metrics
            .render()
            .contains("hookrelay_retry_lateness_seconds_count 4")
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_claim_whose_replica_died_fires_after_the_lease() {
    let env = TestEnv::new().await;
    let ch = env.channel().await;
    let e = entries(5, 2, OffsetDateTime::now_utc() - Duration::from_millis(10));
    schedule(&env, &e).await;
    // A replica claims with a 1 s lease and then "crashes" before publishing.
    let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let claimed: Vec<String> = redis::Script::new(
        "local d = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100) \
         for _, m in ipairs(d) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], m) end return d",
    )
    .key(redis_keys::retries(&env.config.namespace))
    .arg(now_ms)
    .arg(now_ms + 1000)
    .invoke_async(&mut redis(&env).await)
    .await
    .expect("claim");
    assert_eq!(claimed.len(), 5);

    let mut s = Scheduler::build(env.context(), fast(&env)).await.expect("builds");
    assert_eq!(
        s.fire_due().await.expect("round").claimed,
        0,
        "leased entries are not due"
    );
    let running = start(&env, fast(&env)).await;
    let jobs = collect_jobs(&env, &ch, 5, Duration::from_secs(10), Duration::from_millis(1500)).await;
    running.stop().await;
    assert_eq!(jobs.len(), 5, "every claimed retry fires once its lease ran out");
    assert_no_duplicates(&jobs);
    assert_eq!(zcard(&env).await, 0);
    env.cleanup().await;
}

#[tokio::test]
async fn two_replicas_never_fire_the_same_retry_twice() {
    let env = TestEnv::new().await;
    let ch = env.channel().await;
    // Spread over two seconds so both replicas are polling while entries come due.
    let now = OffsetDateTime::now_utc();
    let mut all = vec![];
    for i in 0..20u64 {
        all.extend(entries(100, 2, now + Duration::from_millis(500 + i * 100)));
    }
    schedule(&env, &all).await;
    let a = start(&env, fast(&env)).await;
    let b = start(&env, fast(&env)).await;
    let jobs = collect_jobs(&env, &ch, 2000, Duration::from_secs(30), Duration::from_secs(2)).await;
    a.stop().await;
    b.stop().await;
    assert_no_duplicates(&jobs);
    assert_eq!(jobs.len(), 2000, "every retry fired exactly once");
    assert_eq!(zcard(&env).await, 0);
    env.cleanup().await;
}

#[tokio::test]
async fn a_malformed_member_is_removed_rather_than_looping() {
    let env = TestEnv::new().await;
    let _: () = redis::cmd("ZADD")
        .arg(redis_keys::retries(&env.config.namespace))
        .arg(1)
        .arg("not-a-retry")
        .query_async(&mut redis(&env).await)
        .await
        .expect("ZADD");
    let mut s = Scheduler::build(env.context(), fast(&env)).await.expect("builds");
    let round = s.fire_due().await.expect("round");
    assert_eq!((round.claimed, round.fired), (1, 0));
    assert_eq!(zcard(&env).await, 0);
    env.cleanup().await;
}
