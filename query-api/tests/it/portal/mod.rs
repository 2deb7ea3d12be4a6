//! The admin portal's API (issue 12): event types seen, settings taken up by other replicas;
//! `activity.rs`: the activity log of people's and the system's actions.

mod activity;

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
