//! `ordering` over HTTP: accepted on create, read back, changed by PATCH, refused with a 422
//! naming the field when it is not `none` or `fifo`; a manual retry of a delivery held behind
//! its ordered webhook's head is a 409, of a finished one a 202.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Api, Res, seed_delivery};

/// Creates a webhook with the fields of `extra`.
async fn create(api: &Api, extra: Value) -> Res {
    api.create_webhook(
        json!({"name": "Ordered", "url": "https://fifo.example.test/in", "event_types": ["license.*"]}),
        extra,
    )
    .await
}

#[tokio::test]
async fn ordering_is_created_read_back_and_patched() {
    let api = Api::start().await;
    let plain = create(&api, json!({})).await;
    assert_eq!(plain.status, 201, "{}", plain.text);
    assert_eq!(plain.body["ordering"], "none", "the default");

    let res = create(&api, json!({"ordering": "fifo"})).await;
    assert_eq!(res.status, 201, "{}", res.text);
    assert_eq!(res.body["ordering"], "fifo");
    let id = res.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        api.get(&format!("/api/v1/webhooks/{id}")).await.body["ordering"],
        "fifo"
    );
    let res = api.patch_webhook(&id, json!({"name": "Renamed"})).await;
    assert_eq!(res.body["ordering"], "fifo", "an absent ordering stays");
    let res = api.patch_webhook(&id, json!({"ordering": "none"})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["ordering"], "none");
    let list = api.get("/api/v1/webhooks").await;
    let items = list.body["items"].as_array().expect("items");
    assert!(items.iter().all(|w| w["ordering"] == "none"), "{}", list.text);

    let doc = api.get("/api/v1/openapi.json").await;
    for schema in ["WebhookOut", "WebhookCreate", "WebhookUpdate"] {
        let props = &doc.body["components"]["schemas"][schema]["properties"];
        assert!(props.get("ordering").is_some(), "{schema}: {props}");
    }
    api.stop().await;
}

#[tokio::test]
async fn a_bad_ordering_is_refused_naming_the_field() {
    let api = Api::start().await;
    for bad in [json!("lifo"), json!("FIFO"), json!(true)] {
        create(&api, json!({ "ordering": bad.clone() }))
            .await
            .assert_problem(422, "ordering");
    }
    let ok = create(&api, json!({})).await;
    let id = ok.body["id"].as_str().expect("id").to_owned();
    api.patch_webhook(&id, json!({"ordering": "random"}))
        .await
        .assert_problem(422, "ordering");
    api.stop().await;
}

/// Makes a seeded delivery part of an ordered webhook's sequence: `held` ones wait behind
/// the head (no next attempt time).
async fn sequence(api: &Api, delivery: Uuid, seq: i64, held: bool) {
    sqlx::query(
        "UPDATE deliveries SET seq = $2, next_attempt_at = CASE WHEN $3 THEN NULL ELSE next_attempt_at END
         WHERE id = $1",
    )
    .bind(delivery)
    .bind(seq)
    .bind(held)
    .execute(&api.env.db)
    .await
    .expect("sequenced");
}

#[tokio::test]
async fn a_manual_retry_of_a_held_delivery_is_a_409_and_of_a_finished_one_a_202() {
    let api = Api::start().await;
    let res = create(&api, json!({"ordering": "fifo"})).await;
    let hook: Uuid = res.body["id"].as_str().expect("id").parse().expect("uuid");
    let finished = seed_delivery(&api.env, hook, "license.assigned", "failed").await;
    let head = seed_delivery(&api.env, hook, "license.assigned", "retrying").await;
    let held = seed_delivery(&api.env, hook, "license.assigned", "pending").await;
    sequence(&api, finished.id, 1, false).await;
    sequence(&api, head.id, 2, false).await;
    sequence(&api, held.id, 3, true).await;

    let retry = |id: Uuid| {
        let api = &api;
        async move {
            api.call(
                Method::POST,
                &format!("/api/v1/deliveries/{id}/retry"),
                Some(&api.admin),
                None,
            )
            .await
        }
    };
    let res = retry(held.id).await;
    res.assert_problem(409, "held behind the head");
    let res = retry(finished.id).await;
    assert_eq!(
        res.status, 202,
        "a finished delivery is retried out of band: {}",
        res.text
    );
    assert_eq!(res.body["queued"], true);
    let res = retry(head.id).await;
    assert_eq!(res.status, 202, "the head itself may be retried: {}", res.text);
    api.stop().await;
}
