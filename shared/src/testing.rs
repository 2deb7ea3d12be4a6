//! Test support (feature `testing`): an isolated environment per test (its own database,
//! namespace and Redis prefix on the real services) and a real HTTP receiver on 127.0.0.1.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use sqlx::{Connection, Executor, PgPool, postgres::PgConnection};
use time::OffsetDateTime;

use crate::{Config, Context, amqp, db, metrics::Metrics};

/// The PostgreSQL server tests use (`HOOKRELAY_TEST_DATABASE_URL`, without a database name).
pub fn server_url() -> String {
    std::env::var("HOOKRELAY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh, isolated hookrelay environment on the real services.
pub struct TestEnv {
    pub config: Config,
    pub db: PgPool,
    pub metrics: Arc<Metrics>,
    pub names: amqp::Names,
    pub suffix: String,
}

impl TestEnv {
    /// A new database `hookrelay_t_<random>` (migrated), namespace `t_<random>` with its AMQP
    /// topology declared, private targets allowed (receivers live on 127.0.0.1).
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// Like [`TestEnv::new`], with a chance to adjust the config first.
    pub async fn with(adjust: impl FnOnce(&mut Config)) -> Self {
        crate::install_crypto_provider();
        let suffix = format!("{:016x}", rand::random::<u64>());
        let mut config = Config {
            database_url: format!("{}/hookrelay_t_{suffix}", server_url()),
            namespace: format!("t_{suffix}"),
            allow_private_targets: true,
            api_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Config::default()
        };
        if let Ok(url) = std::env::var("HOOKRELAY_AMQP_URL") {
            config.amqp_url = url;
        }
        if let Ok(url) = std::env::var("HOOKRELAY_REDIS_URL") {
            config.redis_url = url;
        }
        adjust(&mut config);
        let db = db::migrate(&config).await.expect("test database migrates");
        let names = amqp::Names::new(&config.namespace);
        let conn = amqp::connect(&config.amqp_url, "test")
            .await
            .expect("RabbitMQ is up");
        let ch = conn.create_channel().await.expect("channel");
        amqp::declare_topology(&ch, &names).await.expect("topology");
        amqp::declare_dead_queue(&conn, &names)
            .await
            .expect("dead-letter queue");
        amqp::close(&conn, 200, "ok").await;
        Self {
            config,
            db,
            metrics: Metrics::new(),
            names,
            suffix,
        }
    }

    /// The component context for this environment.
    pub fn context(&self) -> Context {
        Context::new(self.config.clone(), self.db.clone(), self.metrics.clone())
    }

    /// A confirm-mode channel on a new connection.
    pub async fn channel(&self) -> lapin::Channel {
        let conn = amqp::connect(&self.config.amqp_url, "test")
            .await
            .expect("RabbitMQ is up");
        amqp::confirm_channel(&conn).await.expect("channel")
    }

    /// Publishes a raw body to the events exchange.
    /// Takes every job now on `{ns}.deliveries` off the queue (tests that read what was fired
    /// without a dispatcher).
    pub async fn take_jobs(&self, channel: &lapin::Channel) -> Vec<crate::jobs::DeliveryJob> {
        let mut jobs = vec![];
        while let Some(msg) = channel
            .basic_get(
                self.names.deliveries_queue.as_str().into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .expect("basic.get")
        {
            jobs.push(serde_json::from_slice(&msg.delivery.data).expect("a delivery job"));
        }
        jobs
    }

    pub async fn publish_raw(&self, channel: &lapin::Channel, routing_key: &str, body: &[u8]) {
        amqp::publish_event(channel, &self.names, routing_key, body)
            .await
            .expect("published");
    }

    /// Removes the namespace's queues and the database (best effort).
    pub async fn cleanup(self) {
        if let Ok(conn) = amqp::connect(&self.config.amqp_url, "test").await
            && let Ok(ch) = conn.create_channel().await
        {
            for q in [
                &self.names.events_queue,
                &self.names.dead_queue,
                &self.names.deliveries_queue,
            ] {
                let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
            }
            let _ = ch
                .exchange_delete(self.names.events_exchange.as_str().into(), Default::default())
                .await;
        }
        if let Ok(client) = redis::Client::open(self.config.redis_url.as_str())
            && let Ok(mut con) = client.get_multiplexed_async_connection().await
        {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{{{}}}:*", self.config.namespace))
                .query_async(&mut con)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut con).await;
            }
        }
        self.db.close().await;
        if let Ok(mut admin) = PgConnection::connect(&format!("{}/postgres", server_url())).await {
            let sql = format!(
                "DROP DATABASE IF EXISTS \"hookrelay_t_{}\" WITH (FORCE)",
                self.suffix
            );
            let _ = admin.execute(sqlx::AssertSqlSafe(sql)).await;
        }
    }
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: OffsetDateTime,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether this request carries a Standard Webhooks signature (`webhook-id`,
    /// `webhook-timestamp`, `webhook-signature`) that `secret` verifies.
    pub fn signed_with(&self, secret: &crate::signature::Secret) -> bool {
        let ts = self
            .header("webhook-timestamp")
            .and_then(|t| t.parse::<i64>().ok());
        match (self.header("webhook-id"), ts, self.header("webhook-signature")) {
            (Some(id), Some(ts), Some(sig)) => crate::signature::verify(secret, id, ts, &self.body, sig),
            _ => false,
        }
    }
}

/// What the receiver answers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn ok() -> Self {
        Self::status(200, "ok")
    }
    pub fn status(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.into(),
            delay: Duration::ZERO,
            headers: vec![],
        }
    }
    pub fn sleep(delay: Duration) -> Self {
        Self { delay, ..Self::ok() }
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

type Behaviour = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

struct ReceiverState {
    received: Mutex<Vec<Received>>,
    behaviour: Mutex<Behaviour>,
}

/// A real HTTP server on 127.0.0.1 that records every request.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<ReceiverState>,
    stop: tokio_util::sync::CancellationToken,
}

