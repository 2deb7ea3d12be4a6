//! The shared manual-retry operation queues a manual job for the right delivery.

use hookrelay_shared::{
    jobs::Trigger,
    manual_retry::{self, DeliveryRef, ManualRetry, Target},
    testing::TestEnv,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::helpers::*;

async fn insert_attempt(env: &TestEnv, delivery_id: Uuid, received_at: OffsetDateTime) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO attempts (id, delivery_id, event_id, event_received_at, webhook_id, event_type, category, \
           attempt, trigger, status, request_url, request_headers, response_code, duration_ms, attempted_at) \
         VALUES ($1, $2, 'evt_1', $3, gen_random_uuid(), 'license.assigned', 'license', 4, 'automatic', 'failed', \
           'http://example.test/', '{}'::jsonb, 500, 12, now())",
    )
    .bind(id)
    .bind(delivery_id)
    .bind(received_at)
    .execute(&env.db)
    .await
    .expect("attempt inserted");
    id
}

#[tokio::test]
async fn a_manual_retry_queues_the_next_attempt_by_attempt_or_delivery_id() {
    let env = TestEnv::new().await;
    let ch = env.channel().await;
    let received = OffsetDateTime::now_utc().replace_nanosecond(0).expect("valid");
    let delivery = insert_deliveries(&env, 1, "failed", 4, None, received).await[0];
    let attempt = insert_attempt(&env, delivery, received).await;

    for target in [
        Target::Attempt(attempt),
        Target::Either(attempt),
        Target::Delivery(delivery),
        Target::Either(delivery),
    ] {
        let out = manual_retry::retry(&env.db, &ch, &env.names, target)
            .await
            .expect("queued");
        assert_eq!(
            out,
            ManualRetry::Queued {
                delivery_id: delivery,
                attempt: 5
            },
            "{target:?}"
        );
    }
    let jobs = take_jobs(&env, &ch).await;
    assert_eq!(jobs.len(), 4);
    for j in &jobs {
        assert_eq!(
            (j.delivery_id, j.event_received_at, j.trigger, j.attempt),
            (delivery, received, Trigger::Manual, 5)
        );
    }

    for target in [
        Target::Attempt(delivery),
        Target::Delivery(attempt),
        Target::Either(Uuid::now_v7()),
    ] {
        let out = manual_retry::retry(&env.db, &ch, &env.names, target)
            .await
            .expect("looked up");
        assert_eq!(out, ManualRetry::NotFound, "{target:?}");
    }
    assert!(take_jobs(&env, &ch).await.is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn bulk_manual_retry_queues_one_job_per_delivery() {
    let env = TestEnv::new().await;
    let ch = env.channel().await;
    let now = OffsetDateTime::now_utc();
    insert_deliveries(&env, 1203, "failed", 4, None, now).await;
    let rows = sqlx::query_as::<_, DeliveryRef>(
        "SELECT id, event_received_at, attempt_count FROM deliveries WHERE state = 'failed'",
    )
    .fetch(&env.db);
    let queued = manual_retry::retry_many(rows, &ch, &env.names)
        .await
        .expect("queued");
    assert_eq!(queued, 1203);
    let jobs = take_jobs(&env, &ch).await;
    assert_eq!(jobs.len(), 1203);
    assert_no_duplicates(&jobs);
    assert!(
        jobs.iter()
            .all(|j| j.trigger == Trigger::Manual && j.attempt == 5)
    );
    env.cleanup().await;
}
