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
            .post("/api/v1/webhooks", Some(&json!({"name": format!("Hook {i}"), "url": format!("https://h{i}.example.test/in"), "event_types": ["license.*"]})))
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
        .post(&format!("/api/v1/webhooks/{id}/rotate-secret"), None)
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

#[tokio::test]
async fn retry_policies_longer_than_the_retention_or_too_long_are_422_problems_naming_the_field() {
    let api = Api::start().await;
    let admin = api.admin.clone();
    let res = api
        .post(
            "/api/v1/webhooks",
            Some(&json!({"name": "Bounds", "url": "https://b.example.test/in", "event_types": ["*"]})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    let id = res.body["id"].as_str().expect("id").to_owned();
    let too_many: Vec<&str> = vec!["1s"; 101];
    for (policy, needle) in [
        (json!({"window": "3000000d"}), "window"),
        (json!({"max_retries": 3, "window": "31d"}), "window"),
        (json!({"schedule": ["1s", "3000000d"]}), "schedule[1]"),
        (json!({"schedule": ["20d", "20d"]}), "schedule"),
        (json!({"schedule": too_many}), "schedule"),
        (json!({"max_retries": 1000}), "max_retries"),
        (json!({"window": "99999999999999999999d"}), "retry_policy"),
    ] {
        api.call(
            Method::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            Some(&admin),
            Some(&json!({ "retry_policy": policy })),
        )
        .await
        .assert_problem(422, needle);
        api.post("/api/v1/webhooks", Some(&json!({"name": "B", "url": "https://b.example.test/in", "event_types": ["*"], "retry_policy": policy})))
        .await
        .assert_problem(422, needle);
    }
    // Up to the retention (30 days by default) is fine.
    let res = api
        .call(
            Method::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            Some(&admin),
            Some(&json!({"retry_policy": {"schedule": ["1m", "29d"]}})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    api.stop().await;
}

async fn live_secrets(api: &Api, id: &str) -> Vec<(String, Option<time::OffsetDateTime>)> {
    sqlx::query_as(
        "SELECT secret, expires_at FROM webhook_secrets WHERE webhook_id = $1::uuid
         AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at DESC, id DESC",
    )
    .bind(id)
    .fetch_all(&api.env.db)
    .await
    .expect("secrets")
}

#[tokio::test]
async fn a_rotation_keeps_at_most_three_live_secrets_and_can_choose_the_overlap() {
    let api = Api::start().await;
    let res = api
        .post(
            "/api/v1/webhooks",
            Some(&json!({"name": "Rotating", "url": "https://r.example.test/in", "event_types": ["*"]})),
        )
        .await;
    let id = res.body["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v1/webhooks/{id}/rotate-secret");
    let mut newest = String::new();
    for _ in 0..5 {
        let res = api.post(&path, None).await;
        assert_eq!(res.status, 200, "{}", res.text);
        newest = res.body["secret"].as_str().expect("secret").to_owned();
    }
    let live = live_secrets(&api, &id).await;
    assert_eq!(live.len(), 3, "five rotations leave three live secrets: {live:?}");
    assert_eq!(live[0].0, newest);
    assert!(live[0].1.is_none(), "the newest never expires");

    // A chosen overlap.
    let res = api.post(&path, Some(&json!({"expire_previous_in": "1h"}))).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let live = live_secrets(&api, &id).await;
    let hour = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    assert!(
        live[1..]
            .iter()
            .all(|(_, e)| e.is_some_and(|e| (e - hour).abs() < time::Duration::minutes(1))),
        "{live:?}"
    );

    // A leaked secret: the previous ones stop at once.
    let res = api.post(&path, Some(&json!({"expire_previous_in": "0s"}))).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let live = live_secrets(&api, &id).await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(
        Some(&live[0].0),
        res.body["secret"].as_str().map(str::to_owned).as_ref()
    );

    for bad in [
        json!({"expire_previous_in": "8d"}),
        json!({"expire_previous_in": "soon"}),
        json!({"expire_previous_in": "-1s"}),
        json!({"expire_previous_in": 5}),
    ] {
        api.post(&path, Some(&bad))
            .await
            .assert_problem(422, "expire_previous_in");
    }
    assert_eq!(
        live_secrets(&api, &id).await.len(),
        1,
        "a refused rotation changes nothing"
    );
    api.stop().await;
}
