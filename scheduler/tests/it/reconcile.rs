//! Reconcile: PostgreSQL's waiting deliveries come back into Redis after a flush.

use std::time::Duration;

use hookrelay_scheduler::Scheduler;
use hookrelay_shared::{jobs::Trigger, testing::TestEnv};
use time::OffsetDateTime;

use crate::helpers::*;

#[tokio::test]
async fn reconcile_adds_exactly_the_waiting_deliveries() {
    let env = TestEnv::new().await;
    let now = OffsetDateTime::now_utc();
    let waiting = insert_deliveries(
        &env,
        400,
        "retrying",
        1,
        Some(now + Duration::from_secs(600)),
        now,
    )
    .await;
    let first = insert_deliveries(&env, 7, "pending", 0, Some(now + Duration::from_secs(600)), now).await;
    insert_deliveries(&env, 50, "succeeded", 1, None, now).await;
    insert_deliveries(&env, 50, "failed", 4, None, now).await;

    let mut s = Scheduler::build(env.context(), fast(&env)).await.expect("builds");
    let r = s.reconcile().await.expect("reconcile");
    assert_eq!((r.scanned, r.added), (407, 407));
    assert_eq!(zcard(&env).await, 407);
    let r = s.reconcile().await.expect("reconcile again");
    assert_eq!((r.scanned, r.added), (407, 0), "a second pass adds nothing");

    let mut con = redis(&env).await;
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(hookrelay_shared::redis_keys::retries(&env.config.namespace))
        .arg(0)
        .arg(-1)
        .query_async(&mut con)
        .await
        .expect("ZRANGE");
    for id in &waiting {
        assert!(
            members
                .iter()
                .any(|m| m.starts_with(&format!("{id}|")) && m.ends_with("|2"))
        );
    }
    for id in &first {
        assert!(
            members
                .iter()
                .any(|m| m.starts_with(&format!("{id}|")) && m.ends_with("|1"))
        );
    }
    env.cleanup().await;
}

#[tokio::test]
async fn after_redis_is_flushed_all_1000_pending_retries_still_fire_once() {
    let env = TestEnv::new().await;
    let ch = env.channel().await;
    let now = OffsetDateTime::now_utc();
    // Due over the next 2-4 s, so the flush lands while they are all pending.
    let mut ids = vec![];
    for i in 0..4u64 {
        ids.extend(
            insert_deliveries(
                &env,
                250,
                "retrying",
                2,
                Some(now + Duration::from_millis(2000 + i * 600)),
                now,
            )
            .await,
        );
    }
    let running = start(&env, fast(&env)).await;
    assert!(
        hookrelay_shared::testing::eventually(Duration::from_secs(10), || async {
            zcard(&env).await == 1000
        })
        .await,
        "the start-up reconcile loads the 1,000 retries"
    );
    flush_namespace(&env).await;
    assert_eq!(zcard(&env).await, 0, "Redis lost everything");

    let jobs = collect_jobs(&env, &ch, 1000, Duration::from_secs(30), Duration::from_secs(2)).await;
    running.stop().await;
    assert_no_duplicates(&jobs);
    assert_eq!(jobs.len(), 1000, "every pending retry fired");
    for j in &jobs {
        assert_eq!((j.attempt, j.trigger), (3, Trigger::Automatic));
        assert!(ids.contains(&j.delivery_id));
    }
    env.cleanup().await;
}

#[tokio::test]
async fn reconcile_does_not_refire_a_job_that_is_still_queued() {
    let env = TestEnv::new().await;
    let ch = env.channel().await;
    let now = OffsetDateTime::now_utc();
    insert_deliveries(&env, 10, "retrying", 1, Some(now - Duration::from_secs(1)), now).await;
    let mut s = Scheduler::build(env.context(), fast(&env)).await.expect("builds");
    assert_eq!(s.reconcile().await.expect("reconcile").added, 10);
    assert_eq!(s.fire_due().await.expect("round").fired, 10);
    // No dispatcher took the jobs, so PostgreSQL still says "due": reconcile must not re-add.
    assert_eq!(s.reconcile().await.expect("reconcile").added, 0);
    assert_eq!(s.fire_due().await.expect("round").claimed, 0);
    assert_eq!(take_jobs(&env, &ch).await.len(), 10);
    env.cleanup().await;
}

/// Inserts deliveries of one ordered webhook with the given `(seq, state, next_attempt_at)`;
/// their ids in the same order.
async fn ordered_deliveries(
    env: &TestEnv,
    webhook_id: uuid::Uuid,
    rows: &[(i64, &str, Option<OffsetDateTime>)],
) -> Vec<uuid::Uuid> {
    let received_at = OffsetDateTime::now_utc().replace_nanosecond(0).expect("valid");
    let mut ids = vec![];
    for (seq, state, next) in rows {
        let id = uuid::Uuid::now_v7();
        sqlx::query(
            "INSERT INTO deliveries (id, event_id, event_received_at, webhook_id, event_type, state,
                 attempt_count, next_attempt_at, seq)
             VALUES ($1, 'evt_' || $1::text, $2, $3, 'order.paid', $4, 0, $5, $6)",
        )
        .bind(id)
        .bind(received_at)
        .bind(webhook_id)
        .bind(*state)
        .bind(*next)
        .bind(*seq)
        .execute(&env.db)
        .await
        .expect("delivery");
        ids.push(id);
    }
    ids
}

async fn has_next(env: &TestEnv, id: uuid::Uuid) -> bool {
    sqlx::query_scalar("SELECT next_attempt_at IS NOT NULL FROM deliveries WHERE id = $1")
        .bind(id)
        .fetch_one(&env.db)
        .await
        .expect("delivery")
}

#[tokio::test]
async fn reconcile_promotes_the_stuck_head_of_an_ordered_webhook_and_only_that() {
    let env = TestEnv::new().await;
    let now = OffsetDateTime::now_utc();
    // Its head ended (succeeded) but nothing promoted the next: seq 2 is held with nothing
    // in flight, as after a replica that saw the webhook unordered recorded the head.
    let stuck = uuid::Uuid::now_v7();
    let s = ordered_deliveries(
        &env,
        stuck,
        &[(1, "succeeded", None), (2, "pending", None), (3, "pending", None)],
    )
    .await;
    // A healthy one: its head waits for a retry, the one behind it is held, as it should be.
    let healthy = uuid::Uuid::now_v7();
    let h = ordered_deliveries(
        &env,
        healthy,
        &[
            (1, "retrying", Some(now + Duration::from_secs(600))),
            (2, "pending", None),
        ],
    )
    .await;

    let mut sched = Scheduler::build(env.context(), fast(&env)).await.expect("builds");
    let r = sched.reconcile().await.expect("reconcile");
    assert_eq!(r.promoted, 1, "the stuck webhook's head, nothing else");
    assert_eq!(
        (r.scanned, r.added),
        (2, 2),
        "the promoted head and the healthy head"
    );
    assert!(has_next(&env, s[1]).await, "seq 2 is now the head, due at once");
    assert!(!has_next(&env, s[2]).await, "seq 3 still waits behind it");
    assert!(
        !has_next(&env, h[1]).await,
        "the healthy webhook's held delivery stays held"
    );
    let r = sched.reconcile().await.expect("reconcile again");
    assert_eq!((r.promoted, r.added), (0, 0), "a second pass changes nothing");
    env.cleanup().await;
}
