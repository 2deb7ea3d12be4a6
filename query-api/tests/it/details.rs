//! One attempt in full, from seeded rows (the end-to-end versions with a real dispatcher and
//! receiver are in `retries`).

use crate::support::{Api, now_us, seed_attempt, seed_delivery, webhook};

#[tokio::test]
async fn details_show_request_payload_and_response_or_null_without_one() {
    let api = Api::start().await;
    let hook = webhook(&api.env, "Billing", "http://127.0.0.1:9/x", &["*"]).await;
    let d = seed_delivery(&api.env, hook, "license.assigned", "failed").await;
    let failed = seed_attempt(&api.env, &d, "failed", Some(500), now_us()).await;
    let refused = seed_attempt(&api.env, &d, "failed", None, now_us()).await;

    let res = api.get(&format!("/api/v1/deliveries/{}", failed.id)).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let b = &res.body;
    assert_eq!(b["id"], failed.id.to_string());
    assert_eq!(b["webhook"]["name"], "Billing");
    assert_eq!(b["request"]["method"], "POST");
    assert_eq!(b["request"]["url"], "http://example.test/hook");
    assert_eq!(b["request"]["headers"]["webhook-signature"], "v1,abc");
    let sent: serde_json::Value = serde_json::from_str(&d.body).expect("json");
    assert_eq!(b["payload"], sent);
    assert_eq!(b["response"]["status"], 500);
    assert_eq!(b["response"]["body"], "reply 500");
    assert_eq!(b["response"]["body_truncated"], false);
    assert_eq!(b["response"]["headers"]["content-type"], "text/plain");

    let res = api.get(&format!("/api/v1/deliveries/{}", refused.id)).await;
    assert_eq!(res.status, 200);
    assert!(res.body["response"].is_null(), "{}", res.text);
    assert_eq!(res.body["error"], "connection refused");
    assert_eq!(res.body["attempt"], 2);
    assert_eq!(res.body["trigger"], "automatic");

    api.get(&format!("/api/v1/deliveries/{}", uuid::Uuid::now_v7()))
        .await
        .assert_problem(404, "no attempt");
    api.stop().await;
}
