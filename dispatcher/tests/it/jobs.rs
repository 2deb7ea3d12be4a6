//! The jobs path: a manual job sends with trigger `manual`; a duplicated automatic job sends once.

use hookrelay_dispatcher::{Dispatcher, jobs};
use hookrelay_shared::{
    jobs::{DeliveryJob, Trigger, publish_job},
    testing::{Receiver, Reply, TestEnv},
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::helpers::*;

async fn received_at(env: &TestEnv, delivery_id: Uuid) -> OffsetDateTime {
    sqlx::query_scalar("SELECT event_received_at FROM deliveries WHERE id = $1")
        .bind(delivery_id)
        .fetch_one(&env.db)
        .await
        .expect("delivery")
}

/// A webhook whose endpoint fails its first `fails` requests, and the first (failed) attempt
/// of one event to it, made by a dispatcher that is stopped again.
async fn failed_once(env: &TestEnv, fails: usize, name: &str) -> (Receiver, Uuid, AttemptRow) {
    let rx = Receiver::start_failing_first(fails, Reply::status(500, "no")).await;
    let (hook, _) = webhook(env, name, &rx.url("/"), &["*"], true).await;
    let running = start(env).await;
    let ch = env.channel().await;
    env.publish_raw(&ch, "a.b", &event(&format!("evt_{name}"), "a.b"))
        .await;
    let first = wait_attempts(env, hook.id, 1).await[0].clone();
    running.shutdown().await;
    (rx, hook.id, first)
}

async fn due_now(env: &TestEnv, delivery_id: Uuid) {
    sqlx::query("UPDATE deliveries SET next_attempt_at = now() WHERE id = $1")
        .bind(delivery_id)
        .execute(&env.db)
        .await
        .expect("due now");
}

/// The namespace's retry-set key and a connection to it.
async fn retry_set(env: &TestEnv) -> (String, redis::aio::MultiplexedConnection) {
    let key = hookrelay_shared::redis_keys::retries(&env.config.namespace);
    let conn = redis::Client::open(env.config.redis_url.as_str())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    (key, conn)
}

async fn zscore(redis: &mut redis::aio::MultiplexedConnection, key: &str, member: &str) -> Option<f64> {
    redis::cmd("ZSCORE")
        .arg(key)
        .arg(member)
        .query_async(redis)
        .await
        .expect("ZSCORE")
}

/// Stops a dispatcher that was built only to step jobs (with its core, which it waits for).
async fn stop(dispatcher: Dispatcher, core: std::sync::Arc<hookrelay_dispatcher::Core>) {
    drop(core);
    let stop = tokio_util::sync::CancellationToken::new();
    stop.cancel();
    dispatcher.run(stop).await.expect("stops");
}

#[tokio::test]
async fn a_manual_job_from_the_queue_sends_at_once_with_trigger_manual() {
    let env = env_with(|_| {}).await;
    // Fails first, then succeeds.
    let rx = Receiver::start_failing_first(1, Reply::status(503, "down")).await;
    let (hook, _) = webhook(&env, "m", &rx.url("/"), &["*"], true).await;
    let running = start(&env).await;
    let ch = env.channel().await;
    env.publish_raw(&ch, "a.b", &event("evt_manual", "a.b")).await;
    let first = wait_attempts(&env, hook.id, 1).await[0].clone();
    assert_eq!(first.status, "failed");

    let job = DeliveryJob {
        delivery_id: first.delivery_id,
        event_received_at: received_at(&env, first.delivery_id).await,
        trigger: Trigger::Manual,
        attempt: 0,
    };
    publish_job(&ch, &env.names, &job).await.expect("job published");
    let got = wait_attempts(&env, hook.id, 2).await;
    let manual = &got[1];
    assert_eq!(
        (manual.trigger.as_str(), manual.attempt, manual.status.as_str()),
        ("manual", 2, "success")
    );
    assert_eq!(rx.received()[1].header("x-webhook-attempt"), Some("2"));
    let (state, count, has_next) = delivery_state(&env, first.delivery_id).await;
    assert_eq!(
        (state.as_str(), count, has_next),
        ("succeeded", 2, false),
        "a manual success cancels the retry"
    );

    running.shutdown().await;
    env.cleanup().await;
}

#[tokio::test]
async fn an_automatic_job_published_twice_sends_once() {
    let env = env_with(|_| {}).await;
    let (rx, hook_id, first) = failed_once(&env, 1, "auto").await;
    assert_eq!(delivery_state(&env, first.delivery_id).await.0, "retrying");

    // Make the retry due now, then run the same job twice at once, as two scheduler replicas might.
    due_now(&env, first.delivery_id).await;
    let dispatcher = Dispatcher::build(env.context()).await.expect("builds");
    let core = dispatcher.core().clone();
    let job = DeliveryJob {
        delivery_id: first.delivery_id,
        event_received_at: received_at(&env, first.delivery_id).await,
        trigger: Trigger::Automatic,
        attempt: 2,
    };
    let (a, b) = tokio::join!(jobs::run_job(&core, &job), jobs::run_job(&core, &job));
    let mut outcomes = vec![a.expect("job runs"), b.expect("job runs")];
    outcomes.sort_by_key(|o| matches!(o, jobs::Outcome::Skipped(_)));
    assert_eq!(outcomes[0], jobs::Outcome::Done);
    assert!(matches!(outcomes[1], jobs::Outcome::Skipped(_)), "{outcomes:?}");
    assert_eq!(rx.count(), 2, "the initial attempt and one retry");
    let got = attempts(&env, hook_id).await;
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[1].trigger.as_str(), got[1].attempt, got[1].status.as_str()),
        ("automatic", 2, "success")
    );
    // Once more, later: the delivery is finished, so the job is stale.
    assert!(matches!(
        jobs::run_job(&core, &job).await.expect("runs"),
        jobs::Outcome::Skipped(_)
    ));
    assert_eq!(rx.count(), 2);

    stop(dispatcher, core).await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_failed_manual_retry_uses_no_automatic_retry_and_leaves_the_schedule() {
    let env = env_with(|_| {}).await;
    let (_rx, hook_id, first) = failed_once(&env, 2, "budget").await;
    let next_before: Option<OffsetDateTime> =
        sqlx::query_scalar("SELECT next_attempt_at FROM deliveries WHERE id = $1")
            .bind(first.delivery_id)
            .fetch_one(&env.db)
            .await
            .expect("delivery");
    let dispatcher = Dispatcher::build(env.context()).await.expect("builds");
    let core = dispatcher.core().clone();
    let rat = received_at(&env, first.delivery_id).await;
    let manual = DeliveryJob {
        delivery_id: first.delivery_id,
        event_received_at: rat,
        trigger: Trigger::Manual,
        attempt: 0,
    };
    assert_eq!(
        jobs::run_job(&core, &manual).await.expect("runs"),
        jobs::Outcome::Done
    );
    let (state, count, _) = delivery_state(&env, first.delivery_id).await;
    let next_after: Option<OffsetDateTime> =
        sqlx::query_scalar("SELECT next_attempt_at FROM deliveries WHERE id = $1")
            .bind(first.delivery_id)
            .fetch_one(&env.db)
            .await
            .expect("delivery");
    assert_eq!(
        (state.as_str(), count),
        ("retrying", 1),
        "the manual failure used no retry"
    );
    assert_eq!(next_after, next_before, "nor moved the schedule");
    // The automatic retry, when due, still claims and sends as attempt 2.
    due_now(&env, first.delivery_id).await;
    let auto = DeliveryJob {
        delivery_id: first.delivery_id,
        event_received_at: rat,
        trigger: Trigger::Automatic,
        attempt: 2,
    };
    assert_eq!(
        jobs::run_job(&core, &auto).await.expect("runs"),
        jobs::Outcome::Done
    );
    let got = attempts(&env, hook_id).await;
    let summary: Vec<(String, String)> = got
        .iter()
        .map(|a| (a.trigger.clone(), a.status.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("initial".to_owned(), "failed".to_owned()),
            ("manual".to_owned(), "failed".to_owned()),
            ("automatic".to_owned(), "success".to_owned())
        ]
    );
    assert_eq!(delivery_state(&env, first.delivery_id).await.0, "succeeded");
    env.cleanup().await;
}

