//! End to end with a real dispatcher (in-process) and a real receiver: the details of a failed
//! attempt, a connection-refused attempt, a manual retry once the receiver is fixed, and a bulk
//! retry after an outage that delivers every failed event exactly once.

use std::{collections::HashMap, time::Duration};

use hookrelay_shared::testing::{Receiver, Reply};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{Api, webhook};

const WAIT: Duration = Duration::from_secs(30);

struct Running {
    api: Api,
    stop: CancellationToken,
    dispatcher: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn start(api: Api) -> Self {
        let stop = CancellationToken::new();
        let dispatcher = tokio::spawn(hookrelay_dispatcher::run(api.env.context(), stop.clone()));
        Self {
            api,
            stop,
            dispatcher,
        }
    }

    async fn publish(&self, id: &str, event_type: &str) {
        let ch = self.api.env.channel().await;
        let body = json!({"id": id, "type": event_type, "data": {"n": id}}).to_string();
        self.api.env.publish_raw(&ch, event_type, body.as_bytes()).await;
    }

    /// The log items for `query`, once there are at least `n`.
    async fn wait_items(&self, query: &str, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut items = self.api.all_pages(query, 200).await;
        while items.len() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            items = self.api.all_pages(query, 200).await;
        }
        let ok = items.len() >= n;
        assert!(ok, "{query}: only {} items: {items:?}", items.len());
        items
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.dispatcher).await;
        self.api.stop().await;
    }
}

#[tokio::test]
async fn a_manual_retry_after_the_receiver_is_fixed_makes_a_successful_manual_attempt() {
    let receiver = Receiver::start_with(|_| Reply::status(500, "receiver is broken")).await;
    let api = Api::start().await;
    let hook = webhook(&api.env, "Flaky", &receiver.url("/hook"), &["license.*"]).await;
    let run = Running::start(api).await;
    run.publish("evt_manual_1", "license.assigned").await;
    let items = run.wait_items(&format!("webhook_id={hook}"), 1).await;
    let failed = &items[0];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["response_code"], 500);

    // The details show what the receiver answered and what was sent.
    let d = run
        .api
        .get(&format!(
            "/api/v1/deliveries/{}",
            failed["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(d.status, 200, "{}", d.text);
    assert_eq!(d.body["response"]["status"], 500);
    assert_eq!(d.body["response"]["body"], "receiver is broken");
    assert_eq!(d.body["payload"]["id"], "evt_manual_1");
    assert_eq!(d.body["payload"]["data"]["n"], "evt_manual_1");
    assert!(
        d.body["request"]["headers"]["webhook-signature"]
            .as_str()
            .is_some_and(|s| s.starts_with("v1,")),
        "{}",
        d.text
    );

    receiver.set(|_| Reply::ok());
    let res = run
        .api
        .post(
            &format!("/api/v1/deliveries/{}/retry", failed["id"].as_str().expect("id")),
            None,
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    assert_eq!(res.body["queued"], true);
    assert_eq!(res.body["delivery_id"], failed["delivery_id"]);

    let items = run
        .wait_items(&format!("webhook_id={hook}&status=success"), 1)
        .await;
    assert_eq!(items[0]["trigger"], "manual");
    assert_eq!(items[0]["response_code"], 200);
    assert_eq!(items[0]["delivery_id"], failed["delivery_id"]);
    let last = receiver.received().last().cloned().expect("received");
    assert_eq!(last.header("webhook-id"), Some("evt_manual_1"));
    run.stop().await;
}

#[tokio::test]
async fn a_connection_refused_attempt_has_no_response_and_an_error() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let api = Api::start().await;
    let hook = webhook(
        &api.env,
        "Nobody home",
        &format!("http://127.0.0.1:{port}/x"),
        &["*"],
    )
    .await;
    let run = Running::start(api).await;
    run.publish("evt_refused_1", "product.created").await;
    let items = run.wait_items(&format!("webhook_id={hook}"), 1).await;
    let d = run
        .api
        .get(&format!(
            "/api/v1/deliveries/{}",
            items[0]["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(d.status, 200, "{}", d.text);
    assert!(d.body["response"].is_null(), "{}", d.text);
    assert!(d.body["response_code"].is_null());
    assert!(
        d.body["error"].as_str().is_some_and(|e| e.contains("refused")),
        "{}",
        d.text
    );
    run.stop().await;
}

#[tokio::test]
async fn a_bulk_retry_after_an_outage_delivers_every_failed_event_once() {
    let receiver = Receiver::start_with(|_| Reply::status(503, "down for maintenance")).await;
    let other = Receiver::start_with(|_| Reply::status(500, "also down")).await;
    // Eight failures in a row would open each webhook's circuit and defer the last three
    // first attempts (the breaker is tested in tests/it/isolation.rs): kept closed here.
    let api =
        Api::start_in(hookrelay_shared::testing::TestEnv::with(|c| c.circuit_failures = 100).await).await;
    let hook = webhook(&api.env, "Outage", &receiver.url("/in"), &["license.*"]).await;
    let untouched = webhook(&api.env, "Other", &other.url("/in"), &["license.*"]).await;
    let run = Running::start(api).await;
    let events: Vec<String> = (0..8).map(|i| format!("evt_bulk_{i}")).collect();
    for id in &events {
        run.publish(id, "license.assigned").await;
    }
    run.wait_items(&format!("webhook_id={hook}&status=failed"), events.len())
        .await;
    run.wait_items(&format!("webhook_id={untouched}&status=failed"), events.len())
        .await;
    let before = receiver.count();

    receiver.set(|_| Reply::ok());
    let res = run
        .api
        .post(
            "/api/v1/deliveries/retry",
            Some(&json!({"webhook_id": hook, "category": "license"})),
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    assert_eq!(res.body["queued"], events.len());

    let ok = run
        .wait_items(&format!("webhook_id={hook}&status=success"), events.len())
        .await;
    assert!(ok.iter().all(|i| i["trigger"] == "manual"));
    // Each event arrived exactly once after the fix.
    assert!(receiver.wait_for(before + events.len(), WAIT).await);
    tokio::time::sleep(Duration::from_millis(500)).await; // room for a duplicate to show up
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for r in &receiver.received()[before..] {
        *per_event
            .entry(r.header("webhook-id").unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    for id in &events {
        assert_eq!(per_event.get(id), Some(&1), "{id}: {per_event:?}");
    }
    assert_eq!(receiver.count(), before + events.len());
    // The other webhook was not part of the filter.
    let other_manual = run.api.all_pages(&format!("webhook_id={untouched}"), 200).await;
    assert!(other_manual.iter().all(|i| i["trigger"] != "manual"));

    // Everything succeeded: a second bulk retry finds nothing to do.
    let res = run
        .api
        .post("/api/v1/deliveries/retry", Some(&json!({"webhook_id": hook})))
        .await;
    assert_eq!(res.body["queued"], 0, "{}", res.text);
    run.stop().await;
}
