//! Per-webhook delivery options over HTTP (issue 13): each is accepted on create, read back,
//! changed and cleared by PATCH, shown in the OpenAPI document, and refused with a 422 that
//! names the field (or the path inside it) when invalid.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::Api;

/// Creates a webhook with the fields of `extra`.
async fn create(api: &Api, extra: Value) -> crate::support::Res {
    api.create_webhook(
        json!({"name": "Opts", "url": "https://opts.example.test/in", "event_types": ["license.*"]}),
        extra,
    )
    .await
}

#[tokio::test]
async fn a_filter_is_stored_read_back_replaced_and_cleared() {
    let api = Api::start().await;
    let filter = json!({"type": "license.assigned", "data.plan": ["pro", "team"], "data.seats": {"$gte": 5}});
    let res = create(&api, json!({ "filter": filter.clone() })).await;
    assert_eq!(res.status, 201, "{}", res.text);
    assert_eq!(res.body["filter"], filter);
    let id = res.body["id"].as_str().expect("id").to_owned();
    let got = api.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(got.body["filter"], filter);

    let res = api.patch_webhook(&id, json!({"name": "Renamed"})).await;
    assert_eq!(res.body["filter"], filter, "an absent filter stays");
    let other = json!({"data.region": {"$prefix": "eu-"}});
    let res = api.patch_webhook(&id, json!({ "filter": other.clone() })).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["filter"], other);
    let res = api.patch_webhook(&id, json!({"filter": null})).await;
    assert!(res.body["filter"].is_null(), "null clears it: {}", res.text);

    let res = create(&api, json!({})).await;
    assert!(res.body["filter"].is_null(), "no filter by default");
    api.stop().await;
}

