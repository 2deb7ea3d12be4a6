//! The system under test: API, dispatcher and scheduler in-process on a fresh `TestEnv`, and
//! the API calls the browser scenarios compare the pages with.

use std::{net::SocketAddr, time::Duration};

use hookrelay_shared::{
    testing::{TestEnv, eventually},
    tokens::{self, Role},
    webhooks::{self, NewWebhook, Webhook},
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use super::WAIT;

/// API, dispatcher and scheduler on a fresh environment, as `hookrelay up` runs them.
pub(super) struct System {
    pub(super) env: TestEnv,
    pub(super) base: String,
    pub(super) listener: Option<TcpListener>,
    pub(super) shutdown: CancellationToken,
    pub(super) tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    pub(super) channel: lapin::Channel,
    pub(super) http: reqwest::Client,
}

impl System {
    /// A fresh environment; automatic retries are off so that only the page's retries resend.
    /// Nothing runs until [`System::run`], so webhooks made before it are loaded at start-up
    /// (no race with the dispatcher's change listener).
    pub(super) async fn new() -> Self {
        let env = TestEnv::with(|c| c.retry_max = 0).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the API");
        let base = format!("http://{}", listener.local_addr().expect("API address"));
        let channel = env.channel().await;
        Self {
            env,
            base,
            listener: Some(listener),
            shutdown: CancellationToken::new(),
            tasks: vec![],
            channel,
            http: reqwest::Client::new(),
        }
    }

    /// Starts the API, a dispatcher and a scheduler, as `hookrelay up` does.
    pub(super) async fn run(&mut self) {
        let listener = self.listener.take().expect("run once");
        let ctx = self.env.context();
        let stop = &self.shutdown;
        self.tasks = vec![
            tokio::spawn(hookrelay_query_api::run(ctx.clone(), listener, stop.clone())),
            tokio::spawn(hookrelay_dispatcher::run(ctx.clone(), stop.clone())),
            tokio::spawn(hookrelay_scheduler::run(ctx, stop.clone())),
        ];
        let up = eventually(WAIT, || async {
            self.http
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(up, "the query API at {} never became ready", self.base);
    }

    pub(super) async fn token(&self, role: Role) -> String {
        tokens::create(&self.env.db, &format!("browser test {}", role.as_str()), role)
            .await
            .expect("token created")
            .0
    }

    pub(super) async fn webhook(&self, name: &str, url: &str, patterns: &[&str]) -> Webhook {
        let new = NewWebhook {
            name: name.into(),
            url: url.into(),
            event_types: patterns.iter().map(|p| p.to_string()).collect(),
            enabled: true,
            retry_policy: None,
            secret: None,
            max_in_flight: None,
            rate_limit: None,
            ..Default::default()
        };
        webhooks::create(&self.env.db, new)
            .await
            .expect("webhook created")
            .0
    }

    pub(super) async fn publish(&self, event_type: &str, data: Value) {
        let body = json!({"type": event_type, "data": data});
        self.env
            .publish_raw(&self.channel, event_type, body.to_string().as_bytes())
            .await;
    }

    /// `GET /api/v1{path}` as `token`; panics unless 200.
    pub(super) async fn api(&self, token: &str, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}/api/v1{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("API reachable");
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// `method /api/v1{path}` with a JSON `body` as `token`; panics unless 2xx.
    pub(super) async fn call(&self, method: reqwest::Method, token: &str, path: &str, body: Value) -> Value {
        let r = self
            .http
            .request(method.clone(), format!("{}/api/v1{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("API reachable");
        let status = r.status();
        let out: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {out}");
        out
    }

    /// Every item of the delivery log for `params`, page by page, as the API gives them.
    pub(super) async fn pages(&self, token: &str, params: &str) -> Vec<Vec<Value>> {
        let mut pages = vec![];
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/deliveries?{params}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={}", urlencode(c)));
            }
            let page = self.api(token, &path).await;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            cursor = page["next_cursor"].as_str().map(str::to_owned);
            if !items.is_empty() || pages.is_empty() {
                pages.push(items);
            }
            if cursor.is_none() || pages.len() > 50 {
                return pages;
            }
        }
    }

    /// Waits until the log holds at least `n` attempts.
    pub(super) async fn wait_for_attempts(&self, token: &str, n: usize) {
        let ok = eventually(WAIT, || async {
            self.api(token, "/deliveries?limit=200").await["items"]
                .as_array()
                .is_some_and(|a| a.len() >= n)
        })
        .await;
        assert!(ok, "the log never reached {n} attempts");
    }

    pub(super) async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
        self.env.cleanup().await;
    }
}

pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An address nothing listens on (yet): an endpoint that is down.
pub(super) fn unused_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}
