//! Success, HTTP 500, connection refused, timeout and redirect are each recorded correctly.

use std::time::Duration;

use hookrelay_shared::{
    duration::HumanDuration,
    redis_keys,
    testing::{Receiver, Reply},
};

use crate::helpers::*;

#[tokio::test]
async fn every_kind_of_outcome_is_recorded_with_its_code_or_a_clear_error() {
    let env = env_with(|c| c.request_timeout = HumanDuration(Duration::from_secs(1))).await;
    let ok = Receiver::start().await;
    let broken = Receiver::start_with(|_| Reply::status(500, "boom: database down")).await;
    let slow = Receiver::start_with(|_| Reply::sleep(Duration::from_secs(3))).await;
    let moved =
        Receiver::start_with(|_| Reply::status(302, "").header("location", "https://elsewhere.example/x"))
            .await;
    let big = Receiver::start_with(|_| Reply::status(200, &"x".repeat(100 * 1024))).await;
    // A port with nothing listening: bind, note it, close.
    let refused_url = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        format!("http://{}/hook", l.local_addr().expect("addr"))
    };
    let t = "invoice.created";
    let (h_ok, _) = webhook(&env, "ok", &ok.url("/"), &[t], true).await;
    let (h_500, _) = webhook(&env, "500", &broken.url("/"), &[t], true).await;
    let (h_slow, _) = webhook(&env, "slow", &slow.url("/"), &[t], true).await;
    let (h_302, _) = webhook(&env, "302", &moved.url("/"), &[t], true).await;
    let (h_big, _) = webhook(&env, "big", &big.url("/"), &[t], true).await;
    let (h_refused, _) = webhook(&env, "refused", &refused_url, &[t], true).await;
    let running = start(&env).await;
    let ch = env.channel().await;
    env.publish_raw(&ch, t, &event("evt_outcomes", t)).await;

    let a = &wait_attempts(&env, h_ok.id, 1).await[0];
    assert_eq!(
        (a.status.as_str(), a.response_code, a.error.as_deref()),
        ("success", Some(200), None)
    );
    assert_eq!(a.request_url, ok.url("/"));

    let a = &wait_attempts(&env, h_500.id, 1).await[0];
    assert_eq!((a.status.as_str(), a.response_code), ("failed", Some(500)));
    assert_eq!(
        a.response_body.as_deref(),
        Some("boom: database down"),
        "the body is kept"
    );
    let (state, count, has_next) = delivery_state(&env, a.delivery_id).await;
    assert_eq!(
        (state.as_str(), count, has_next),
        ("retrying", 1, true),
        "a failure schedules a retry"
    );

    let a = &wait_attempts(&env, h_302.id, 1).await[0];
    assert_eq!((a.status.as_str(), a.response_code), ("failed", Some(302)));
    assert_eq!(
        a.error.as_deref(),
        Some("redirect to https://elsewhere.example/x not followed")
    );

    let a = &wait_attempts(&env, h_refused.id, 1).await[0];
    assert_eq!((a.status.as_str(), a.response_code), ("failed", None));
    assert_eq!(a.error.as_deref(), Some("connection refused"));

    let a = &wait_attempts(&env, h_slow.id, 1).await[0];
    assert_eq!((a.status.as_str(), a.response_code), ("failed", None));
    assert_eq!(a.error.as_deref(), Some("timeout after 1s"));

    let a = &wait_attempts(&env, h_big.id, 1).await[0];
    assert_eq!(a.status, "success");
    assert!(a.response_body_truncated, "a 100 KiB body is marked truncated");
    assert_eq!(a.response_body.as_ref().map(|b| b.len()), Some(64 * 1024));

    // The four failures are pending retries in Redis, each for attempt 2.
    let client = redis::Client::open(env.config.redis_url.as_str()).expect("redis url");
    let mut con = client.get_multiplexed_async_connection().await.expect("redis");
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(redis_keys::retries(&env.config.namespace))
        .arg(0)
        .arg(-1)
        .query_async(&mut con)
        .await
        .expect("zrange");
    assert_eq!(members.len(), 4, "{members:?}");
    assert!(members.iter().all(|m| m.ends_with("|2")), "{members:?}");

    running.shutdown().await;
    env.cleanup().await;
}

#[tokio::test]
async fn response_headers_are_stored_capped_and_marked_truncated() {
    let env = env_with(|_| {}).await;
    let many = Receiver::start_with(|_| {
        let mut r = Reply::ok();
        for i in 0..90 {
            r = r.header(&format!("x-many-{i}"), &"v".repeat(300));
        }
        r
    })
    .await;
    let (h, _) = webhook(&env, "many headers", &many.url("/"), &["hdr.test"], true).await;
    let running = start(&env).await;
    let ch = env.channel().await;
    env.publish_raw(&ch, "hdr.test", &event("evt_headers", "hdr.test"))
        .await;
    wait_attempts(&env, h.id, 1).await;
    let (headers, cut): (serde_json::Value, bool) = sqlx::query_as(
        "SELECT response_headers, response_headers_truncated FROM attempts WHERE webhook_id = $1",
    )
    .bind(h.id)
    .fetch_one(&env.db)
    .await
    .expect("attempt");
    running.shutdown().await;
    let stored = headers.to_string().len();
    assert!(cut, "the cut is marked");
    assert!(
        stored < 20 * 1024,
        "about 16 KiB stored of ~28 KiB sent: {stored}"
    );
    env.cleanup().await;
}
