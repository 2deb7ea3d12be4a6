//! The auth matrix: no token, an unknown token, and each role against every route.

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::support::{Api, seed_attempt, seed_delivery, webhook};

#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Need {
    Viewer,
    Admin,
    Owner,
}

#[tokio::test]
async fn every_route_checks_the_token_and_the_role() {
    let api = Api::start().await;
    let hook = webhook(&api.env, "Matrix", "http://127.0.0.1:9/x", &["*"]).await;
    let d = seed_delivery(&api.env, hook, "license.assigned", "failed").await;
    let a = seed_attempt(&api.env, &d, "failed", Some(500), crate::support::now_us()).await;
    let missing = Uuid::now_v7();
    let new_hook = json!({"name": "n", "url": "http://127.0.0.1:9/n", "event_types": ["*"]});
    let routes: Vec<(Method, String, Option<serde_json::Value>, Need)> = vec![
        (Method::GET, "/api/v1/deliveries".into(), None, Need::Admin),
        (
            Method::GET,
            format!("/api/v1/deliveries/{}", a.id),
            None,
            Need::Admin,
        ),
        (
            Method::POST,
            format!("/api/v1/deliveries/{missing}/retry"),
            None,
            Need::Admin,
        ),
        (
            Method::POST,
            "/api/v1/deliveries/retry".into(),
            Some(json!({"webhook_id": missing})),
            Need::Admin,
        ),
        (Method::GET, "/api/v1/webhooks".into(), None, Need::Admin),
        (
            Method::POST,
            "/api/v1/webhooks".into(),
            Some(new_hook),
            Need::Admin,
        ),
        (Method::GET, format!("/api/v1/webhooks/{hook}"), None, Need::Admin),
        (
            Method::PATCH,
            format!("/api/v1/webhooks/{hook}"),
            Some(json!({"name": "Matrix 2"})),
            Need::Admin,
        ),
        (
            Method::POST,
            format!("/api/v1/webhooks/{missing}/rotate-secret"),
            None,
            Need::Admin,
        ),
        (
            Method::DELETE,
            format!("/api/v1/webhooks/{missing}"),
            None,
            Need::Admin,
        ),
        (Method::GET, "/api/v1/tokens".into(), None, Need::Owner),
        (
            Method::POST,
            "/api/v1/tokens".into(),
            Some(json!({"name": "t", "role": "viewer"})),
            Need::Owner,
        ),
        (
            Method::DELETE,
            format!("/api/v1/tokens/{missing}"),
            None,
            Need::Owner,
        ),
        (Method::GET, "/api/v1/me".into(), None, Need::Viewer),
        (Method::GET, "/api/v1/event-types".into(), None, Need::Admin),
        (Method::GET, "/api/v1/settings".into(), None, Need::Admin),
        (
            Method::PUT,
            "/api/v1/settings".into(),
            Some(json!({"retention": "30d"})),
            Need::Owner,
        ),
        (Method::GET, "/api/v1/activity".into(), None, Need::Admin),
        (
            Method::POST,
            format!("/api/v1/webhooks/{missing}/test"),
            None,
            Need::Admin,
        ),
        (
            Method::GET,
            format!("/api/v1/webhooks/{hook}/stats?window=7d"),
            None,
            Need::Admin,
        ),
    ];
    let unknown = "hr_thisTokenWasNeverIssuedToAnyoneAtAll000000";
    for (method, path, body, need) in &routes {
        for token in [None, Some(unknown)] {
            let res = api.call(method.clone(), path, token, body.as_ref()).await;
            res.assert_problem(401, "token");
            assert_eq!(
                res.headers.get("www-authenticate").and_then(|v| v.to_str().ok()),
                Some("Bearer"),
                "{method} {path}"
            );
        }
        for (role, token) in [
            (Need::Viewer, api.viewer.clone()),
            (Need::Admin, api.admin.clone()),
            (Need::Owner, api.owner.clone()),
        ] {
            let res = api.call(method.clone(), path, Some(&token), body.as_ref()).await;
            if role < *need {
                res.assert_problem(403, "role");
            } else {
                let s = res.status.as_u16();
                assert!(
                    (200..300).contains(&s) || s == 404,
                    "{method} {path} as a sufficient role: {s} {}",
                    res.text
                );
            }
        }
    }
    // A malformed Authorization header is the same as none.
    let res = api
        .client
        .get(format!("{}/api/v1/deliveries", api.base))
        .header("authorization", format!("Basic {}", api.admin))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 401);
    // A revoked token stops working at once.
    let res = api
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&api.owner.clone()),
            Some(&json!({"name": "temp", "role": "admin"})),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    let temp = res.body["token"].as_str().expect("token shown once").to_owned();
    let temp_id = res.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        api.call(Method::GET, "/api/v1/deliveries", Some(&temp), None)
            .await
            .status,
        200
    );
    let listed = api
        .call(Method::GET, "/api/v1/tokens", Some(&api.owner.clone()), None)
        .await;
    assert!(
        listed.text.contains(&temp_id) && !listed.text.contains(&temp),
        "list never shows a token"
    );
    let res = api
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{temp_id}"),
            Some(&api.owner.clone()),
            None,
        )
        .await;
    assert_eq!(res.status, 204);
    api.call(Method::GET, "/api/v1/deliveries", Some(&temp), None)
        .await
        .assert_problem(401, "token");
    api.stop().await;
}
