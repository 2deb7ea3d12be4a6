//! Every bad input gets a 4xx problem+json naming what is wrong, never a 500.

use reqwest::Method;
use serde_json::json;

use crate::support::{Api, now_us, seed_attempt, seed_delivery, webhook};

#[tokio::test]
async fn bad_log_parameters_are_4xx_problems_naming_the_parameter() {
    let api = Api::start().await;
    let hook = webhook(&api.env, "Billing", "http://127.0.0.1:9/x", &["*"]).await;
    let d = seed_delivery(&api.env, hook, "license.assigned", "failed").await;
    for _ in 0..3 {
        seed_attempt(&api.env, &d, "failed", Some(500), now_us()).await;
    }
    let page = api.get("/api/v1/deliveries?limit=1&sort=status").await;
    let status_cursor = page.body["next_cursor"].as_str().expect("cursor").to_owned();
    let cases: Vec<(String, &str)> = vec![
        ("cursor=notacursor".into(), "cursor"),
        ("cursor=eyJzIjoiYXR0ZW1wdGVkX2F0In0".into(), "cursor"), // valid base64 JSON, wrong content
        (format!("cursor={status_cursor}"), "cursor"),           // made for another sort
        (format!("cursor={status_cursor}&sort=status&order=asc"), "cursor"),
        ("since=yesterday".into(), "since"),
        ("until=2026-13-45T99:00:00Z".into(), "until"),
        (
            "since=2026-11-27T10:00:00Z&until=2026-11-26T10:00:00Z".into(),
            "until",
        ),
        ("sort=size".into(), "sort"),
        ("sort=attempted_at;DROP TABLE attempts".into(), "sort"),
        ("order=sideways".into(), "order"),
        ("limit=0".into(), "limit"),
        ("limit=1000".into(), "limit"),
        ("limit=-1".into(), "limit"),
        ("limit=ten".into(), "limit"),
        ("status=ok".into(), "status"),
        ("webhook_id=42".into(), "webhook_id"),
        ("response_code=abc".into(), "response_code"),
        ("response_code=99999999999".into(), "response_code"),
        ("event_type=NOT%20A%20TYPE".into(), "event_type"),
        ("category=Lic%25".into(), "category"),
        (format!("q={}", "x".repeat(300)), "q"),
        ("limit=1&limit=2".into(), "query string"),
        ("q=a%00b".into(), "q"),
    ];
    for (query, param) in cases {
        let res = api.get(&format!("/api/v1/deliveries?{query}")).await;
        assert!(
            res.status == 400 || res.status == 422,
            "{query}: {} {}",
            res.status,
            res.text
        );
        res.assert_problem(res.status.as_u16(), param);
    }
    // SQL and LIKE metacharacters in q are data, not syntax: 200 with no matches.
    for q in [
        "'%3B%20DROP%20TABLE%20attempts%3B--",
        "%25%25",
        "_",
        "%5C",
        "\"",
        "%E2%80%AE",
    ] {
        let res = api.get(&format!("/api/v1/deliveries?q={q}")).await;
        assert_eq!(res.status, 200, "q={q}: {}", res.text);
        assert_eq!(res.body["items"].as_array().map(Vec::len), Some(0), "q={q}");
    }
    // Non-UUID ids in paths.
    for path in [
        "/api/v1/deliveries/42",
        "/api/v1/deliveries/'%20OR%201=1",
        "/api/v1/webhooks/nope",
    ] {
        api.get(path).await.assert_problem(400, "id");
    }
    api.post("/api/v1/deliveries/not-a-uuid/retry", None)
        .await
        .assert_problem(400, "id");
    // Unknown routes and methods are problems too.
    api.get("/api/v1/nothing-here").await.assert_problem(404, "route");
    api.call(Method::PUT, "/api/v1/deliveries", Some(&api.admin.clone()), None)
        .await
        .assert_problem(405, "PUT");
    api.stop().await;
}

