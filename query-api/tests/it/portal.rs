//! The admin portal's API (issue 12): event types seen, settings taken up by other replicas,
//! and the activity log of people's and the system's actions.

use std::time::Duration;

use hookrelay_shared::{
    duration::HumanDuration,
    retry::RetryPolicy,
    testing::{Receiver, Reply, TestEnv, eventually},
};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{Api, webhook};

const WAIT: Duration = Duration::from_secs(30);

async fn fast_refresh_env() -> TestEnv {
    TestEnv::with(|c| c.settings_refresh = HumanDuration(Duration::from_millis(200))).await
}

async fn put_settings(api: &Api, body: Value) -> crate::support::Res {
    api.call(
        Method::PUT,
        "/api/v1/settings",
        Some(&api.owner.clone()),
        Some(&body),
    )
    .await
}

async fn activity(api: &Api, query: &str) -> Vec<Value> {
    let res = api.get(&format!("/api/v1/activity?{query}")).await;
    assert_eq!(res.status, 200, "{query}: {}", res.text);
    res.body["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn event_types_seen_by_a_dispatcher_are_listed_with_category_and_last_seen() {
    let api = Api::start().await;
    let receiver = Receiver::start().await;
    webhook(&api.env, "All", &receiver.url("/"), &["*"]).await;
    let stop = CancellationToken::new();
    let dispatcher = tokio::spawn(hookrelay_dispatcher::run(api.env.context(), stop.clone()));
    let ch = api.env.channel().await;
    let before = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    for (i, t) in ["license.assigned", "license.revoked", "product.created"]
        .iter()
        .enumerate()
    {
        let body = json!({"id": format!("evt_{i}"), "type": t, "data": {}}).to_string();
        api.env.publish_raw(&ch, t, body.as_bytes()).await;
    }
    assert!(receiver.wait_for(3, WAIT).await, "the events were delivered");
    let res = api.get("/api/v1/event-types").await;
    assert_eq!(res.status, 200, "{}", res.text);
    let items = res.body["items"].as_array().expect("items");
    let types: Vec<(&str, &str)> = items
        .iter()
        .map(|i| {
            (
                i["type"].as_str().unwrap_or(""),
                i["category"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            ("license.assigned", "license"),
            ("license.revoked", "license"),
            ("product.created", "product")
        ]
    );
    for i in items {
        let seen = time::OffsetDateTime::parse(
            i["last_seen_at"].as_str().expect("last_seen_at"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("RFC 3339");
        assert!(seen >= before, "{i}");
    }
    let res = api.get("/api/v1/event-types?category=product").await;
    assert_eq!(
        res.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        res.text
    );
    api.get("/api/v1/event-types?category=Not%20One")
        .await
        .assert_problem(400, "category");
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), dispatcher).await;
    api.stop().await;
}

#[tokio::test]
async fn settings_show_the_config_values_until_an_owner_changes_them() {
    let api = Api::start().await;
    let res = api.get("/api/v1/settings").await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["retention"], "30d");
    assert_eq!(res.body["retry"], json!({"max_retries": 3, "window": "30m"}));
    assert_eq!(
        res.body["source"],
        json!({"retention": "config", "retry": "config"})
    );
    assert_eq!(res.body["updated_by"], Value::Null);

    let res = put_settings(
        &api,
        json!({"retention": "14d", "retry": {"schedule": ["10s", "1m"]}}),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["retention"], "14d");
    assert_eq!(res.body["retry"], json!({"schedule": ["10s", "1m"]}));
    assert_eq!(
        res.body["source"],
        json!({"retention": "stored", "retry": "stored"})
    );
    assert_eq!(res.body["updated_by"], "owner");
    assert_eq!(res.body["defaults"]["retention"], "30d");
    assert_eq!(api.get("/api/v1/settings").await.body, res.body);

    // An absent field keeps its value; null goes back to the config's.
    let res = put_settings(&api, json!({"retry": null})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["retention"], "14d");
    assert_eq!(res.body["retry"], json!({"max_retries": 3, "window": "30m"}));
    assert_eq!(res.body["source"]["retry"], "config");

    let changes = activity(&api, "kind=settings.changed").await;
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[0]["actor"], "owner");
    assert_eq!(
        changes[0]["details"]["before"]["retry"],
        json!({"schedule": ["10s", "1m"]})
    );
    assert_eq!(changes[1]["details"]["after"]["retention"], "14d");
    api.stop().await;
}

#[tokio::test]
async fn bad_settings_are_refused_naming_the_field() {
    let api = Api::start().await;
    for (body, status, field) in [
        (json!({"retention": "0d"}), 422, "retention"),
        (json!({"retention": "366d"}), 422, "retention"),
        (json!({"retention": "12h"}), 422, "retention"),
        (json!({"retention": "soon"}), 422, "retention"),
        (json!({"retention": 30}), 422, "retention"),
        (json!({"retry": {"max_retries": 3}}), 422, "retry.window"),
        (json!({"retry": {"window": "1h"}}), 422, "retry.max_retries"),
        (
            json!({"retry": {"max_retries": 1000, "window": "1h"}}),
            422,
            "max_retries",
        ),
        (
            json!({"retry": {"max_retries": 3, "window": "31d"}}),
            422,
            "retry.window",
        ),
        (
            json!({"retry": {"schedule": ["1s", "40d"]}}),
            422,
            "retry.schedule[1]",
        ),
        (
            json!({"retry": {"schedule": ["1s"], "window": "1h"}}),
            422,
            "retry",
        ),
        (json!({"retry": {"bogus": 1}}), 422, "retry"),
        (json!({"retry": "fast"}), 422, "retry"),
        (json!({"retry": {"schedule": "1s"}}), 422, "retry"),
        (
            json!({"retention": "2d", "retry": {"max_retries": 3, "window": "3d"}}),
            422,
            "retry.window",
        ),
        (json!({"other": 1}), 422, "other"),
        (json!({}), 422, "retention"),
        (json!([1, 2]), 422, "request body"),
    ] {
        put_settings(&api, body.clone())
            .await
            .assert_problem(status, field);
    }
    // Lowering the retention below the configured default policy's window is refused too.
    put_settings(
        &api,
        json!({"retention": "1d", "retry": {"max_retries": 3, "window": "2d"}}),
    )
    .await
    .assert_problem(422, "retry.window");
    // Not JSON, and not sent as JSON.
    let res = api
        .client
        .put(format!("{}/api/v1/settings", api.base))
        .bearer_auth(&api.owner)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .expect("sent");
    Api::read(res).await.assert_problem(400, "request body");
    let res = api
        .client
        .put(format!("{}/api/v1/settings", api.base))
        .bearer_auth(&api.owner)
        .body("retention=1d")
        .send()
        .await
        .expect("sent");
    Api::read(res).await.assert_problem(415, "content-type");
    // Nothing was stored.
    assert_eq!(
        api.get("/api/v1/settings").await.body["source"]["retention"],
        "config"
    );
    api.stop().await;
}

#[tokio::test]
async fn another_replica_takes_a_settings_change_up_without_a_restart() {
    let api = Api::start_in(fast_refresh_env().await).await;
    // A second component context on the same database: another replica's settings cache.
    let replica = api.env.context();
    assert_eq!(
        replica.settings.retry_policy(),
        RetryPolicy::Exponential {
            max_retries: 3,
            window: Duration::from_secs(1800)
        }
    );
    let res = put_settings(
        &api,
        json!({"retention": "7d", "retry": {"schedule": ["1s", "5s"]}}),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let took = eventually(Duration::from_secs(5), || async {
        replica.settings.retry_policy()
            == RetryPolicy::Schedule(vec![Duration::from_secs(1), Duration::from_secs(5)])
    })
    .await;
    assert!(took, "the replica's cache took the new policy up");
    assert_eq!(replica.settings.retention(), Duration::from_secs(7 * 86_400));
    api.stop().await;
}

#[tokio::test]
async fn a_running_dispatcher_uses_the_new_default_retry_policy() {
    let api = Api::start_in(fast_refresh_env().await).await;
    let receiver = Receiver::start_with(|_| Reply::status(500, "down")).await;
    let hook = webhook(&api.env, "Failing", &receiver.url("/"), &["*"]).await;
    let stop = CancellationToken::new();
    let dispatcher = tokio::spawn(hookrelay_dispatcher::run(api.env.context(), stop.clone()));
    let ch = api.env.channel().await;
    let publish = |id: &'static str| {
        let body = json!({"id": id, "type": "license.assigned", "data": {}}).to_string();
        let (env, ch) = (&api.env, &ch);
        async move { env.publish_raw(ch, "license.assigned", body.as_bytes()).await }
    };
    let state_of = |id: &'static str| {
        let db = api.env.db.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT state FROM deliveries WHERE event_id = $1 AND attempt_count >= 1",
            )
            .bind(id)
            .fetch_optional(&db)
            .await
            .expect("query")
        }
    };
    publish("evt_before").await;
    assert!(
        eventually(WAIT, || async { state_of("evt_before").await.is_some() }).await,
        "first attempt recorded"
    );
    assert_eq!(
        state_of("evt_before").await.as_deref(),
        Some("retrying"),
        "3 retries by default"
    );
    // No automatic retries any more: the next failure is final.
    let res = put_settings(&api, json!({"retry": {"max_retries": 0, "window": "1m"}})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    tokio::time::sleep(Duration::from_millis(600)).await;
    publish("evt_after").await;
    assert!(
        eventually(WAIT, || async { state_of("evt_after").await.is_some() }).await,
        "first attempt recorded"
    );
    assert_eq!(state_of("evt_after").await.as_deref(), Some("failed"));
    let _ = hook;
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), dispatcher).await;
    api.stop().await;
}

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
