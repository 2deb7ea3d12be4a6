//! The query API: the delivery log, manual and bulk retries, webhooks, tokens, OpenAPI,
//! health and metrics, plus the admin page's routes. Stateless: any number of replicas can
//! serve behind a load balancer, and it never talks to a webhook endpoint itself (a retry is a
//! job for a dispatcher).

pub mod activity;
pub mod admin;
pub mod auth;
pub mod bulk;
pub mod cursor;
pub mod deliveries;
pub mod error;
pub mod event_types;
pub mod extract;
pub mod health;
pub mod ops;
pub mod problems;
pub mod publisher;
pub mod retries;
pub mod serve;
pub mod settings;
pub mod state;
pub mod stats;
pub mod tokens;
pub mod webhook_test;
pub mod webhooks;

use std::sync::Arc;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{StatusCode, header},
    middleware,
    response::IntoResponse,
    routing::get,
};
use hookrelay_shared::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::{catch_panic::CatchPanicLayer, timeout::TimeoutLayer, trace::TraceLayer};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
};
use utoipa_axum::{router::OpenApiRouter, routes};

pub use state::AppState;

/// Largest request body accepted (a bigger one is a 413 problem).
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hookrelay",
        description = "Webhook delivery: the delivery log, retries, webhooks, API tokens, settings and the activity log. \
                       Errors are application/problem+json.",
    ),
    components(schemas(error::Problem)),
    tags(
        (name = "deliveries", description = "The delivery log (one item per attempt) and retries; admin role"),
        (name = "webhooks", description = "Webhook management; admin role"),
        (name = "tokens", description = "API tokens; owner role"),
        (name = "portal", description = "Event types seen, settings (read: admin, change: owner) and the activity log; admin role"),
        (name = "operations", description = "Health, readiness and metrics; no token"),
    )
)]
struct ApiDoc;

/// The bearer scheme, and its requirement on every operation that can answer 401 (those that
/// list `NeedsToken`, `NeedsAdmin` or `NeedsOwner`); the others (health, readiness, metrics)
/// are public. Applied once the routes' operations are in the document.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
                &mut item.query,
            ];
            let operations = operations
                .into_iter()
                .flatten()
                .chain(item.additional_operations.values_mut());
            for op in operations.filter(|op| op.responses.responses.contains_key("401")) {
                op.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token (`hookrelay tokens create`)"))
                    .build(),
            ),
        );
    }
}

/// The API routes with their OpenAPI document, generated from the handlers' annotations.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(deliveries::log::list))
        .routes(routes!(deliveries::detail::detail))
        .routes(routes!(retries::retry_one))
        .routes(routes!(retries::retry_bulk))
        .routes(routes!(retries::bulk_job))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhook_test::send))
        .routes(routes!(stats::get))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(tokens::me))
        .routes(routes!(event_types::list))
        .routes(routes!(settings::get, settings::update))
        .routes(routes!(activity::list))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics_text))
        .split_for_parts();
    BearerAuth.modify(&mut doc);
    (routes, doc)
}

/// The OpenAPI 3 document of every route, as JSON.
pub fn openapi_json() -> String {
    let (_, doc) = api();
    doc.to_pretty_json().unwrap_or_else(|_| "{}".into())
}

/// The whole HTTP surface: `/api/v1/*`, the admin page, `/healthz`, `/readyz`, `/metrics`.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = api();
    let doc: Arc<str> = doc.to_pretty_json().unwrap_or_else(|_| "{}".into()).into();
    let timeout = state.request_timeout;
    routes
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], doc.to_string()).into_response() }
            }),
        )
        .merge(admin::router())
        .fallback(ops::not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        // A bug that panics a handler answers a 500 problem instead of dropping the connection.
        .layer(CatchPanicLayer::custom(error::panic_response))
        // 503 (not 408): the server, not the client, was too slow.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(middleware::from_fn_with_state(
            state.in_flight.clone(),
            ops::shed_load,
        ))
        .layer(middleware::from_fn(ops::problem_for_bare_errors))
        .layer(middleware::from_fn_with_state(state.clone(), ops::count_requests))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves the API on `listener` and runs the bulk-retry worker until `shutdown` is cancelled,
/// then lets in-flight requests and the worker's current chunk finish within the grace period.
pub async fn run(ctx: Context, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_with(AppState::new(ctx), listener, shutdown).await
}

