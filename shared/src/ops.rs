//! The operations server of a dispatcher or scheduler running alone (`HOOKRELAY_METRICS_ADDR`):
//! `GET /metrics`, `GET /healthz` and `GET /readyz`, the same routes the query API serves.
//!
//! Scraping is cheap by design: `/metrics` only encodes the in-memory registry (no SQL, no
//! Redis). `/readyz` probes each dependency with a short timeout, so a hung dependency makes
//! the probe answer 503 quickly instead of hanging the kubelet or the load balancer.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{Context, health, metrics};

/// The routes of the operations server.
pub fn router(ctx: Context) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(ctx)
}

/// Binds `addr` and serves the operations routes until `shutdown` is cancelled.
pub async fn serve(ctx: Context, addr: SocketAddr, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = bind(addr).await?;
    serve_on(ctx, listener, shutdown).await
}

/// Binds `addr` first (so a port taken is a start-up error, and port 0 resolves), then serves
/// in a background task. Returns the bound address and the task.
pub async fn spawn(
    ctx: Context,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, JoinHandle<anyhow::Result<()>>)> {
    let listener = bind(addr).await?;
    let local = listener
        .local_addr()
        .context("HOOKRELAY_METRICS_ADDR: cannot read the bound address")?;
    let task = tokio::spawn(serve_on(ctx, listener, shutdown));
    Ok((local, task))
}

/// Serves the operations routes on an already bound listener until `shutdown` is cancelled.
pub async fn serve_on(
    ctx: Context,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr().ok();
    tracing::info!(addr = ?addr, "operations server listening (/metrics, /healthz, /readyz)");
    axum::serve(listener, router(ctx))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("operations server failed")
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("HOOKRELAY_METRICS_ADDR: cannot listen on {addr}"))
}

async fn metrics_handler(State(ctx): State<Context>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        ctx.metrics.render(),
    )
        .into_response()
}

/// The process is up and its runtime answers; dependencies are `/readyz`'s business, so a
/// RabbitMQ outage never makes an orchestrator restart a process that would recover by itself.
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The body of `/readyz`: each dependency's state and, when not ready, which are down.
#[derive(Debug, Serialize)]
pub struct ReadyBody {
    pub status: &'static str,
    pub postgres: bool,
    pub redis: bool,
    pub rabbitmq: bool,
    pub down: Vec<&'static str>,
}

impl From<health::Readiness> for ReadyBody {
    fn from(r: health::Readiness) -> Self {
        let down: Vec<&'static str> = [
            ("postgres", r.postgres),
            ("redis", r.redis),
            ("rabbitmq", r.rabbitmq),
        ]
        .into_iter()
        .filter_map(|(name, up)| (!up).then_some(name))
        .collect();
        Self {
            status: if down.is_empty() { "ready" } else { "not ready" },
            postgres: r.postgres,
            redis: r.redis,
            rabbitmq: r.rabbitmq,
            down,
        }
    }
}

async fn readyz(State(ctx): State<Context>) -> Response {
    let body = ReadyBody::from(health::check(&ctx).await);
    if body.down.is_empty() {
        (StatusCode::OK, Json(body)).into_response()
    } else {
        tracing::warn!(down = ?body.down, "not ready");
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::postgres::PgPoolOptions;

    use super::*;
    use crate::{Config, metrics::Metrics};

    /// A context whose every dependency is unreachable (port 1 refuses at once), so these
    /// tests need no running service.
    fn unreachable_context() -> Context {
        let config = Config {
            database_url: "postgres://postgres@127.0.0.1:1/none".into(),
            redis_url: "redis://127.0.0.1:1/0".into(),
            amqp_url: "amqp://guest:guest@127.0.0.1:1/%2f".into(),
            ..Config::default()
        };
        let db = PgPoolOptions::new()
            .acquire_timeout(Duration::from_millis(500))
            .connect_lazy(&config.database_url)
            .expect("a valid URL");
        Context::new(config, db, Metrics::new())
    }

    async fn started(ctx: Context) -> (String, CancellationToken, JoinHandle<anyhow::Result<()>>) {
        crate::install_crypto_provider();
        let stop = CancellationToken::new();
        let (addr, task) = spawn(ctx, SocketAddr::from(([127, 0, 0, 1], 0)), stop.clone())
            .await
            .expect("binds port 0");
        (format!("http://{addr}"), stop, task)
    }

    #[tokio::test]
    async fn metrics_are_served_in_the_openmetrics_format() {
        let ctx = unreachable_context();
        ctx.metrics.deliveries_exhausted.inc();
        let (base, stop, task) = started(ctx).await;
        let resp = reqwest::get(format!("{base}/metrics"))
            .await
            .expect("GET /metrics");
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some(metrics::CONTENT_TYPE)
        );
        let text = resp.text().await.expect("body");
        assert!(text.contains("hookrelay_deliveries_exhausted_total 1"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        stop.cancel();
        task.await.expect("joins").expect("stops cleanly");
    }

    #[tokio::test]
    async fn healthz_is_ok_even_when_every_dependency_is_down() {
        let (base, stop, task) = started(unreachable_context()).await;
        let resp = reqwest::get(format!("{base}/healthz"))
            .await
            .expect("GET /healthz");
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(body["status"], "ok");
        stop.cancel();
        task.await.expect("joins").expect("stops cleanly");
    }

    #[tokio::test]
    async fn readyz_is_503_and_names_every_dependency_that_is_down() {
        let (base, stop, task) = started(unreachable_context()).await;
        let resp = reqwest::get(format!("{base}/readyz")).await.expect("GET /readyz");
        assert_eq!(resp.status(), 503);
        let body: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(body["status"], "not ready");
        assert_eq!(body["postgres"], false);
        assert_eq!(body["redis"], false);
        assert_eq!(body["rabbitmq"], false);
        assert_eq!(body["down"], serde_json::json!(["postgres", "redis", "rabbitmq"]));
        stop.cancel();
        task.await.expect("joins").expect("stops cleanly");
    }

    #[tokio::test]
    async fn a_taken_port_is_an_error_naming_the_key() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let err = serve(unreachable_context(), addr, CancellationToken::new())
            .await
            .expect_err("the port is taken");
        assert!(format!("{err:#}").contains("HOOKRELAY_METRICS_ADDR"), "{err:#}");
    }

    #[test]
    fn ready_body_lists_only_what_is_down() {
        let body = ReadyBody::from(health::Readiness {
            postgres: true,
            redis: false,
            rabbitmq: true,
        });
        assert_eq!(body.down, vec!["redis"]);
        assert_eq!(body.status, "not ready");
        let all_up = ReadyBody::from(health::Readiness {
            postgres: true,
            redis: true,
            rabbitmq: true,
        });
        assert!(all_up.down.is_empty());
        assert_eq!(all_up.status, "ready");
    }
}
