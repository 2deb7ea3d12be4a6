//! Troubleshooting a 500: filter Failed, View, the stack trace and the payload (shown as text).

use super::*;

const STACK_TRACE: &str = "Traceback (most recent call last):\n  File \"/srv/billing/handlers.py\", line 88, in on_license\n    account = ACCOUNTS[event['data']['account']]\nKeyError: 'acct_missing'\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_filters_failed_finds_the_500_and_sees_the_stack_trace_and_the_payload() {
    let mut sys = System::new().await;
    let admin = sys.token(Role::Admin).await;
    let billing =
        Receiver::start_with(|_| Reply::status(500, STACK_TRACE).header("content-type", "text/plain")).await;
    let crm = Receiver::start().await;
    sys.webhook("Billing", &billing.url("/hooks/hookrelay"), &["license.*"])
        .await;
    sys.webhook("CRM sync", &crm.url("/api/webhooks/incoming"), &["*"])
        .await;
    sys.webhook(
        "Slack alerts",
        &format!("http://{}/slack", unused_addr()),
        &["product.*"],
    )
    .await;
    sys.run().await;
    sys.publish(
        "license.assigned",
        json!({
            "license_id": "lic_500",
            "account": "acct_missing",
            "note": "<img src=x onerror=\"document.title='pwned'\">"
        }),
    )
    .await;
    sys.publish("activation.created", json!({"activation_id": "act_1"}))
        .await;
    sys.publish("product.created", json!({"product_id": "prod_1"}))
        .await;
    // Billing 1 (500), CRM 3 (200), Slack 1 (connection refused).
    sys.wait_for_attempts(&admin, 5).await;

    let b = Browser::start(&sys.base).await;
    b.open(PAGE).await;
    b.sign_in(&admin).await;
    b.settled().await;
    assert_eq!(b.rows().await.len(), 5, "every attempt is listed");
    b.screenshot("deliveries-table").await;

    b.select("#f-status", "failed").await;
    b.wait(
        "the URL keeps the status filter",
        "return location.search.includes('status=failed')",
    )
    .await;
    b.settled().await;
    b.wait(
        "only the two failed rows are left",
        "return document.querySelectorAll('#rows tr[data-id]').length === 2",
    )
    .await;
    let rows = b.rows().await;
    assert!(
        rows.iter()
            .all(|r| r.status == "failed" && r.status_text.contains("Failed") && r.retry),
        "{rows:?}"
    );
    let refused = rows
        .iter()
        .find(|r| r.webhook == "Slack alerts")
        .expect("the refused row");
    assert!(refused.response.contains("Connection refused"), "{refused:?}");
    let row = rows
        .iter()
        .find(|r| r.response.contains("500"))
        .expect("a row with 500");
    assert_eq!(row.webhook, "Billing");
    assert_eq!(row.event_type, "license.assigned");
    assert!(row.response.contains("500 Internal Server Error"), "{row:?}");

    b.click(&format!("#rows tr[data-id='{}'] button.view", row.id))
        .await;
    b.wait(
        "the details show the response body",
        "return !!document.getElementById('response-body')",
    )
    .await;
    let body = b.text("#response-body").await;
    assert!(
        body.contains("KeyError: 'acct_missing'") && body.contains("handlers.py"),
        "{body}"
    );
    let payload: Value = serde_json::from_str(&b.text("#payload").await).expect("the payload is pretty JSON");
    assert_eq!(payload["data"]["license_id"], "lic_500");
    assert_eq!(payload["type"], "license.assigned");
    let details = b.text("#details-body").await;
    for expected in [
        "webhook-signature",
        "v1,",
        "x-webhook-attempt",
        "content-type",
        "500 Internal Server Error",
        "initial",
    ] {
        assert!(
            details.contains(expected),
            "the details lack {expected}: {details}"
        );
    }
    assert!(
        b.text("#request-line")
            .await
            .starts_with(&format!("POST {}", billing.url("/hooks/hookrelay")))
    );
    // Attacker-controlled text stays text: shown literally, never turned into markup.
    assert!(
        b.text("#payload").await.contains("<img src=x onerror="),
        "the markup is shown as text"
    );
    let injected = b.js("return document.querySelectorAll('#details-body img').length === 0 && document.title !== 'pwned';").await;
    assert_eq!(
        injected,
        Value::Bool(true),
        "the payload's markup was not rendered"
    );
    b.screenshot("delivery-details").await;
    b.js("document.getElementById('response-body').scrollIntoView({block: 'center'}); return true;")
        .await;
    b.screenshot("delivery-details-response").await;

    // Escape closes the dialog and gives the focus back to the View button.
    b.el("#details-close")
        .await
        .send_keys(Key::Escape)
        .await
        .expect("Escape");
    b.wait(
        "Escape closes the details",
        "return !document.getElementById('details').open",
    )
    .await;
    let focused = b
        .js("return document.activeElement.classList.contains('view');")
        .await;
    assert_eq!(focused, Value::Bool(true), "focus returns to the View button");

    b.quit().await;
    sys.stop().await;
}
