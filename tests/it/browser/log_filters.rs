//! The delivery log's newer filters: time range, event type (from `/api/v1/event-types`),
//! response code; each attempt's response time; a row's link to its webhook; auto-refresh.

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::*;

/// Sets a `datetime-local` input to `iso` in the browser's local time.
fn set_time(id: &str, iso: &str) -> String {
    format!(
        "const d = new Date({iso}); const p = (n) => String(n).padStart(2, '0'); \
         document.getElementById({id}).value = `${{d.getFullYear()}}-${{p(d.getMonth() + 1)}}-${{p(d.getDate())}}T${{p(d.getHours())}}:${{p(d.getMinutes())}}:${{p(d.getSeconds())}}`; return true;",
        iso = json!(iso),
        id = json!(id)
    )
}

async fn apply(b: &Browser) {
    b.click("#apply").await;
}

async fn event_types(b: &Browser) -> Vec<String> {
    b.rows().await.into_iter().map(|r| r.event_type).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_log_filters_by_time_range_event_type_and_response_code_and_refreshes_itself() {
    let mut sys = System::new().await;
    let admin = sys.token(Role::Admin).await;
    let alpha = Receiver::start().await;
    let beta = Receiver::start_with(|_| Reply::status(503, "busy")).await;
    sys.webhook("Alpha", &alpha.url("/a"), &["*"]).await;
    sys.webhook("Beta", &beta.url("/b"), &["product.*"]).await;
    sys.run().await;
    for n in 0..2 {
        sys.publish("license.assigned", json!({"n": n})).await;
    }
    sys.wait_for_attempts(&admin, 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let middle = OffsetDateTime::now_utc().format(&Rfc3339).expect("format");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sys.publish("product.created", json!({"n": 2})).await;
    sys.wait_for_attempts(&admin, 4).await;

    let b = Browser::start(&sys.base).await;
    b.open(PAGE).await;
    b.sign_in(&admin).await;
    b.settled().await;
    assert_eq!(b.rows().await.len(), 4);
    b.screenshot_for_docs("screenshot-deliveries.png").await;
    // Each attempt shows how long the endpoint took.
    let durations = b
        .js("return [...document.querySelectorAll('#rows td.response .duration')].map(e => e.textContent)")
        .await;
    let durations: Vec<String> = serde_json::from_value(durations).expect("strings");
    assert_eq!(durations.len(), 4);
    assert!(
        durations
            .iter()
            .all(|d| d.starts_with("in ") && (d.ends_with(" ms") || d.ends_with(" s"))),
        "{durations:?}"
    );

    // Until the middle: the first two attempts only.
    b.js(&set_time("f-until", &middle)).await;
    apply(&b).await;
    b.filtered(
        "the URL holds `until`",
        "return location.search.includes('until=')",
        2,
    )
    .await;
    assert_eq!(event_types(&b).await, vec!["license.assigned"; 2]);
    b.screenshot("time-range").await;

    // Since the middle: the later event's two attempts.
    b.js("document.getElementById('f-until').value = ''; return true;")
        .await;
    b.js(&set_time("f-since", &middle)).await;
    apply(&b).await;
    b.filtered(
        "the URL holds `since` alone",
        "return location.search.includes('since=') && !location.search.includes('until=')",
        2,
    )
    .await;
    assert_eq!(event_types(&b).await, vec!["product.created"; 2]);
    let from_api = sys
        .api(&admin, &format!("/deliveries?since={}", urlencode(&middle)))
        .await;
    assert_eq!(
        from_api["items"].as_array().map(Vec::len),
        Some(2),
        "the same as the API"
    );

    // The event-type picker is fed by /api/v1/event-types; the response-code filter is exact.
    b.click("#clear").await;
    b.settled().await;
    b.wait("the picker offers both types", "const v = [...document.querySelectorAll('#f-event-type option')].map(o => o.value); return v.includes('license.assigned') && v.includes('product.created')").await;
    b.select("#f-event-type", "product.created").await;
    b.filtered(
        "the type filter is applied",
        "return location.search.includes('event_type=product.created')",
        2,
    )
    .await;
    let code = b.el("#f-code").await;
    code.send_keys("5x3").await.expect("type");
    apply(&b).await;
    b.wait(
        "a bad code is refused beside the field",
        "return document.getElementById('f-code').getAttribute('aria-invalid') === 'true'",
    )
    .await;
    code.clear().await.expect("clear");
    code.send_keys("503" + Key::Enter).await.expect("type");
    b.filtered(
        "the code filter is applied",
        "return location.search.includes('response_code=503')",
        1,
    )
    .await;
    assert_eq!(
        b.rows()
            .await
            .iter()
            .map(|r| r.webhook.as_str())
            .collect::<Vec<_>>(),
        ["Beta"],
        "Beta's row alone is left"
    );

    // A row links to its webhook: the webhooks page opens its editor.
    b.click("#rows tr[data-id] a.wh-name").await;
    b.wait("the webhook's editor is open", "return location.pathname === '/admin/webhooks' && document.getElementById('editor').open && document.getElementById('w-name').value === 'Beta'").await;

    // Auto-refresh: a new attempt shows up without a click.
    b.open(PAGE).await;
    b.settled().await;
    b.click("#auto-refresh").await;
    sys.publish("license.assigned", json!({"n": 3})).await;
    b.wait(
        "the new attempt shows up by itself",
        "return document.querySelectorAll('#rows tr[data-id]').length === 5",
    )
    .await;

    b.quit().await;
    sys.stop().await;
}
