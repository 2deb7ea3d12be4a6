//! FIFO webhooks: a failing head holds the deliveries after it until it succeeds, or until it
//! exhausts its retries; switching the webhook to `none` releases the held ones.

use std::time::Duration;

use hookrelay_shared::{
    jobs::{DeliveryJob, Trigger, publish_job},
    ordering::Ordering,
    retry::RetryPolicySpec,
    testing::{Receiver, Reply, TestEnv, eventually},
    webhooks::{self, NewWebhook, Webhook, WebhookPatch},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::*;

async fn fifo_webhook(env: &TestEnv, url: &str, schedule: &str) -> Webhook {
    let policy: RetryPolicySpec =
        serde_json::from_value(serde_json::json!({ "schedule": schedule.split(',').collect::<Vec<_>>() }))
            .expect("policy");
    webhooks::create(
        &env.db,
        NewWebhook {
            name: "fifo".into(),
            url: url.into(),
            event_types: vec!["order.*".into()],
            enabled: true,
            retry_policy: Some(policy),
            ordering: Some(Ordering::Fifo),
            ..Default::default()
        },
    )
    .await
    .expect("webhook created")
    .0
}

/// The scheduler's part, for a test without one: publishes a job for every due retry of the
/// webhook every 100 ms (a duplicate job fails its claim and sends nothing).
fn fire_retries(env: &TestEnv, webhook_id: Uuid) -> CancellationToken {
    let stop = CancellationToken::new();
    let (db, names, amqp_url, s) = (
        env.db.clone(),
        env.names.clone(),
        env.config.amqp_url.clone(),
        stop.clone(),
    );
    tokio::spawn(async move {
        let conn = hookrelay_shared::amqp::connect(&amqp_url, "test-fire")
            .await
            .expect("RabbitMQ");
        let ch = hookrelay_shared::amqp::confirm_channel(&conn)
            .await
            .expect("channel");
        while !s.is_cancelled() {
            let due: Vec<(Uuid, time::OffsetDateTime, i32)> = sqlx::query_as(
                "SELECT id, event_received_at, attempt_count FROM deliveries
                 WHERE webhook_id = $1 AND state = 'retrying' AND next_attempt_at <= now()",
            )
            .bind(webhook_id)
            .fetch_all(&db)
            .await
            .unwrap_or_default();
            for (delivery_id, event_received_at, count) in due {
                let job = DeliveryJob {
                    delivery_id,
                    event_received_at,
                    trigger: Trigger::Automatic,
                    attempt: count + 1,
                };
                let _ = publish_job(&ch, &names, &job).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    stop
}

/// The webhook's event ids in the order they were accepted (their sequence numbers).
async fn accepted_order(env: &TestEnv, webhook_id: Uuid) -> Vec<String> {
    sqlx::query_scalar("SELECT event_id FROM deliveries WHERE webhook_id = $1 ORDER BY seq")
        .bind(webhook_id)
        .fetch_all(&env.db)
        .await
        .expect("deliveries")
}

async fn delivery_of(env: &TestEnv, event_id: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM deliveries WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(&env.db)
        .await
        .expect("delivery")
}

fn arrivals(rx: &Receiver) -> Vec<String> {
    rx.received()
        .iter()
        .map(|r| r.header("webhook-id").unwrap_or_default().to_owned())
        .collect()
}

async fn publish_three(env: &TestEnv) {
    let ch = env.channel().await;
    for i in 0..3 {
        env.publish_raw(&ch, "order.paid", &event(&format!("evt_fifo_{i}"), "order.paid"))
            .await;
    }
}

#[tokio::test]
async fn a_failing_head_holds_the_next_deliveries_until_it_succeeds() {
    let env = env_with(|_| {}).await;
    // The first two requests fail: the head is tried three times before the others go.
    let rx = Receiver::start_failing_first(2, Reply::status(500, "no")).await;
    let hook = fifo_webhook(&env, &rx.url("/"), "1s,1s,1s").await;
    let running = start(&env).await;
    let fire = fire_retries(&env, hook.id);
    publish_three(&env).await;

    let first = wait_attempts(&env, hook.id, 1).await;
    assert!(
        eventually(WAIT, || async { accepted_order(&env, hook.id).await.len() == 3 }).await,
        "all three are stored"
    );
    let order = accepted_order(&env, hook.id).await;
    assert_eq!(first[0].event_id, order[0], "the first accepted is the head");
    for held in &order[1..] {
        let (state, count, has_next) = delivery_state(&env, delivery_of(&env, held).await).await;
        assert_eq!(
            (state.as_str(), count, has_next),
            ("pending", 0, false),
            "{held} is held in PostgreSQL behind the failing head"
        );
    }
    assert!(rx.wait_for(5, WAIT).await, "got {:?}", arrivals(&rx));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (h, a, b) = (order[0].clone(), order[1].clone(), order[2].clone());
    assert_eq!(
        arrivals(&rx),
        vec![h.clone(), h.clone(), h, a, b],
        "the head three times, then the others in order"
    );
    let states = wait_attempts(&env, hook.id, 5).await;
    assert!(states.iter().all(|s| s.trigger != "manual"));
    fire.cancel();
    running.shutdown().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_head_that_exhausts_its_retries_lets_the_next_one_go() {
    let env = env_with(|_| {}).await;
    // One retry: the head fails twice and ends failed; the others then succeed.
    let rx = Receiver::start_failing_first(2, Reply::status(500, "no")).await;
    let hook = fifo_webhook(&env, &rx.url("/"), "300ms").await;
    let running = start(&env).await;
    let fire = fire_retries(&env, hook.id);
    publish_three(&env).await;

    assert!(rx.wait_for(4, WAIT).await, "got {:?}", arrivals(&rx));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let order = accepted_order(&env, hook.id).await;
    let (h, a, b) = (order[0].clone(), order[1].clone(), order[2].clone());
    assert_eq!(arrivals(&rx), vec![h.clone(), h.clone(), a, b.clone()]);
    let (state, count, _) = delivery_state(&env, delivery_of(&env, &h).await).await;
    assert_eq!(
        (state.as_str(), count),
        ("failed", 2),
        "the head ran out of retries"
    );
    let last = delivery_of(&env, &b).await;
    assert!(
        eventually(WAIT, || async {
            delivery_state(&env, last).await.0 == "succeeded"
        })
        .await
    );
    fire.cancel();
    running.shutdown().await;
    env.cleanup().await;
}

#[tokio::test]
async fn switching_to_none_releases_the_held_deliveries() {
    let env = env_with(|_| {}).await;
    // The head fails and waits an hour for its retry; the others are held behind it.
    let rx = Receiver::start_failing_first(1, Reply::status(500, "no")).await;
    let hook = fifo_webhook(&env, &rx.url("/"), "1h").await;
    let running = start(&env).await;
    publish_three(&env).await;
    wait_attempts(&env, hook.id, 1).await;
    assert!(eventually(WAIT, || async { accepted_order(&env, hook.id).await.len() == 3 }).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.count(), 1, "the others are held");

    let updated = webhooks::update_full(
        &env.db,
        hook.id,
        WebhookPatch {
            ordering: Some(Ordering::None),
            ..Default::default()
        },
    )
    .await
    .expect("update")
    .expect("exists");
    assert_eq!(updated.webhook.ordering, Ordering::None);
    assert_eq!(updated.released.len(), 2, "the two held deliveries are released");
    // What the scheduler does with them: each is due now, as a first attempt.
    let ch = env.channel().await;
    for e in &updated.released {
        let job = DeliveryJob {
            delivery_id: e.delivery_id,
            event_received_at: e.event_received_at,
            trigger: Trigger::Initial,
            attempt: e.attempt,
        };
        publish_job(&ch, &env.names, &job).await.expect("job");
    }
    assert!(rx.wait_for(3, WAIT).await, "got {:?}", arrivals(&rx));
    let order = accepted_order(&env, hook.id).await;
    let (state, _, has_next) = delivery_state(&env, delivery_of(&env, &order[0]).await).await;
    assert_eq!(
        (state.as_str(), has_next),
        ("retrying", true),
        "the head keeps its own retry"
    );
    running.shutdown().await;
    env.cleanup().await;
}