#[tokio::test]
async fn bad_bodies_are_4xx_problems_never_500() {
    let api = Api::start().await;
    let admin = api.admin.clone();
    let send_raw = |path: &'static str, ct: &'static str, body: Vec<u8>| {
        let req = api
            .client
            .post(format!("{}{path}", api.base))
            .bearer_auth(&admin)
            .header("content-type", ct)
            .body(body);
        async move { Api::read(req.send().await.expect("sent")).await }
    };
    // Invalid JSON.
    send_raw("/api/v1/webhooks", "application/json", b"{\"name\": ".to_vec())
        .await
        .assert_problem(400, "JSON");
    send_raw(
        "/api/v1/deliveries/retry",
        "application/json",
        b"{\"since\": }".to_vec(),
    )
    .await
    .assert_problem(400, "JSON");
    // Not JSON at all.
    send_raw("/api/v1/webhooks", "text/plain", b"hello".to_vec())
        .await
        .assert_problem(415, "content-type");
    // Oversized (2 MiB).
    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(2 * 1024 * 1024));
    send_raw("/api/v1/webhooks", "application/json", big.into_bytes())
        .await
        .assert_problem(413, "limit");
    // Wrong shapes and values name the field.
    let cases = [
        (
            "/api/v1/webhooks",
            json!({"url": "http://x.test", "event_types": ["*"]}),
            "name",
        ),
        (
            "/api/v1/webhooks",
            json!({"name": "a", "url": "ftp://x.test", "event_types": ["*"]}),
            "url",
        ),
        (
            "/api/v1/webhooks",
            json!({"name": "a", "url": "http://u:p@x.test", "event_types": ["*"]}),
            "url",
        ),
        (
            "/api/v1/webhooks",
            json!({"name": "a", "url": "http://x.test", "event_types": ["Bad Type"]}),
            "event_types",
        ),
        (
            "/api/v1/webhooks",
            json!({"name": "a", "url": "http://x.test", "event_types": []}),
            "event_types",
        ),
        (
            "/api/v1/webhooks",
            json!({"name": "", "url": "http://x.test", "event_types": ["*"]}),
            "name",
        ),
        (
            "/api/v1/webhooks",
            json!({"name": "a", "url": "http://x.test", "event_types": ["*"], "secret": "short"}),
            "secret",
        ),
        (
            "/api/v1/webhooks",
            json!({"name": "a", "url": "http://x.test", "event_types": ["*"], "extra": 1}),
            "extra",
        ),
        (
            "/api/v1/webhooks",
            json!({"name": 5, "url": "http://x.test", "event_types": ["*"]}),
            "name",
        ),
        (
            "/api/v1/webhooks",
            json!({"name": "nul\u{0}byte", "url": "http://x.test", "event_types": ["*"]}),
            "NUL",
        ),
        ("/api/v1/deliveries/retry", json!([1, 2]), "request body"),
        (
            "/api/v1/webhooks",
            json!({"name": 5, "url": "http://x.test", "event_types": ["*"]}),
            "name",
        ),
        ("/api/v1/deliveries/retry", json!({"since": "last week"}), "since"),
        (
            "/api/v1/deliveries/retry",
            json!({"webhook_id": "nope"}),
            "webhook_id",
        ),
        ("/api/v1/deliveries/retry", json!({"status": "maybe"}), "status"),
        ("/api/v1/deliveries/retry", json!({"category": "A B"}), "category"),
        ("/api/v1/deliveries/retry", json!({"colour": "red"}), "colour"),
    ];
    for (path, body, field) in cases {
        let res = api.post(path, Some(&body)).await;
        assert!(
            res.status == 400 || res.status == 422,
            "{path} {body}: {} {}",
            res.status,
            res.text
        );
        res.assert_problem(res.status.as_u16(), field);
    }
    let owner = api.owner.clone();
    api.call(
        Method::POST,
        "/api/v1/tokens",
        Some(&owner),
        Some(&json!({"name": "x", "role": "god"})),
    )
    .await
    .assert_problem(422, "role");
    api.stop().await;
}

#[tokio::test]
async fn times_out_of_range_in_utc_are_4xx_problems_not_dropped_connections() {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let api = Api::start().await;
    // Each is a valid RFC 3339 time whose UTC lies past year 9999 or before year 1.
    let extremes = [
        "9999-12-31T23:59:59-23:59",
        "0000-01-01T00:00:00%2B23:59",
        "-9999-01-01T00:00:00Z",
    ];
    for t in extremes {
        for param in ["since", "until"] {
            let res = api.get(&format!("/api/v1/deliveries?{param}={t}")).await;
            res.assert_problem(400, param);
        }
    }
    for t in ["9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+23:59"] {
        for param in ["since", "until"] {
            let res = api
                .post("/api/v1/deliveries/retry", Some(&json!({ param: t })))
                .await;
            assert!(
                res.status == 400 || res.status == 422,
                "{param}={t}: {}",
                res.text
            );
            res.assert_problem(res.status.as_u16(), param);
        }
    }
    // A cursor (well-formed, for this sort) whose time is the start of the time crate's range.
    let t = time::Date::MIN.midnight().assume_utc().unix_timestamp_nanos() / 1000;
    let cursor = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"s":"attempted_at","o":"desc","t":{t},"i":"00000000-0000-0000-0000-000000000000"}}"#
    ));
    api.get(&format!("/api/v1/deliveries?cursor={cursor}"))
        .await
        .assert_problem(400, "cursor");
    // The server is still up and answering.
    assert_eq!(api.get("/api/v1/deliveries").await.status, 200);
    api.stop().await;
}
