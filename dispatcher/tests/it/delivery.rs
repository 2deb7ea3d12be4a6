//! An event reaches every matching webhook exactly once, signed; duplicates are dropped.

use hookrelay_shared::{signature, testing::Receiver, testing::eventually};

use crate::helpers::*;

#[tokio::test]
async fn an_event_reaches_every_matching_webhook_exactly_once_with_a_valid_signature() {
    let env = env_with(|_| {}).await;
    let exact = Receiver::start().await;
    let category = Receiver::start().await;
    let star = Receiver::start().await;
    let other = Receiver::start().await;
    let disabled = Receiver::start().await;
    let (h_exact, s_exact) = webhook(&env, "exact", &exact.url("/e"), &["license.assigned"], true).await;
    let (h_cat, s_cat) = webhook(&env, "category", &category.url("/c"), &["license.*"], true).await;
    let (h_star, s_star) = webhook(&env, "star", &star.url("/s"), &["*"], true).await;
    let (h_other, _) = webhook(
        &env,
        "other",
        &other.url("/o"),
        &["license.revoked", "product.*"],
        true,
    )
    .await;
    let (h_off, _) = webhook(&env, "disabled", &disabled.url("/d"), &["*"], false).await;
    let running = start(&env).await;
    let ch = env.channel().await;

    env.publish_raw(&ch, "license.assigned", &event("evt_one", "license.assigned"))
        .await;
    for h in [&h_exact, &h_cat, &h_star] {
        wait_attempts(&env, h.id, 1).await;
    }
    let stored: String = sqlx::query_scalar("SELECT body FROM events WHERE id = 'evt_one'")
        .fetch_one(&env.db)
        .await
        .expect("event stored");
    for (rx, secret) in [(&exact, &s_exact), (&category, &s_cat), (&star, &s_star)] {
        let got = rx.received();
        assert_eq!(got.len(), 1, "exactly one request per matching webhook");
        let r = &got[0];
        assert_eq!(r.body.as_ref(), stored.as_bytes(), "the stored bytes are sent");
        assert_eq!(r.header("webhook-id"), Some("evt_one"));
        assert_eq!(r.header("x-webhook-event"), Some("license.assigned"));
        assert_eq!(r.header("x-webhook-attempt"), Some("1"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(
            r.header("user-agent")
                .is_some_and(|u| u.starts_with("hookrelay/"))
        );
        let sig = r.header("webhook-signature").expect("signature");
        assert_eq!(r.header("x-webhook-signature"), Some(sig));
        assert!(r.signed_with(secret), "signature verifies");
        assert!(!r.signed_with(&signature::Secret::generate()));
    }
    for h in [&h_exact, &h_cat, &h_star] {
        let a = attempts(&env, h.id).await;
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].status.as_str(), a[0].response_code, a[0].trigger.as_str()),
            ("success", Some(200), "initial")
        );
        assert_eq!(
            delivery_state(&env, a[0].delivery_id).await,
            ("succeeded".into(), 1, false)
        );
        assert!(
            a[0].request_headers["webhook-signature"]
                .as_str()
                .is_some_and(|s| s.starts_with("v1,"))
        );
    }

    // A second event of another category reaches only `*` and `product.*`.
    env.publish_raw(&ch, "product.created", &event("evt_two", "product.created"))
        .await;
    wait_attempts(&env, h_star.id, 2).await;
    wait_attempts(&env, h_other.id, 1).await;
    assert_eq!(
        exact.count() + category.count(),
        2,
        "license-only webhooks got nothing more"
    );
    assert_eq!(disabled.count(), 0, "a disabled webhook gets nothing");
    assert_eq!(delivery_count(&env, h_off.id).await, 0);
    assert_eq!(delivery_count(&env, h_exact.id).await, 1);

    running.shutdown().await;
    env.cleanup().await;
}

