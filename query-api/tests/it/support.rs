//! Test helpers: the API served on 127.0.0.1:0 for a fresh `TestEnv`, tokens of every role,
//! and seeding of webhooks, events, deliveries and attempts straight into PostgreSQL.

use std::time::Duration;

use hookrelay_shared::{
    testing::TestEnv,
    tokens::{self, Role},
    webhooks::{self, NewWebhook},
};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::Value;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A running API with tokens of every role.
pub struct Api {
    pub env: TestEnv,
    pub base: String,
    pub client: reqwest::Client,
    pub viewer: String,
    pub admin: String,
    pub owner: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// A response: status, headers and the body parsed as JSON (Null when empty or not JSON).
pub struct Res {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Res {
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts this is a problem+json with `status` whose detail mentions `needle`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, needle: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(
            self.content_type(),
            "application/problem+json",
            "body: {}",
            self.text
        );
        assert_eq!(self.body["status"], status, "{}", self.text);
        assert!(
            self.body["title"].is_string() && self.body["type"].is_string(),
            "{}",
            self.text
        );
        let detail = self.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(needle),
            "detail {detail:?} should mention {needle:?}"
        );
    }
}

impl Api {
    pub async fn start() -> Self {
        Self::start_in(TestEnv::new().await).await
    }

    pub async fn start_in(env: TestEnv) -> Self {
        Self::start_tuned(env, |_| {}).await
    }

    /// An API whose state is adjusted first (a short header-read timeout, a small limit...).
    pub async fn start_tuned(env: TestEnv, adjust: impl FnOnce(&mut hookrelay_query_api::AppState)) -> Self {
        let mut t = vec![];
        for role in [Role::Viewer, Role::Admin, Role::Owner] {
            let (token, _) = tokens::create(&env.db, role.as_str(), role).await.expect("token");
            t.push(token);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let stop = CancellationToken::new();
        let mut state = hookrelay_query_api::AppState::new(env.context());
        adjust(&mut state);
        let task = tokio::spawn(hookrelay_query_api::run_with(state, listener, stop.clone()));
        let owner = t.pop().expect("owner");
        let admin = t.pop().expect("admin");
        let viewer = t.pop().expect("viewer");
        Self {
            env,
            base,
            client: reqwest::Client::new(),
            viewer,
            admin,
            owner,
            stop,
            task,
        }
    }

    /// Sends a request; `token` None sends no Authorization header.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Res {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        Self::read(req.send().await.expect("request sent")).await
    }

    pub async fn read(res: reqwest::Response) -> Res {
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Res {
            status,
            headers,
            body,
            text,
        }
    }

    /// GET with the admin token.
    pub async fn get(&self, path: &str) -> Res {
        self.call(Method::GET, path, Some(&self.admin.clone()), None)
            .await
    }

    /// POST `body` (or none) with the admin token.
    pub async fn post(&self, path: &str, body: Option<&Value>) -> Res {
        self.call(Method::POST, path, Some(&self.admin.clone()), body)
            .await
    }

    /// Creates a webhook over HTTP: `base` (its name, URL and event types) with the fields of
    /// `extra` added.
    pub async fn create_webhook(&self, mut base: Value, extra: Value) -> Res {
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        self.call(Method::POST, "/api/v1/webhooks", Some(&self.admin), Some(&base))
            .await
    }

    /// PATCHes webhook `id` with `body`, with the admin token.
    pub async fn patch_webhook(&self, id: &str, body: Value) -> Res {
        self.call(
            Method::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            Some(&self.admin),
            Some(&body),
        )
        .await
    }

    /// Every item of the log for `query` (without limit/cursor), following cursors.
    pub async fn all_pages(&self, query: &str, limit: u32) -> Vec<Value> {
        let mut out = vec![];
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let mut path = format!("/api/v1/deliveries?limit={limit}&{query}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let res = self.get(&path).await;
            assert_eq!(res.status, 200, "{path}: {}", res.text);
            out.extend(res.body["items"].as_array().expect("items").iter().cloned());
            match res.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
        panic!("more than 1000 pages");
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        self.env.cleanup().await;
    }
}

/// Creates a webhook through the shared crate.
pub async fn webhook(env: &TestEnv, name: &str, url: &str, patterns: &[&str]) -> Uuid {
    let (w, _) = webhooks::create(
        &env.db,
        NewWebhook {
            name: name.into(),
            url: url.into(),
            event_types: patterns.iter().map(|s| s.to_string()).collect(),
            enabled: true,
            ..Default::default()
        },
    )
    .await
    .expect("webhook created");
    w.id
}

/// A seeded delivery (with its event).
#[derive(Clone, Debug)]
pub struct SeededDelivery {
    pub id: Uuid,
    pub event_id: String,
    pub received_at: OffsetDateTime,
    pub webhook_id: Uuid,
    pub event_type: String,
    pub body: String,
}

/// A seeded attempt: what the log should show.
#[derive(Clone, Debug)]
pub struct SeededAttempt {
    pub id: Uuid,
    pub delivery_id: Uuid,
    pub webhook_id: Uuid,
    pub event_type: String,
    pub category: String,
    pub status: &'static str,
    pub response_code: Option<i32>,
    pub attempted_at: OffsetDateTime,
}

/// Now, truncated to microseconds (PostgreSQL's precision) so values compare exactly.
pub fn now_us() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000).expect("valid")
}