impl Receiver {
    /// Starts a receiver answering `200 ok`.
    pub async fn start() -> Self {
        Self::start_with(|_| Reply::ok()).await
    }

    /// Starts a receiver whose answer to the n-th request (0-based) is `f(n)`.
    pub async fn start_with(f: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), f).await
    }

    /// Starts a receiver that answers `failure` to its first `failures` requests, then `200 ok`.
    pub async fn start_failing_first(failures: usize, failure: Reply) -> Self {
        Self::start_with(move |n| {
            if n < failures {
                failure.clone()
            } else {
                Reply::ok()
            }
        })
        .await
    }

    /// Starts a receiver on `addr` (e.g. the port of a receiver that was stopped, to bring an
    /// endpoint "back up" after downtime).
    pub async fn start_at(addr: SocketAddr, f: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(ReceiverState {
            received: Mutex::new(vec![]),
            behaviour: Mutex::new(Arc::new(f)),
        });
        let app = Router::new().fallback(handle).with_state(state.clone());
        let stop = tokio_util::sync::CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(s.cancelled_owned())
                .await;
        });
        Self { addr, state, stop }
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Changes what the receiver answers from now on.
    pub fn set(&self, f: impl Fn(usize) -> Reply + Send + Sync + 'static) {
        if let Ok(mut b) = self.state.behaviour.lock() {
            *b = Arc::new(f);
        }
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn count(&self) -> usize {
        self.state.received.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Waits until at least `n` requests arrived (false on timeout).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if self.count() >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.count() >= n
    }

    /// Stops accepting connections.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

async fn handle(State(state): State<Arc<ReceiverState>>, headers: HeaderMap, body: Bytes) -> Response {
    let n = {
        let Ok(mut r) = state.received.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        r.push(Received {
            headers,
            body,
            at: OffsetDateTime::now_utc(),
        });
        r.len() - 1
    };
    let behaviour: Option<Behaviour> = match state.behaviour.lock() {
        Ok(b) => Some(b.clone()),
        Err(_) => None,
    };
    let Some(behaviour) = behaviour else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let reply = behaviour(n);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK),
        reply.body,
    )
        .into_response();
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            axum::http::HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A webhook as the dispatcher holds it, stored nowhere: subscribed to `pattern`, pointed at a
/// closed local port, `max_in_flight` 1, everything else off or default. Unit tests and
/// benchmarks change the fields they need.
pub fn webhook(pattern: &str) -> crate::webhooks::Webhook {
    let now = OffsetDateTime::now_utc();
    crate::webhooks::Webhook {
        id: crate::ids::new_id(),
        name: "w".into(),
        url: "http://127.0.0.1:9/".into(),
        event_types: vec![pattern.into()],
        enabled: true,
        retry_policy: None,
        max_in_flight: 1,
        rate_limit: None,
        disabled_reason: None,
        disabled_at: None,
        filter: None,
        headers: Default::default(),
        signature_scheme: Default::default(),
        ordering: Default::default(),
        public_key: None,
        created_at: now,
        updated_at: now,
    }
}
