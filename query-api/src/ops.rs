//! Operations routes (`/healthz`, `/readyz`, `/metrics`) and the middleware every request
//! passes: request counting and turning bare error responses (unknown route, wrong method,
//! timeout) into problem+json.

use axum::{
    Json,
    extract::{MatchedPath, Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::sync::Arc;

use hookrelay_shared::{event::rfc3339, health, metrics};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use utoipa::ToSchema;

use crate::{
    error::problem_response,
    state::{AppState, READY_CACHE},
};

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Up", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Which dependency is reachable.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessOut {
    pub ready: bool,
    pub postgres: bool,
    pub redis: bool,
    pub rabbitmq: bool,
    /// When the dependencies were checked (answers are reused for up to 2 s).
    pub checked_at: String,
}

/// Readiness: PostgreSQL, Redis and RabbitMQ reachable right now.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Every dependency is reachable", body = ReadinessOut),
        (status = 503, description = "At least one is not (see which)", body = ReadinessOut),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<ReadinessOut>) {
    // One check at a time per replica, its answer reused for READY_CACHE: concurrent probes
    // wait for the check in progress instead of each opening connections.
    let (at, r) = {
        let mut cached = state.readiness.lock().await;
        match cached.as_ref() {
            Some((made, at, r)) if made.elapsed() < READY_CACHE => (*at, r.clone()),
            _ => {
                let r = health::check(&state.ctx).await;
                let at = OffsetDateTime::now_utc();
                *cached = Some((std::time::Instant::now(), at, r.clone()));
                (at, r)
            }
        }
    };
    let out = ReadinessOut {
        ready: r.ready(),
        postgres: r.postgres,
        redis: r.redis,
        rabbitmq: r.rabbitmq,
        checked_at: rfc3339(at),
    };
    let status = if out.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(out))
}

/// Prometheus metrics of this process.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "OpenMetrics text", body = String,
    content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
pub async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.ctx.metrics.render(),
    )
        .into_response()
}

/// A small fixed set of route classes, so the metric's label set stays bounded.
fn route_class(path: Option<&str>) -> &'static str {
    let Some(p) = path else { return "unmatched" };
    match p {
        "/api/v1/deliveries" => "deliveries_list",
        "/api/v1/deliveries/{id}" => "deliveries_detail",
        "/api/v1/deliveries/retry"
        | "/api/v1/deliveries/{id}/retry"
        | "/api/v1/deliveries/retry/{job_id}" => "deliveries_retry",
        "/api/v1/openapi.json" => "openapi",
        "/healthz" | "/readyz" | "/metrics" => "operations",
        p if p.starts_with("/api/v1/webhooks") => "webhooks",
        p if p.starts_with("/api/v1/tokens") || p == "/api/v1/me" => "tokens",
        p if p.starts_with("/admin") => "admin",
        "/api/v1/event-types" | "/api/v1/settings" | "/api/v1/activity" => "portal",
        _ => "other",
    }
}

fn status_class(s: StatusCode) -> &'static str {
    match s.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Counts every request in `hookrelay_http_requests_total{route_class,status_class}`.
pub async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let class = route_class(req.extensions().get::<MatchedPath>().map(MatchedPath::as_str));
    let res = next.run(req).await;
    state
        .ctx
        .metrics
        .api_requests
        .get_or_create(&[
            ("route_class", class),
            ("status_class", status_class(res.status())),
        ])
        .inc();
    res
}

/// Error responses that carry no body type of their own (axum's 404/405, the timeout layer's
/// 503) become problem+json, so API clients only ever parse one error format.
pub async fn problem_for_bare_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let res = next.run(req).await;
    let status = res.status();
    if status.as_u16() < 400 || res.headers().contains_key(header::CONTENT_TYPE) {
        return res;
    }
    let detail = match status {
        StatusCode::NOT_FOUND => "no such route; see /api/v1/openapi.json".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => format!("{method} is not allowed on this route"),
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => {
            tracing::warn!("request timed out");
            "the request took too long and was stopped".to_owned()
        }
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "request body: larger than the limit of {} bytes",
            crate::BODY_LIMIT_BYTES
        ),
        s => s.canonical_reason().unwrap_or("error").to_owned(),
    };
    let mut out = problem_response(status, detail);
    // Keep headers such as `allow` on a 405.
    for (k, v) in res.headers() {
        if k != header::CONTENT_LENGTH {
            out.headers_mut().entry(k).or_insert(v.clone());
        }
    }
    out
}

/// Load shedding: beyond the limit of requests in flight, a 503 problem at once (not a queue
/// that grows until every request times out). `/healthz` is never shed, so an overloaded
/// replica is not also restarted by its liveness probe.
pub async fn shed_load(State(limit): State<Arc<Semaphore>>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let Ok(_permit) = limit.try_acquire_owned() else {
        let mut res = problem_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is at its limit of requests in flight; try again shortly".into(),
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return res;
    };
    next.run(req).await
}

/// The fallback for unknown routes.
pub async fn not_found() -> Response {
    problem_response(
        StatusCode::NOT_FOUND,
        "no such route; see /api/v1/openapi.json".into(),
    )
}
