//! Operations routes and the OpenAPI document.

use crate::support::Api;

#[tokio::test]
async fn health_readiness_metrics_and_openapi_are_served() {
    let api = Api::start().await;
    let res = api
        .client
        .get(format!("{}/healthz", api.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 200);
    let res = Api::read(
        api.client
            .get(format!("{}/readyz", api.base))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["postgres"], true);
    assert_eq!(res.body["rabbitmq"], true);

    let _ = api.get("/api/v1/deliveries").await;
    let res = Api::read(
        api.client
            .get(format!("{}/metrics", api.base))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert!(
        res.content_type().starts_with("application/openmetrics-text"),
        "{}",
        res.content_type()
    );
    assert!(
        res.text
            .contains(r#"hookrelay_http_requests_total{route_class="deliveries_list",status_class="2xx"} 1"#),
        "{}",
        res.text
    );

    let res = Api::read(
        api.client
            .get(format!("{}/api/v1/openapi.json", api.base))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(res.status, 200);
    assert!(
        res.body["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        res.body["openapi"]
    );
    let paths = res.body["paths"].as_object().expect("paths");
    for p in [
        "/api/v1/deliveries",
        "/api/v1/deliveries/{id}",
        "/api/v1/deliveries/{id}/retry",
        "/api/v1/deliveries/retry",
        "/api/v1/deliveries/retry/{job_id}",
        "/api/v1/webhooks",
        "/api/v1/webhooks/{id}",
        "/api/v1/webhooks/{id}/rotate-secret",
        "/api/v1/tokens",
        "/api/v1/tokens/{id}",
    ] {
        assert!(paths.contains_key(p), "{p} missing from the OpenAPI document");
    }
    let params: Vec<&str> = paths["/api/v1/deliveries"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for name in [
        "q",
        "category",
        "event_type",
        "status",
        "webhook_id",
        "response_code",
        "since",
        "until",
        "sort",
        "order",
        "limit",
        "cursor",
    ] {
        assert!(params.contains(&name), "{name} not documented");
    }
    assert!(res.body["components"]["securitySchemes"]["bearer"].is_object());
    api.stop().await;
}

#[tokio::test]
async fn readiness_is_checked_at_most_every_two_seconds() {
    let api = Api::start().await;
    let ready = || async { api.get("/readyz").await };
    let first = ready().await;
    assert_eq!(first.status, 200, "{}", first.text);
    let at = first.body["checked_at"].as_str().expect("checked_at").to_owned();
    for _ in 0..20 {
        let again = ready().await;
        assert_eq!(again.body["checked_at"], at.as_str(), "reused within 2 s");
    }
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let later = ready().await;
    assert_eq!(later.status, 200);
    assert_ne!(later.body["checked_at"], at.as_str(), "checked again after 2 s");
    api.stop().await;
}

#[tokio::test]
async fn a_client_that_sends_half_a_request_line_is_disconnected_after_the_header_timeout() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = hookrelay_shared::testing::TestEnv::new().await;
    let api = Api::start_tuned(env, |s| s.header_read_timeout = Duration::from_secs(1)).await;
    let addr = api.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    slow.write_all(b"GET /healthz HT").await.expect("write");
    let started = Instant::now();
    let mut buf = vec![0u8; 1024];
    // The server closes the connection (possibly after a 408): read until EOF.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection was still open after 5 s");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "closed too early: {took:?}");
    // Well-behaved clients are still served.
    assert_eq!(api.get("/healthz").await.status, 200);
    api.stop().await;
}

#[tokio::test]
async fn beyond_the_limit_of_requests_in_flight_requests_get_a_503_problem_but_healthz_does_not() {
    let env = hookrelay_shared::testing::TestEnv::new().await;
    let api = Api::start_tuned(env, |s| {
        s.in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    })
    .await;
    let res = api.get("/api/v1/deliveries").await;
    res.assert_problem(503, "limit");
    assert_eq!(
        res.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_eq!(api.get("/healthz").await.status, 200);
    api.stop().await;
}
