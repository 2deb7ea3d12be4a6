//! `POST /api/v1/webhooks/{id}/test`: a signed `webhook.test` event through a real dispatcher,
//! recorded in the log and the activity log; roles, unknown and disabled webhooks.

use std::time::Duration;

use hookrelay_shared::{signature, testing::Receiver};
use reqwest::Method;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::Api;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_test_event_reaches_the_endpoint_signed_and_is_in_the_log_and_the_activity_log() {
    let api = Api::start().await;
    let receiver = Receiver::start().await;
    // Subscribed to something else entirely: a test event goes to this webhook anyway.
    let created = api
        .post(
            "/api/v1/webhooks",
            Some(
                &json!({"name": "Tested", "url": receiver.url("/hook"), "event_types": ["license.assigned"]}),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().expect("id").to_owned();
    let secret = signature::Secret::parse(created.body["secret"].as_str().expect("secret")).expect("secret");
    let stop = CancellationToken::new();
    let dispatcher = tokio::spawn(hookrelay_dispatcher::run(api.env.context(), stop.clone()));

    let res = api.post(&format!("/api/v1/webhooks/{id}/test"), None).await;
    assert_eq!(res.status, 202, "{}", res.text);
    let event_id = res.body["event_id"].as_str().expect("event_id").to_owned();
    let delivery_id = res.body["delivery_id"].as_str().expect("delivery_id").to_owned();
    assert!(event_id.starts_with("evt_"), "{event_id}");

    assert!(
        receiver.wait_for(1, WAIT).await,
        "the endpoint got the test event"
    );
    let got = receiver.received();
    assert_eq!(got.len(), 1, "exactly one request");
    let r = &got[0];
    assert_eq!(r.header("webhook-id"), Some(event_id.as_str()));
    assert_eq!(r.header("x-webhook-event"), Some("webhook.test"));
    assert!(
        r.signed_with(&secret),
        "the test event is signed with the webhook's secret"
    );
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json body");
    assert_eq!(body["type"], "webhook.test");
    assert_eq!(body["data"]["webhook_id"], id.as_str());

    // The attempt is in the delivery log, as the delivery the answer named.
    let mut items = vec![];
    for _ in 0..300 {
        let res = api.get(&format!("/api/v1/deliveries?webhook_id={id}")).await;
        items = res.body["items"].as_array().cloned().unwrap_or_default();
        if !items.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(items.len(), 1, "one attempt in the log: {items:?}");
    let a = &items[0];
    assert_eq!(a["delivery_id"], delivery_id.as_str());
    assert_eq!(a["event_type"], "webhook.test");
    assert_eq!(a["status"], "success");
    assert_eq!(a["response_code"], 200);
    let state: String = sqlx::query_scalar("SELECT state FROM deliveries WHERE id = $1")
        .bind(Uuid::parse_str(&delivery_id).expect("uuid"))
        .fetch_one(&api.env.db)
        .await
        .expect("delivery");
    assert_eq!(state, "succeeded");

    let res = api.get("/api/v1/activity?kind=webhook.tested").await;
    assert_eq!(res.status, 200, "{}", res.text);
    let entries = res.body["items"].as_array().expect("items");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["actor"], "admin");
    assert_eq!(entries[0]["webhook_id"], id.as_str());
    assert_eq!(entries[0]["details"]["delivery_id"], delivery_id.as_str());
    assert_eq!(entries[0]["details"]["event_id"], event_id.as_str());

    stop.cancel();
    let _ = dispatcher.await;
    api.stop().await;
}

#[tokio::test]
async fn a_test_event_needs_an_admin_an_existing_webhook_and_an_enabled_one() {
    let api = Api::start().await;
    let hook = crate::support::webhook(&api.env, "Off", "http://127.0.0.1:9/x", &["*"]).await;
    let path = format!("/api/v1/webhooks/{hook}/test");

    let res = api.call(Method::POST, &path, None, None).await;
    res.assert_problem(401, "token");
    let res = api
        .call(Method::POST, &path, Some(&api.viewer.clone()), None)
        .await;
    res.assert_problem(403, "admin");

    let missing = Uuid::now_v7();
    let res = api.post(&format!("/api/v1/webhooks/{missing}/test"), None).await;
    res.assert_problem(404, &missing.to_string());
    let res = api.post("/api/v1/webhooks/not-a-uuid/test", None).await;
    assert_eq!(res.status, 400, "{}", res.text);

    let res = api
        .call(
            Method::PATCH,
            &format!("/api/v1/webhooks/{hook}"),
            Some(&api.admin.clone()),
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let res = api
        .call(Method::POST, &path, Some(&api.owner.clone()), None)
        .await;
    res.assert_problem(409, "disabled");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE webhook_id = $1")
        .bind(hook)
        .fetch_one(&api.env.db)
        .await
        .expect("count");
    assert_eq!(stored, 0, "nothing is stored for a refused test event");
    api.stop().await;
}
