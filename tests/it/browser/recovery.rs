//! Recovering after downtime: Retry one row, then Retry all failed.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_downtime_an_admin_retries_one_row_then_all_failed_and_every_delivery_succeeds() {
    let mut sys = System::new().await;
    let admin = sys.token(Role::Admin).await;
    let down = unused_addr();
    let audit = Receiver::start().await;
    let warehouse = sys
        .webhook("Warehouse sync", &format!("http://{down}/hooks"), &["license.*"])
        .await;
    sys.webhook("Audit log", &audit.url("/audit"), &["license.*"])
        .await;
    sys.run().await;
    for n in 1..=3 {
        sys.publish("license.assigned", json!({"license_id": format!("lic_{n}")}))
            .await;
    }
    sys.wait_for_attempts(&admin, 6).await;

    let b = Browser::start(&sys.base).await;
    b.open(PAGE).await;
    b.sign_in(&admin).await;
    b.settled().await;
    b.search("Warehouse").await;
    b.wait(
        "the URL keeps the search",
        "return location.search.includes('q=Warehouse')",
    )
    .await;
    b.wait(
        "only Warehouse rows are shown",
        "return [...document.querySelectorAll('#rows tr[data-id] .wh-name')].map(e => e.textContent).join() === 'Warehouse sync,Warehouse sync,Warehouse sync'",
    )
    .await;
    let rows = b.rows().await;
    assert!(
        rows.iter()
            .all(|r| r.status == "failed" && r.response.contains("Connection refused")),
        "{rows:?}"
    );

    // The endpoint comes back.
    let receiver = Receiver::start_at(down, |_| Reply::ok()).await;

    let first = rows[0].clone();
    b.click(&format!("#rows tr[data-id='{}'] button.retry", first.id))
        .await;
    b.wait(
        "the retry is confirmed",
        "return document.getElementById('toasts').textContent.includes('Retry queued')",
    )
    .await;
    b.wait(
        "the manual attempt shows up as a success",
        &format!(
            "return [...document.querySelectorAll('#rows tr[data-delivery-id=\"{}\"]')].some(tr => tr.dataset.status === 'success' && tr.textContent.includes('manual'))",
            first.delivery_id
        ),
    )
    .await;
    b.wait(
        "the retry's result is announced",
        "return document.getElementById('toasts').textContent.includes('Retry succeeded')",
    )
    .await;

    b.click("#retry-all").await;
    b.wait(
        "the bulk retry asks for confirmation",
        "return document.getElementById('confirm').open",
    )
    .await;
    let question = b.text("#confirm-text").await;
    assert!(
        question.starts_with("2 failed deliveries"),
        "the confirmation says how many: {question}"
    );
    assert!(question.contains("Warehouse"), "{question}");
    b.screenshot("retry-all-confirmation").await;
    b.click("#confirm-ok").await;
    b.wait(
        "the bulk retry is confirmed",
        "return document.getElementById('toasts').textContent.includes('2 retries queued')",
    )
    .await;

    // The page refreshes itself; every delivery's latest (first, newest-first) row is a success.
    b.wait(
        "every delivery's latest attempt is a success",
        "const seen = new Map();
         for (const tr of document.querySelectorAll('#rows tr[data-id]')) {
           if (!seen.has(tr.dataset.deliveryId)) seen.set(tr.dataset.deliveryId, tr.dataset.status);
         }
         return seen.size === 3 && [...seen.values()].every(s => s === 'success');",
    )
    .await;
    let rows = b.rows().await;
    assert!(
        rows.iter().all(|r| !r.retry),
        "no row offers a retry once its delivery succeeded: {rows:?}"
    );
    b.screenshot("recovered").await;
    assert!(
        receiver.wait_for(3, WAIT).await,
        "the endpoint got the three retries"
    );

    // The API agrees: every Warehouse delivery's latest attempt succeeded.
    let items = sys
        .api(
            &admin,
            &format!("/deliveries?webhook_id={}&limit=200", warehouse.id),
        )
        .await;
    let mut latest = std::collections::HashMap::new();
    for it in items["items"].as_array().expect("items") {
        latest
            .entry(it["delivery_id"].as_str().unwrap_or_default().to_owned())
            .or_insert(it["status"].clone());
    }
    assert_eq!(latest.len(), 3);
    assert!(latest.values().all(|s| s == "success"), "{latest:?}");

    b.quit().await;
    sys.stop().await;
}
