//! The activity log: who (a token, the CLI, the system) did what to which webhook, manual and
//! bulk retries included, read back through `GET /api/v1/activity`.

use super::*;

#[tokio::test]
async fn the_activity_log_says_who_did_what_to_which_webhook() {
    let api = Api::start().await;
    let admin = api.admin.clone();
    let owner = api.owner.clone();
    let call = |m: Method, path: String, token: String, body: Option<Value>| {
        let api = &api;
        async move { api.call(m, &path, Some(&token), body.as_ref()).await }
    };
    let res = call(
        Method::POST,
        "/api/v1/webhooks".into(),
        admin.clone(),
        Some(
            json!({"name": "Billing", "url": "http://127.0.0.1:9/b", "event_types": ["license.*"],
            "headers": {"x-api-key": "k_secret_1"}}),
        ),
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.text);
    let id = res.body["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v1/webhooks/{id}");
    let patch = |body: Value| call(Method::PATCH, path.clone(), admin.clone(), Some(body));
    assert_eq!(
        patch(json!({"url": "http://127.0.0.1:9/c", "headers": {"x-api-key": "k_secret_2"}}))
            .await
            .status,
        200
    );
    assert_eq!(patch(json!({"enabled": false})).await.status, 200);
    assert_eq!(patch(json!({"enabled": true})).await.status, 200);
    let res = call(Method::POST, format!("{path}/rotate-secret"), admin.clone(), None).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let res = call(
        Method::POST,
        "/api/v1/tokens".into(),
        owner.clone(),
        Some(json!({"name": "ci-bot", "role": "viewer"})),
    )
    .await;
    let token_id = res.body["id"].as_str().expect("token id").to_owned();
    assert_eq!(
        call(
            Method::DELETE,
            format!("/api/v1/tokens/{token_id}"),
            owner.clone(),
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        call(Method::DELETE, path.clone(), admin.clone(), None)
            .await
            .status,
        204
    );

    let all = activity(&api, "").await;
    let kinds: Vec<(&str, &str)> = all
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or(""),
                e["actor"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("webhook.deleted", "admin"),
            ("token.revoked", "owner"),
            ("token.created", "owner"),
            ("webhook.secret_rotated", "admin"),
            ("webhook.enabled", "admin"),
            ("webhook.disabled", "admin"),
            ("webhook.updated", "admin"),
            ("webhook.created", "admin"),
        ]
    );
    assert_eq!(all[6]["details"]["fields"], json!(["url", "headers"]));
    assert!(
        !serde_json::to_string(&all).expect("json").contains("k_secret"),
        "no header value is shown"
    );
    for e in &all {
        assert!(e["id"].is_string() && e["at"].is_string(), "{e}");
    }

    // Filters: one webhook, one kind, every kind of a subject; paging with the cursor.
    let hook_entries = activity(&api, &format!("webhook_id={id}")).await;
    assert_eq!(hook_entries.len(), 6);
    assert_eq!(activity(&api, "kind=token.created").await.len(), 1);
    assert_eq!(activity(&api, "kind=token.*").await.len(), 2);
    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/v1/activity?limit=3&cursor={c}"),
            None => "/api/v1/activity?limit=3".into(),
        };
        let res = api.get(&q).await;
        assert_eq!(res.status, 200, "{}", res.text);
        seen.extend(
            res.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|e| e["id"].clone()),
        );
        match res.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<Value> = all.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(seen, expected);
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let later = later
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats");
    assert!(
        activity(&api, &format!("since={}", later.replace('+', "%2B")))
            .await
            .is_empty()
    );

    for (q, field) in [
        ("kind=nope", "kind"),
        ("kind=nope.*", "kind"),
        ("webhook_id=42", "webhook_id"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z", "since"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=x", "limit"),
        ("cursor=garbage", "cursor"),
        ("cursor=OTk5OTk5OTk5OTk5OTk5OTk5OTk6eA", "cursor"),
    ] {
        api.get(&format!("/api/v1/activity?{q}"))
            .await
            .assert_problem(400, field);
    }
    api.stop().await;
}

#[tokio::test]
async fn manual_and_bulk_retries_are_in_the_activity_log() {
    let api = Api::start().await;
    let hook = webhook(&api.env, "Retry", "http://127.0.0.1:9/r", &["*"]).await;
    let d = crate::support::seed_delivery(&api.env, hook, "license.assigned", "failed").await;
    let a = crate::support::seed_attempt(&api.env, &d, "failed", Some(500), crate::support::now_us()).await;
    let res = api
        .call(
            Method::POST,
            &format!("/api/v1/deliveries/{}/retry", a.id),
            Some(&api.admin.clone()),
            None,
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    let res = api
        .call(
            Method::POST,
            "/api/v1/deliveries/retry",
            Some(&api.admin.clone()),
            Some(&json!({"webhook_id": hook})),
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    let retried = activity(&api, "kind=delivery.retried").await;
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0]["webhook_id"], json!(hook));
    assert_eq!(retried[0]["details"]["delivery_id"], json!(d.id));
    let bulk = activity(&api, "kind=bulk_retry.requested").await;
    assert_eq!(bulk.len(), 1, "{bulk:?}");
    assert_eq!(bulk[0]["actor"], "admin");
    // The worker finishes the job and says so, as the system.
    let finished = eventually(WAIT, || async {
        !activity(&api, "kind=bulk_retry.finished").await.is_empty()
    })
    .await;
    assert!(finished, "bulk_retry.finished recorded");
    let f = activity(&api, "kind=bulk_retry.finished").await;
    assert_eq!(f[0]["actor"], "system");
    assert_eq!(f[0]["webhook_id"], json!(hook));
    assert_eq!(f[0]["details"]["job_id"], bulk[0]["details"]["job_id"]);
    api.stop().await;
}
