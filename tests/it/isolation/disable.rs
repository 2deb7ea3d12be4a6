//! An endpoint that says stop: Retry-After defers the whole webhook, 410 disables it, and so
//! does failing for the whole disable window (re-enabling clears it).

use super::*;

#[tokio::test]
async fn retry_after_defers_the_whole_webhook_and_410_disables_it() {
    let env = TestEnv::new().await;
    let (rx, times) = timed(|i| {
        if i == 0 {
            Reply::status(429, "slow down").header("retry-after", "3")
        } else {
            Reply::ok()
        }
    })
    .await;
    let gone = Receiver::start_with(|_| Reply::status(410, "gone")).await;
    let h = hook(&env, &rx.url("/ra"), "ra.*", Some(1), None).await;
    let h_gone = hook(&env, &gone.url("/gone"), "gone.*", Some(1), None).await;
    let quick = [("HOOKRELAY_RETRY_SCHEDULE", "1s,1s,1s")];
    let fleet = start(&env, &quick, &["dispatcher", "scheduler"]);
    publish(&env, "ra", "ra.event", 10).await;
    publish(&env, "gone", "gone.event", 20).await;
    let all = deliveries_reach(&env, h.id, "succeeded", 10, Duration::from_secs(30)).await;
    let disabled: (bool, Option<String>, bool) = sqlx::query_as(
        "SELECT enabled, disabled_reason, disabled_at IS NOT NULL FROM webhooks WHERE id = $1",
    )
    .bind(h_gone.id)
    .fetch_one(&env.db)
    .await
    .expect("webhook");
    let ended = deliveries_reach(&env, h_gone.id, "failed", 20, Duration::from_secs(20)).await;
    let error: Option<String> = sqlx::query_scalar(
        "SELECT error FROM deliveries WHERE webhook_id = $1 AND error IS NOT NULL LIMIT 1",
    )
    .bind(h_gone.id)
    .fetch_optional(&env.db)
    .await
    .expect("error")
    .flatten();
    let gone_requests = gone.count();
    drop(fleet);
    let v = times.lock().map(|v| v.clone()).unwrap_or_default();
    assert!(all, "every delivery succeeds after the pause");
    let gap = v[1].duration_since(v[0]);
    assert!(
        gap >= Duration::from_millis(2_900),
        "nothing is sent during the Retry-After: {gap:?}"
    );
    assert_eq!(
        disabled,
        (false, Some("gone".into()), true),
        "410 disables the webhook"
    );
    assert!(ended, "its waiting deliveries end failed");
    assert!(
        gone_requests <= 2,
        "nothing more is sent once it answered 410: {gone_requests}"
    );
    assert!(error.is_some_and(|e| e.contains("410")), "the error says why");
    env.cleanup().await;
}

#[tokio::test]
async fn a_webhook_failing_for_the_disable_window_is_disabled_and_reenabling_clears_it() {
    let env = TestEnv::new().await;
    let rx = Receiver::start_with(|_| Reply::status(503, "down")).await;
    let h = hook(&env, &rx.url("/down"), "down.*", None, None).await;
    let extra = [
        ("HOOKRELAY_DISABLE_AFTER", "3s"),
        ("HOOKRELAY_RETRY_SCHEDULE", "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s"),
        ("HOOKRELAY_CIRCUIT_COOLDOWN", "500ms"),
        ("HOOKRELAY_CIRCUIT_MAX_COOLDOWN", "1s"),
    ];
    let fleet = start(&env, &extra, &["dispatcher", "scheduler"]);
    publish(&env, "down", "down.event", 5).await;
    let disabled = eventually(Duration::from_secs(30), || async {
        sqlx::query_scalar::<_, Option<String>>("SELECT disabled_reason FROM webhooks WHERE id = $1")
            .bind(h.id)
            .fetch_one(&env.db)
            .await
            .ok()
            .flatten()
            .as_deref()
            == Some("failing")
    })
    .await;
    assert!(disabled, "every attempt failing for 3 s disables the webhook");
    let ended = deliveries_reach(&env, h.id, "failed", 5, Duration::from_secs(20)).await;
    assert!(
        ended,
        "its waiting deliveries end failed instead of being retried forever"
    );
    let auto: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT actor, details FROM activity WHERE webhook_id = $1 AND kind = 'webhook.auto_disabled'",
    )
    .bind(h.id)
    .fetch_all(&env.db)
    .await
    .expect("activity");
    assert_eq!(auto.len(), 1, "said once: {auto:?}");
    assert_eq!(auto[0].0, "system");
    assert_eq!(auto[0].1["reason"], "failing");
    let patched = webhooks::update(
        &env.db,
        h.id,
        webhooks::WebhookPatch {
            enabled: Some(true),
            ..Default::default()
        },
    )
    .await
    .expect("update")
    .expect("exists");
    drop(fleet);
    assert!(patched.enabled);
    assert_eq!(patched.disabled_reason, None, "re-enabling clears the reason");
    assert_eq!(patched.disabled_at, None);
    env.cleanup().await;
}
