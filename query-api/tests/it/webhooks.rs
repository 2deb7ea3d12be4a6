//! Webhook management over HTTP: create (secret shown once), list with paging, get, patch,
//! rotate (secret shown again), delete (soft: attempts stay in the log).

use reqwest::Method;
use serde_json::json;

use crate::support::Api;

#[tokio::test]
async fn webhooks_can_be_created_listed_updated_rotated_and_deleted() {
    let api = Api::start().await;
    let admin = api.admin.clone();
    let mut ids = vec![];
    for i in 0..5 {
        let res = api
            .call(
                Method::POST,
                "/api/v1/webhooks",
                Some(&admin),
                Some(&json!({"name": format!("Hook {i}"), "url": format!("https://h{i}.example.test/in"), "event_types": ["license.*"]})),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.text);
        assert!(
            res.body["secret"]
                .as_str()
                .is_some_and(|s| s.starts_with("whsec_")),
            "{}",
            res.text
        );
        assert_eq!(res.body["enabled"], true);
        ids.push(res.body["id"].as_str().expect("id").to_owned());
    }
    // Listing pages through all of them, oldest first, without secrets.
    let mut listed = vec![];
    let mut cursor = String::new();
    loop {
        let res = api.get(&format!("/api/v1/webhooks?limit=2{cursor}")).await;
        assert_eq!(res.status, 200, "{}", res.text);
        assert!(!res.text.contains("whsec_"));
        for w in res.body["items"].as_array().expect("items") {
            listed.push(w["id"].as_str().expect("id").to_owned());
        }
        match res.body["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(listed, ids);
    let id = &ids[0];
    let got = api.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(got.body["name"], "Hook 0");
    assert!(got.body.get("secret").is_none());

    let res = api
        .call(
            Method::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            Some(&admin),
            Some(
                &json!({"enabled": false, "event_types": ["*"], "retry_policy": {"schedule": ["1s", "5s"]}}),
            ),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["name"], "Hook 0", "absent fields stay");
    assert_eq!(res.body["enabled"], false);
    assert_eq!(res.body["event_types"], json!(["*"]));
    assert!(res.body["retry_policy"]["schedule"].is_array(), "{}", res.text);
    let res = api
        .call(
            Method::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            Some(&admin),
            Some(&json!({"retry_policy": null})),
        )
        .await;
    assert!(
        res.body["retry_policy"].is_null(),
        "null clears the policy: {}",
        res.text
    );
    api.call(
        Method::PATCH,
        &format!("/api/v1/webhooks/{id}"),
        Some(&admin),
        Some(&json!({"url": "gopher://x"})),
    )
    .await
    .assert_problem(422, "url");

    let res = api
        .call(
            Method::POST,
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(
        res.body["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_"))
    );
    let secrets: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_secrets WHERE webhook_id = $1::uuid AND (expires_at IS NULL OR expires_at > now())")
        .bind(id)
        .fetch_one(&api.env.db)
        .await
        .expect("count");
    assert_eq!(secrets, 2, "the previous secret keeps signing during the overlap");

    let res = api
        .call(
            Method::DELETE,
            &format!("/api/v1/webhooks/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(res.status, 204);
    api.get(&format!("/api/v1/webhooks/{id}"))
        .await
        .assert_problem(404, "no webhook");
    api.call(
        Method::DELETE,
        &format!("/api/v1/webhooks/{id}"),
        Some(&admin),
        None,
    )
    .await
    .assert_problem(404, "no webhook");
    let all = api.get("/api/v1/webhooks?limit=200").await;
    assert_eq!(all.body["items"].as_array().map(Vec::len), Some(4));
    api.stop().await;
}