#[tokio::test]
async fn the_same_event_id_twice_yields_one_set_of_deliveries() {
    let env = env_with(|_| {}).await;
    let rx = Receiver::start().await;
    let (hook, _) = webhook(&env, "a", &rx.url("/a"), &["*"], true).await;
    let (hook_b, _) = webhook(&env, "b", &rx.url("/b"), &["order.*"], true).await;
    let running = start(&env).await;
    let ch = env.channel().await;

    // Twice in one go (likely one batch), then again after it was delivered (another batch).
    env.publish_raw(&ch, "order.paid", &event("evt_dup", "order.paid"))
        .await;
    env.publish_raw(&ch, "order.paid", &event("evt_dup", "order.paid"))
        .await;
    wait_attempts(&env, hook.id, 1).await;
    env.publish_raw(&ch, "order.paid", &event("evt_dup", "order.paid"))
        .await;
    env.publish_raw(&ch, "order.paid", &event("evt_other", "order.paid"))
        .await;
    let ok = eventually(WAIT, || async {
        metric(&env, "hookrelay_events_consumed_total{outcome=\"duplicate\"}") >= 2.0
            && metric(&env, "hookrelay_events_consumed_total{outcome=\"accepted\"}") >= 2.0
    })
    .await;
    assert!(
        ok,
        "both duplicates and the other event were consumed:\n{}",
        env.metrics.render()
    );
    wait_attempts(&env, hook.id, 2).await;
    wait_attempts(&env, hook_b.id, 2).await;
    assert_eq!(
        delivery_count(&env, hook.id).await,
        2,
        "one delivery per distinct event id"
    );
    assert_eq!(delivery_count(&env, hook_b.id).await, 2);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE id = 'evt_dup'")
        .fetch_one(&env.db)
        .await
        .expect("count");
    assert_eq!(events, 1);
    assert!(rx.wait_for(4, WAIT).await);
    let dup_requests = rx
        .received()
        .iter()
        .filter(|r| r.header("webhook-id") == Some("evt_dup"))
        .count();
    assert_eq!(
        dup_requests, 2,
        "evt_dup was sent once to each of the two webhooks"
    );

    running.shutdown().await;
    env.cleanup().await;
}

#[tokio::test]
async fn an_event_larger_than_a_frame_is_stored_and_sent_byte_for_byte() {
    let env = env_with(|_| {}).await;
    let rx = Receiver::start().await;
    let (hook, secret) = webhook(&env, "big", &rx.url("/big"), &["*"], true).await;
    let running = start(&env).await;
    // The connection asks for amqp::FRAME_MAX, so this event travels as several frames.
    let conn = hookrelay_shared::amqp::connect(&env.config.amqp_url, "test")
        .await
        .expect("RabbitMQ");
    assert_eq!(
        conn.configuration().frame_max(),
        hookrelay_shared::amqp::FRAME_MAX
    );
    let filler: String = (0..200_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let body =
        serde_json::json!({"id": "evt_big", "type": "order.paid", "data": {"filler": filler}}).to_string();
    assert!(body.len() > 6 * hookrelay_shared::amqp::FRAME_MAX as usize);
    assert!(body.len() < env.config.max_event_bytes);
    let ch = env.channel().await;
    env.publish_raw(&ch, "order.paid", body.as_bytes()).await;
    wait_attempts(&env, hook.id, 1).await;
    let got = rx.received();
    assert_eq!(got.len(), 1);
    let sent: serde_json::Value = serde_json::from_slice(&got[0].body).expect("JSON sent");
    assert_eq!(
        sent["data"]["filler"].as_str(),
        Some(filler.as_str()),
        "the payload arrives whole"
    );
    assert!(
        got[0].signed_with(&secret),
        "signature verifies over the whole payload"
    );
    let a = attempts(&env, hook.id).await;
    assert_eq!((a[0].status.as_str(), a[0].response_code), ("success", Some(200)));
    running.shutdown().await;
    env.cleanup().await;
}
