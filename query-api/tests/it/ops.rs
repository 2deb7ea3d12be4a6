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
