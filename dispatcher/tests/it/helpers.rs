//! Starting a dispatcher in-process for a test, creating webhooks, and reading what was recorded.

use std::time::Duration;

use hookrelay_dispatcher::Dispatcher;
use hookrelay_shared::{
    Config,
    signature::Secret,
    testing::{TestEnv, eventually},
    webhooks::{self, NewWebhook, Webhook},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long any test waits for something to happen.
pub const WAIT: Duration = Duration::from_secs(20);

/// A dispatcher running in this process.
pub struct Running {
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Shuts it down and checks that it stopped cleanly.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let result = tokio::time::timeout(Duration::from_secs(40), self.task)
            .await
            .expect("the dispatcher stops within its grace period")
            .expect("the dispatcher task did not panic");
        result.expect("the dispatcher returns Ok on shutdown");
    }
}

/// A test environment adjusted by `adjust`.
pub async fn env_with(adjust: impl FnOnce(&mut Config)) -> TestEnv {
    TestEnv::with(adjust).await
}

/// Starts a dispatcher for `env` (create the webhooks first: the cache loads on start).
pub async fn start(env: &TestEnv) -> Running {
    let dispatcher = Dispatcher::build(env.context()).await.expect("dispatcher builds");
    let stop = CancellationToken::new();
    let task = tokio::spawn(dispatcher.run(stop.clone()));
    Running { stop, task }
}

/// Creates a webhook.
pub async fn webhook(
    env: &TestEnv,
    name: &str,
    url: &str,
    patterns: &[&str],
    enabled: bool,
) -> (Webhook, Secret) {
    webhooks::create(
        &env.db,
        NewWebhook {
            name: name.into(),
            url: url.into(),
            event_types: patterns.iter().map(|p| p.to_string()).collect(),
            enabled,
            ..Default::default()
        },
    )
    .await
    .map(|(w, keys)| (w, keys.secret.expect("a v1 webhook has a whsec_ secret")))
    .expect("webhook created")
}

/// One recorded attempt, as the tests look at it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub delivery_id: Uuid,
    pub event_id: String,
    pub attempt: i32,
    pub trigger: String,
    pub status: String,
    pub response_code: Option<i32>,
    pub response_body: Option<String>,
    pub response_body_truncated: bool,
    pub error: Option<String>,
    pub request_url: String,
    pub request_headers: serde_json::Value,
}

/// Every attempt made to one webhook, oldest first.
pub async fn attempts(env: &TestEnv, webhook_id: Uuid) -> Vec<AttemptRow> {
    sqlx::query_as(
        "SELECT delivery_id, event_id, attempt, trigger, status, response_code, response_body,
                response_body_truncated, error, request_url, request_headers
         FROM attempts WHERE webhook_id = $1 ORDER BY attempted_at, attempt",
    )
    .bind(webhook_id)
    .fetch_all(&env.db)
    .await
    .expect("attempts query")
}

/// Waits until `webhook_id` has at least `n` attempts recorded, and returns them.
pub async fn wait_attempts(env: &TestEnv, webhook_id: Uuid, n: usize) -> Vec<AttemptRow> {
    let ok = eventually(WAIT, || async { attempts(env, webhook_id).await.len() >= n }).await;
    let got = attempts(env, webhook_id).await;
    assert!(ok, "expected {n} attempts for webhook {webhook_id}, got {got:?}");
    got
}

/// A delivery's state, attempt count and whether it has a next attempt time.
pub async fn delivery_state(env: &TestEnv, delivery_id: Uuid) -> (String, i32, bool) {
    sqlx::query_as("SELECT state, attempt_count, next_attempt_at IS NOT NULL FROM deliveries WHERE id = $1")
        .bind(delivery_id)
        .fetch_one(&env.db)
        .await
        .expect("delivery exists")
}

/// How many deliveries `webhook_id` has.
pub async fn delivery_count(env: &TestEnv, webhook_id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE webhook_id = $1")
        .bind(webhook_id)
        .fetch_one(&env.db)
        .await
        .expect("count")
}

/// An event body of the contract.
pub fn event(id: &str, event_type: &str) -> Vec<u8> {
    serde_json::json!({"id": id, "type": event_type, "data": {"n": 1}})
        .to_string()
        .into_bytes()
}

/// The value of a counter family member in the metrics text, 0 when absent.
pub fn metric(env: &TestEnv, line_prefix: &str) -> f64 {
    env.metrics
        .render()
        .lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