pub async fn seed_delivery(env: &TestEnv, webhook_id: Uuid, event_type: &str, state: &str) -> SeededDelivery {
    let received_at = now_us() - time::Duration::minutes(90);
    let event_id = format!("evt_{}", Uuid::now_v7().simple());
    let body = format!(
        r#"{{"id":"{event_id}","type":"{event_type}","timestamp":"2026-11-27T10:00:00Z","data":{{"n":1}}}}"#
    );
    let category = event_type.split('.').next().unwrap_or_default();
    sqlx::query("INSERT INTO event_types (event_type, category) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(event_type)
        .bind(category)
        .execute(&env.db)
        .await
        .expect("event type");
    sqlx::query(
        "INSERT INTO events (id, received_at, event_type, category, occurred_at, body) VALUES ($1, $2, $3, $4, $2, $5)",
    )
    .bind(&event_id)
    .bind(received_at)
    .bind(event_type)
    .bind(category)
    .bind(&body)
    .execute(&env.db)
    .await
    .expect("event");
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO deliveries (id, event_id, event_received_at, webhook_id, event_type, state, attempt_count, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, 0, CASE WHEN $6 IN ('pending', 'retrying') THEN now() + interval '1 hour' END)",
    )
    .bind(id)
    .bind(&event_id)
    .bind(received_at)
    .bind(webhook_id)
    .bind(event_type)
    .bind(state)
    .execute(&env.db)
    .await
    .expect("delivery");
    SeededDelivery {
        id,
        event_id,
        received_at,
        webhook_id,
        event_type: event_type.into(),
        body,
    }
}

/// Inserts one attempt of `d` (and bumps the delivery's attempt count).
pub async fn seed_attempt(
    env: &TestEnv,
    d: &SeededDelivery,
    status: &'static str,
    response_code: Option<i32>,
    attempted_at: OffsetDateTime,
) -> SeededAttempt {
    let id = Uuid::now_v7();
    let category = d.event_type.split('.').next().unwrap_or_default().to_owned();
    let attempt: i32 = sqlx::query_scalar(
        "UPDATE deliveries SET attempt_count = attempt_count + 1, last_attempt_at = $2
         WHERE id = $1 RETURNING attempt_count",
    )
    .bind(d.id)
    .bind(attempted_at)
    .fetch_one(&env.db)
    .await
    .expect("delivery updated");
    sqlx::query(
        "INSERT INTO attempts (id, delivery_id, event_id, event_received_at, webhook_id, event_type, category,
             attempt, trigger, status, request_url, request_headers, response_code, response_headers,
             response_body, response_body_truncated, error, duration_ms, attempted_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $8 = 1 THEN 'initial' ELSE 'automatic' END, $9,
             'http://example.test/hook', '{\"webhook-signature\": \"v1,abc\", \"content-type\": \"application/json\"}',
             $10, CASE WHEN $10 IS NULL THEN NULL ELSE '{\"content-type\": \"text/plain\"}'::jsonb END,
             CASE WHEN $10 IS NULL THEN NULL ELSE 'reply ' || $10 END, false,
             CASE WHEN $10 IS NULL THEN 'connection refused' WHEN $9 = 'failed' THEN 'HTTP ' || $10 END, 12, $11)",
    )
    .bind(id)
    .bind(d.id)
    .bind(&d.event_id)
    .bind(d.received_at)
    .bind(d.webhook_id)
    .bind(&d.event_type)
    .bind(&category)
    .bind(attempt)
    .bind(status)
    .bind(response_code)
    .bind(attempted_at)
    .execute(&env.db)
    .await
    .expect("attempt");
    SeededAttempt {
        id,
        delivery_id: d.id,
        webhook_id: d.webhook_id,
        event_type: d.event_type.clone(),
        category,
        status,
        response_code,
        attempted_at,
    }
}

/// The ids of a list of items.
pub fn ids(items: &[Value]) -> Vec<Uuid> {
    items
        .iter()
        .map(|i| {
            i["id"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .expect("item id")
        })
        .collect()
}