#[tokio::test]
async fn an_invalid_filter_is_refused_naming_the_path() {
    let api = Api::start().await;
    for (filter, needle) in [
        (json!({"plan": "pro"}), "filter.plan"),
        (json!({"data.seats": {"$gt": true}}), "filter.data.seats"),
        (json!({"data.seats": {"$regex": "x"}}), "filter.data.seats"),
        (json!({"data..x": 1}), "filter.data..x"),
        (json!(["data.x"]), "filter"),
    ] {
        let res = create(&api, json!({ "filter": filter.clone() })).await;
        res.assert_problem(422, needle);
        let ok = create(&api, json!({})).await;
        let id = ok.body["id"].as_str().expect("id").to_owned();
        api.patch_webhook(&id, json!({ "filter": filter }))
            .await
            .assert_problem(422, needle);
    }
    api.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_options() {
    let api = Api::start().await;
    let doc = api.get("/api/v1/openapi.json").await;
    assert_eq!(doc.status, 200);
    let schemas = &doc.body["components"]["schemas"];
    for schema in ["WebhookOut", "WebhookCreate", "WebhookUpdate"] {
        let props = &schemas[schema]["properties"];
        for field in ["filter", "headers", "signature_scheme"] {
            assert!(props.get(field).is_some(), "{schema} has {field}: {props}");
        }
        if schema == "WebhookOut" {
            assert!(props.get("public_key").is_some(), "{props}");
        }
    }
    api.stop().await;
}

#[tokio::test]
async fn custom_headers_are_accepted_and_shown_only_by_name() {
    let api = Api::start().await;
    let res = create(
        &api,
        json!({"headers": {"X-Api-Key": "k_live_secret", "x-tenant": "42"}}),
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.text);
    assert_eq!(
        res.body["headers"],
        json!({"x-api-key": "***", "x-tenant": "***"})
    );
    assert!(!res.text.contains("k_live_secret"), "{}", res.text);
    let id = res.body["id"].as_str().expect("id").to_owned();
    let got = api.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(
        got.body["headers"],
        json!({"x-api-key": "***", "x-tenant": "***"})
    );
    let list = api.get("/api/v1/webhooks").await;
    assert!(!list.text.contains("k_live_secret"), "{}", list.text);
    let res = api.patch_webhook(&id, json!({"name": "x"})).await;
    assert_eq!(res.body["headers"]["x-api-key"], "***", "absent headers stay");
    let res = api.patch_webhook(&id, json!({"headers": {"x-other": "v"}})).await;
    assert_eq!(
        res.body["headers"],
        json!({"x-other": "***"}),
        "PATCH replaces the set"
    );
    let res = api.patch_webhook(&id, json!({"headers": null})).await;
    assert_eq!(res.body["headers"], json!({}), "null removes them");
    let res = create(&api, json!({})).await;
    assert_eq!(res.body["headers"], json!({}), "none by default");
    api.stop().await;
}

#[tokio::test]
async fn reserved_or_invalid_headers_are_refused_naming_the_header() {
    let api = Api::start().await;
    let ok = create(&api, json!({})).await;
    let id = ok.body["id"].as_str().expect("id").to_owned();
    for (headers, needle) in [
        (json!({"webhook-signature": "v1,x"}), "headers.webhook-signature"),
        (json!({"X-Webhook-Event": "x"}), "headers.X-Webhook-Event"),
        (json!({"Content-Type": "text/plain"}), "headers.Content-Type"),
        (json!({"user-agent": "me"}), "headers.user-agent"),
        (json!({"bad name": "v"}), "headers.bad name"),
        (json!({"x-a": "a\r\nb"}), "headers.x-a"),
        (json!({"x-a": "***"}), "headers.x-a"),
        (json!({"x-a": 1}), "headers.x-a"),
        (json!("x"), "headers"),
    ] {
        create(&api, json!({ "headers": headers.clone() }))
            .await
            .assert_problem(422, needle);
        api.patch_webhook(&id, json!({ "headers": headers }))
            .await
            .assert_problem(422, needle);
    }
    api.stop().await;
}

#[tokio::test]
async fn signature_schemes_give_the_right_keys_on_create_patch_and_rotate() {
    let api = Api::start().await;
    let v1 = create(&api, json!({})).await;
    assert_eq!(v1.body["signature_scheme"], "v1");
    assert!(v1.body["public_key"].is_null());
    assert!(
        v1.body["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_"))
    );

    let v1a = create(&api, json!({"signature_scheme": "v1a"})).await;
    assert_eq!(v1a.status, 201, "{}", v1a.text);
    assert_eq!(v1a.body["signature_scheme"], "v1a");
    let pk = v1a.body["public_key"].as_str().expect("public key").to_owned();
    assert!(pk.starts_with("whpk_"), "{pk}");
    assert!(
        v1a.body.get("secret").is_none(),
        "no shared secret for v1a: {}",
        v1a.text
    );
    assert!(!v1a.text.contains("whsk_"), "the signing key is never shown");
    let id = v1a.body["id"].as_str().expect("id").to_owned();
    let got = api.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(
        got.body["public_key"],
        pk.as_str(),
        "the public key is on every read"
    );

    let rotated = api
        .call(
            Method::POST,
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            Some(&api.admin),
            None,
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_ne!(
        rotated.body["public_key"],
        pk.as_str(),
        "a rotation makes a new key pair"
    );
    assert!(rotated.body.get("secret").is_none());

    let both = api
        .patch_webhook(&id, json!({"signature_scheme": "v1,v1a"}))
        .await;
    assert_eq!(both.status, 200, "{}", both.text);
    assert_eq!(both.body["signature_scheme"], "v1,v1a");
    assert!(
        both.body["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_")),
        "v1 added: {}",
        both.text
    );
    assert_eq!(both.body["public_key"], rotated.body["public_key"]);
    let again = api.patch_webhook(&id, json!({"name": "same scheme"})).await;
    assert!(
        again.body.get("secret").is_none(),
        "no new key without a change: {}",
        again.text
    );

    let mine = create(
        &api,
        json!({"signature_scheme": "v1,v1a", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
    )
    .await;
    assert_eq!(mine.body["secret"], "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert!(mine.body["public_key"].is_string());
    api.stop().await;
}

#[tokio::test]
async fn a_bad_scheme_or_a_key_of_the_wrong_kind_is_refused_naming_the_field() {
    let api = Api::start().await;
    create(&api, json!({"signature_scheme": "v2"}))
        .await
        .assert_problem(422, "signature_scheme");
    create(
        &api,
        json!({"signature_scheme": "v1a", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
    )
    .await
    .assert_problem(422, "secret");
    create(&api, json!({"secret": "whsk_AAAA"}))
        .await
        .assert_problem(422, "secret");
    let ok = create(&api, json!({})).await;
    let id = ok.body["id"].as_str().expect("id").to_owned();
    api.patch_webhook(&id, json!({"signature_scheme": "ed25519"}))
        .await
        .assert_problem(422, "signature_scheme");
    let res = api
        .call(
            Method::POST,
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            Some(&api.admin),
            Some(&json!({"secret": "whsk_AAAA"})),
        )
        .await;
    res.assert_problem(422, "secret");
    api.stop().await;
}
