//! End-to-end tests of the per-webhook delivery options (issue 13): the real `hookrelay
//! dispatcher` process against real services and a receiver on 127.0.0.1. This file: the
//! helpers, payload filters and custom headers; `v1a.rs`: ed25519 signatures.

mod v1a;

use std::{collections::HashSet, process::Child, time::Duration};

use hookrelay_shared::{
    testing::{Receiver, TestEnv, eventually},
    webhooks::{self, NewWebhook, Webhook},
};
use serde_json::{Value, json};

use crate::{fleet::publish_events, support};

async fn hook(env: &TestEnv, url: &str, adjust: impl FnOnce(&mut NewWebhook)) -> Webhook {
    let mut new = NewWebhook {
        name: "options".into(),
        url: url.into(),
        event_types: vec!["order.*".into()],
        enabled: true,
        ..Default::default()
    };
    adjust(&mut new);
    new.validate(true).expect("valid webhook");
    webhooks::create(&env.db, new).await.expect("webhook").0
}

fn dispatcher(env: &TestEnv) -> Child {
    support::command(&env.config, &["dispatcher"])
        .env("HOOKRELAY_DELIVERY_TIMEOUT", "2s")
        .spawn()
        .expect("hookrelay starts")
}

fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn ids(rx: &Receiver) -> HashSet<String> {
    rx.received()
        .iter()
        .filter_map(|r| r.header("webhook-id").map(str::to_owned))
        .collect()
}

async fn deliveries_of(env: &TestEnv, webhook: &Webhook) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE webhook_id = $1")
        .bind(webhook.id)
        .fetch_one(&env.db)
        .await
        .expect("count")
}

#[tokio::test]
async fn a_filtered_webhook_gets_only_the_matching_events_and_no_deliveries_for_the_rest() {
    let env = TestEnv::new().await;
    let (filtered_rx, plain_rx) = (Receiver::start().await, Receiver::start().await);
    let filtered = hook(&env, &filtered_rx.url("/"), |w| {
        w.filter = Some(json!({
            "type": ["order.paid", "order.refunded"],
            "data.plan": {"$ne": "free"},
            "data.seats": {"$gte": 5},
            "data.customer.region": {"$prefix": "eu-"},
        }));
    })
    .await;
    let plain = hook(&env, &plain_rx.url("/"), |_| {}).await;

    let plans = ["free", "pro", "team"];
    let regions = ["eu-west", "us-east"];
    let types = ["order.paid", "order.created", "order.refunded"];
    let mut events = Vec::new();
    let mut want = HashSet::new();
    for i in 0..120usize {
        let (plan, region, t, seats) = (plans[i % 3], regions[i / 3 % 2], types[i / 6 % 3], i % 10);
        let id = format!("evt_filter_{i}");
        if t != "order.created" && plan != "free" && seats >= 5 && region.starts_with("eu-") {
            want.insert(id.clone());
        }
        events.push((
            id,
            t,
            json!({"plan": plan, "seats": seats, "customer": {"region": region}}),
        ));
    }
    assert!(!want.is_empty() && want.len() < events.len());
    let child = dispatcher(&env);
    publish_events(&env, &events).await;
    let all = plain_rx.wait_for(events.len(), Duration::from_secs(60)).await;
    // The filtered webhook's deliveries were made in the same batches as the plain one's.
    let got_all = eventually(Duration::from_secs(10), || async {
        filtered_rx.count() >= want.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill(child);
    assert!(
        all,
        "the unfiltered webhook got every event ({})",
        plain_rx.count()
    );
    assert!(got_all, "the filtered webhook got its {} events", want.len());
    assert_eq!(ids(&filtered_rx), want, "exactly the matching events, each once");
    assert_eq!(filtered_rx.count(), want.len());
    assert_eq!(
        deliveries_of(&env, &filtered).await,
        want.len() as i64,
        "no delivery for the rest"
    );
    assert_eq!(deliveries_of(&env, &plain).await, events.len() as i64);
    env.cleanup().await;
}

#[tokio::test]
async fn a_filter_changed_through_patch_applies_to_the_next_events() {
    let env = TestEnv::new().await;
    let rx = Receiver::start().await;
    let w = hook(&env, &rx.url("/"), |w| w.filter = Some(json!({"data.n": 1}))).await;
    let child = dispatcher(&env);
    publish_events(
        &env,
        &[
            ("evt_p_1".into(), "order.paid", json!({"n": 1})),
            ("evt_p_2".into(), "order.paid", json!({"n": 2})),
        ],
    )
    .await;
    assert!(rx.wait_for(1, Duration::from_secs(30)).await);
    let patch = webhooks::WebhookPatch {
        filter: Some(Some(json!({"data.n": {"$gt": 1}}))),
        ..Default::default()
    };
    webhooks::update(&env.db, w.id, patch).await.expect("patched");
    // The NOTIFY reload is quick but asynchronous: wait until the new filter takes effect.
    let mut i = 3;
    let changed = eventually(Duration::from_secs(30), || {
        i += 1;
        let env = &env;
        let rx = &rx;
        let id = format!("evt_p_{i}");
        async move {
            publish_events(env, &[(id.clone(), "order.paid", json!({"n": 5}))]).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            ids(rx).contains(&id)
        }
    })
    .await;
    kill(child);
    assert!(changed, "the new filter lets n = 5 through");
    let got = ids(&rx);
    assert!(got.contains("evt_p_1") && !got.contains("evt_p_2"), "{got:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn custom_headers_reach_the_receiver_and_are_stored_and_logged_redacted() {
    let env = TestEnv::new().await;
    let rx = Receiver::start().await;
    let secret = "k_live_7f3a9c_do_not_log";
    let w = hook(&env, &rx.url("/"), |w| {
        w.headers = Some(json!({"X-Api-Key": secret, "Authorization": "Bearer tok_9d2e_do_not_log"}));
    })
    .await;
    assert!(
        !format!("{w:?}").contains(secret),
        "Debug of a webhook hides the values"
    );
    assert_eq!(
        serde_json::to_value(&w).expect("json")["headers"]["x-api-key"],
        "***"
    );
    let mut child = support::command(&env.config, &["dispatcher"])
        .env(
            "RUST_LOG",
            "info,hookrelay=debug,hookrelay_dispatcher=debug,hookrelay_shared=debug",
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("hookrelay starts");
    publish_events(&env, &[("evt_headers_1".into(), "order.paid", json!({}))]).await;
    let got = rx.wait_for(1, Duration::from_secs(30)).await;
    let stored = eventually(Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM attempts")
            .fetch_one(&env.db)
            .await
            .unwrap_or(0)
            == 1
    })
    .await;
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    assert!(got && stored, "delivered and recorded");
    let r = &rx.received()[0];
    assert_eq!(r.header("x-api-key"), Some(secret));
    assert_eq!(r.header("authorization"), Some("Bearer tok_9d2e_do_not_log"));
    assert_eq!(
        r.header("webhook-id"),
        Some("evt_headers_1"),
        "the contract's headers are intact"
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let headers: Value = sqlx::query_scalar("SELECT request_headers FROM attempts")
        .fetch_one(&env.db)
        .await
        .expect("attempt");
    assert_eq!(headers["x-api-key"], "***", "{headers}");
    assert_eq!(headers["authorization"], "***", "{headers}");
    assert_eq!(headers["webhook-id"], "evt_headers_1");
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(logs.contains("consuming events"), "the logs were captured");
    assert!(!logs.contains("do_not_log"), "no header value in the logs");
    env.cleanup().await;
}