#[tokio::test]
async fn a_retry_made_takes_its_own_entry_out_of_the_retry_set() {
    let env = env_with(|_| {}).await;
    let (_rx, _hook_id, first) = failed_once(&env, 1, "tidy").await;
    let received = received_at(&env, first.delivery_id).await;
    let member = hookrelay_shared::retry_store::RetryEntry {
        delivery_id: first.delivery_id,
        event_received_at: received,
        attempt: 2,
        due: OffsetDateTime::now_utc(),
    }
    .member();
    let (key, mut redis) = retry_set(&env).await;
    // The recorder scheduled attempt 2. Its entry is what a reconcile re-adds while that
    // attempt is in flight (due when its lease ends), which would fire a stale job later.
    let score = zscore(&mut redis, &key, &member).await;
    assert!(score.is_some(), "the failed first attempt scheduled attempt 2");
    due_now(&env, first.delivery_id).await;

    let dispatcher = Dispatcher::build(env.context()).await.expect("builds");
    let core = dispatcher.core().clone();
    let job = DeliveryJob {
        delivery_id: first.delivery_id,
        event_received_at: received,
        trigger: Trigger::Automatic,
        attempt: 2,
    };
    assert_eq!(
        jobs::run_job(&core, &job).await.expect("job runs"),
        jobs::Outcome::Done
    );
    assert_eq!(delivery_state(&env, first.delivery_id).await.0, "succeeded");
    let score = zscore(&mut redis, &key, &member).await;
    assert_eq!(
        score, None,
        "the attempt made took its entry out of the retry set"
    );
    let left: i64 = redis::cmd("ZCARD")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .expect("ZCARD");
    assert_eq!(left, 0);

    stop(dispatcher, core).await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_first_attempt_that_fails_takes_a_reconcile_added_entry_of_itself_out() {
    let env = env_with(|_| {}).await;
    let rx = Receiver::start_with(|_| Reply {
        delay: std::time::Duration::from_millis(1_500),
        ..Reply::status(500, "slow and failing")
    })
    .await;
    let (hook, _) = webhook(&env, "slow", &rx.url("/"), &["*"], true).await;
    let running = start(&env).await;
    let ch = env.channel().await;
    env.publish_raw(&ch, "a.b", &event("evt_slow", "a.b")).await;
    // While attempt 1 is in flight, do what a reconcile does for a pending delivery: add
    // attempt 1, due when its lease ends.
    let mut found = None;
    for _ in 0..50 {
        found = sqlx::query_as::<_, (Uuid, OffsetDateTime, OffsetDateTime)>(
            "SELECT id, event_received_at, next_attempt_at FROM deliveries WHERE webhook_id = $1",
        )
        .bind(hook.id)
        .fetch_optional(&env.db)
        .await
        .expect("delivery");
        if found.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (delivery_id, received, lease_end) = found.expect("intake stored the delivery");
    let entry = |attempt| hookrelay_shared::retry_store::RetryEntry {
        delivery_id,
        event_received_at: received,
        attempt,
        due: lease_end,
    };
    let (key, mut redis) = retry_set(&env).await;
    hookrelay_shared::retry_store::schedule(&mut redis, &env.config.namespace, &[entry(1)])
        .await
        .expect("ZADD");
    assert!(
        attempts(&env, hook.id).await.is_empty(),
        "added while attempt 1 is still in flight"
    );
    wait_attempts(&env, hook.id, 1).await;
    running.shutdown().await;
    assert_eq!(
        zscore(&mut redis, &key, &entry(1).member()).await,
        None,
        "recording attempt 1 took its stale entry out"
    );
    assert!(
        zscore(&mut redis, &key, &entry(2).member()).await.is_some(),
        "and scheduled attempt 2"
    );
    env.cleanup().await;
}
