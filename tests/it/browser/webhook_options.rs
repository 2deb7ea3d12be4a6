//! `/admin/webhooks`: the per-webhook delivery options set through the editor — FIFO
//! ordering, a payload filter, a custom header and `v1a` signatures — and what the endpoint
//! then gets; the header's value never reaches the page again.

use super::*;

const WEBHOOKS: &str = "/admin/webhooks";
const API_KEY: &str = "k_browser_secret_9";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_sets_fifo_a_filter_a_header_and_v1a_in_the_editor_and_the_endpoint_gets_them() {
    let mut sys = System::new().await;
    let admin = sys.token(Role::Admin).await;
    let endpoint = Receiver::start().await;
    sys.run().await;

    let b = Browser::start(&sys.base).await;
    b.open_signed_in(WEBHOOKS, &admin, "return !document.getElementById('view-webhooks').hidden && document.querySelectorAll('#rows tr').length > 0").await;
    b.click("#new-webhook").await;
    b.el("#w-name").await.send_keys("Ordered").await.expect("type");
    b.el("#w-url")
        .await
        .send_keys(endpoint.url("/ordered"))
        .await
        .expect("type");
    b.el("#w-patterns")
        .await
        .send_keys("license.*")
        .await
        .expect("type");
    b.wait(
        "the ordering field is offered",
        "return !document.getElementById('w-ordering-box').hidden",
    )
    .await;
    b.select("#w-ordering", "fifo").await;
    b.select("#w-signature", "v1a").await;
    b.el("#w-filter")
        .await
        .send_keys(r#"{"data.plan": ["pro", "team"]}"#)
        .await
        .expect("type");
    b.el("#w-headers")
        .await
        .send_keys(format!("X-Api-Key: {API_KEY}"))
        .await
        .expect("type");
    b.screenshot("webhook-options").await;
    b.click("#editor-save").await;

    // `v1a` has no shared secret: the dialog shows the public key instead.
    b.wait(
        "the public key is shown",
        "return document.getElementById('secret-dialog').open && !document.getElementById('public-key-box').hidden",
    )
    .await;
    let public_key = b.text("#public-key").await;
    assert!(public_key.starts_with("whpk_"), "a whpk_ key: {public_key}");
    let copy_hidden = b.js("return document.getElementById('copy-secret').hidden").await;
    assert_eq!(copy_hidden, json!(true), "no secret to copy");
    b.click("#secret-done").await;

    let listed = sys.api(&admin, "/webhooks").await;
    let w = &listed["items"][0];
    assert_eq!(w["ordering"], "fifo", "{w}");
    assert_eq!(w["signature_scheme"], "v1a", "{w}");
    assert_eq!(w["filter"], json!({"data.plan": ["pro", "team"]}), "{w}");
    assert_eq!(w["headers"], json!({"x-api-key": "***"}), "{w}");
    assert_eq!(w["public_key"], json!(public_key), "{w}");
    assert_eq!(w["event_types"], json!(["license.*"]), "{w}");

    // Only the matching events arrive, with the header and a v1a signature. (The order is
    // checked over 1,000 events in `it/ordering.rs`: it is the order intake accepted them, and
    // separate publishes may be accepted in two batches committing either way round.)
    for (i, plan) in ["pro", "free", "team", "free", "pro"].iter().enumerate() {
        sys.publish("license.assigned", json!({"plan": plan, "n": i}))
            .await;
    }
    assert!(
        endpoint.wait_for(3, WAIT).await,
        "the three matching events arrived"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = endpoint.received();
    let mut order: Vec<i64> = got
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(&r.body).expect("JSON body");
            v["data"]["n"].as_i64().expect("n")
        })
        .collect();
    order.sort_unstable();
    assert_eq!(order, vec![0, 2, 4], "the matching events, each once");
    for r in &got {
        assert_eq!(r.header("x-api-key"), Some(API_KEY));
        let sig = r.header("webhook-signature").unwrap_or_default();
        assert!(
            sig.split(' ').all(|s| s.starts_with("v1a,")),
            "v1a signatures only: {sig}"
        );
    }

    // Editing shows every option back; the header by name only, its value nowhere on the page.
    b.wait(
        "the webhook is listed",
        "return [...document.querySelectorAll('#rows tr[data-id] .wh-name')].some(e => e.textContent === 'Ordered')",
    )
    .await;
    let html = b.js("return document.documentElement.outerHTML").await;
    assert!(
        !html.as_str().unwrap_or_default().contains(API_KEY),
        "the header's value left the page when the editor closed"
    );
    b.click("#rows tr[data-id] .edit").await;
    b.wait(
        "the editor shows the webhook as the API has it",
        "return document.getElementById('w-name').value === 'Ordered' && document.getElementById('w-headers-hint').textContent.includes('x-api-key')",
    )
    .await;
    let shown = b
        .js("return [document.getElementById('w-ordering').value, document.getElementById('w-signature').value, JSON.parse(document.getElementById('w-filter').value), document.getElementById('w-headers').value, document.getElementById('w-headers-hint').textContent]")
        .await;
    assert_eq!(shown[0], "fifo");
    assert_eq!(shown[1], "v1a");
    assert_eq!(shown[2], json!({"data.plan": ["pro", "team"]}));
    assert_eq!(shown[3], "", "the header's value is not filled back in");
    assert!(
        shown[4].as_str().is_some_and(|h| h.contains("x-api-key")),
        "the hint names the header: {}",
        shown[4]
    );
    let html = b.js("return document.documentElement.outerHTML").await;
    assert!(
        !html.as_str().unwrap_or_default().contains(API_KEY),
        "the header's value is nowhere on the page"
    );
    b.screenshot("webhook-options-edit").await;

    b.quit().await;
    sys.stop().await;
}