/// [`run`] with a state of one's own (tests: a short header-read timeout, a small limit).
pub async fn run_with(
    state: AppState,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let grace = state.ctx.config.shutdown_grace.0;
    let app = router(state.clone());
    let worker = tokio::spawn(bulk::run_worker(
        state.clone(),
        state.bulk_wakeup.clone(),
        shutdown.clone(),
    ));
    tracing::info!(addr = ?listener.local_addr().ok(), "query API listening");
    serve::serve(listener, app, state.header_read_timeout, shutdown.clone(), grace).await;
    state.tasks.close();
    if tokio::time::timeout(grace, state.tasks.wait()).await.is_err() {
        tracing::warn!("background tasks still running at the end of the grace period");
    }
    // The worker stops between chunks and hands its job back; whatever is left is continued
    // by another replica, or by this one after a restart.
    if tokio::time::timeout(grace, worker).await.is_err() {
        tracing::warn!("the bulk-retry worker did not stop within the grace period");
    }
    state.publisher.close().await;
    state.log_db.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request, routing::get};
    use tower::ServiceExt;
    use tower_http::catch_panic::CatchPanicLayer;

    #[tokio::test]
    async fn a_panicking_handler_answers_a_500_problem() {
        let app: axum::Router = axum::Router::new()
            .route(
                "/boom",
                get(|| async {
                    if true {
                        panic!("a bug");
                    }
                    "unreachable"
                }),
            )
            .layer(CatchPanicLayer::custom(crate::error::panic_response));
        let req = Request::get("/boom").body(Body::empty()).expect("request");
        let res = app
            .oneshot(req)
            .await
            .expect("a response, not a dropped connection");
        assert_eq!(res.status(), 500);
        assert_eq!(
            res.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some(crate::error::PROBLEM_JSON)
        );
        let body = axum::body::to_bytes(res.into_body(), 64 * 1024)
            .await
            .expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["status"], 500);
        assert!(!v["detail"].as_str().unwrap_or_default().contains("a bug"), "{v}");
    }
}

/// What schemathesis (scripts/schemathesis.sh) found wrong in the OpenAPI document.
#[cfg(test)]
mod openapi_tests {
    use std::collections::HashSet;

    use serde_json::Value;

    fn doc() -> Value {
        serde_json::from_str(&crate::openapi_json()).expect("the document is JSON")
    }

    fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                out.push((method.to_uppercase(), path.clone(), op));
            }
        }
        out
    }

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    fn param<'a>(op: &'a Value, name: &str) -> &'a Value {
        op["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .unwrap_or_else(|| panic!("parameter {name} is documented"))
    }

    #[test]
    fn api_operations_need_the_bearer_token_and_operations_ones_none() {
        let doc = doc();
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        for (method, path, op) in operations(&doc) {
            let security = &op["security"];
            if path.starts_with("/api/v1/") {
                assert_eq!(security, &serde_json::json!([{"bearer": []}]), "{method} {path}");
            } else {
                assert!(security.is_null(), "{method} {path}: {security}");
            }
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = doc();
        let mut seen = HashSet::new();
        for (method, path, op) in operations(&doc) {
            let id = op["operationId"].as_str().expect("an operationId").to_owned();
            assert!(
                seen.insert(id.clone()),
                "{method} {path}: operationId {id} is used twice"
            );
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = doc();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let pointer = r.strip_prefix('#').expect("a local reference");
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }

    #[test]
    fn parameter_bounds_are_documented_as_enforced() {
        let doc = doc();
        let log = &doc["paths"]["/api/v1/deliveries"]["get"];
        let code = &param(log, "response_code")["schema"];
        assert_eq!(
            (&code["minimum"], &code["maximum"]),
            (&Value::from(100), &Value::from(599))
        );
        for (op, name) in [
            (log, "limit"),
            (&doc["paths"]["/api/v1/webhooks"]["get"], "limit"),
        ] {
            let s = &param(op, name)["schema"];
            assert_eq!(
                (&s["minimum"], &s["maximum"]),
                (&Value::from(1), &Value::from(200)),
                "{s}"
            );
        }
        for name in ["status", "sort", "order"] {
            assert!(
                param(log, name)["schema"]["enum"].is_array(),
                "{name} lists its values"
            );
        }
    }

    #[test]
    fn json_bodies_document_413_and_415_and_metrics_its_content_type() {
        let doc = doc();
        for (method, path, op) in operations(&doc) {
            let json_body = op["requestBody"]["content"]["application/json"].is_object();
            if json_body && path != "/api/v1/webhooks/{id}/rotate-secret" {
                for status in ["413", "415"] {
                    assert!(op["responses"][status].is_object(), "{method} {path}: {status}");
                }
            }
        }
        let metrics = &doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
        assert!(
            metrics[hookrelay_shared::metrics::CONTENT_TYPE].is_object(),
            "{metrics}"
        );
    }
}
