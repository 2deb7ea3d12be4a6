//! `/admin/activity`: filtered by webhook and by kind, newest first, "Load more" on the cursor.

use reqwest::Method;

use super::*;

const ACTIVITY: &str = "/admin/activity";
const LISTED: &str = "return !document.getElementById('view-activity').hidden && !document.getElementById('activity').hasAttribute('aria-busy') && document.querySelectorAll('#rows tr[data-id]').length > 0";

async fn kinds(b: &Browser) -> Vec<String> {
    serde_json::from_value(
        b.js("return [...document.querySelectorAll('#rows tr[data-id]')].map(tr => tr.dataset.kind);")
            .await,
    )
    .expect("kinds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_activity_log_filters_by_webhook_and_kind_and_loads_more() {
    let mut sys = System::new().await;
    let admin = sys.token(Role::Admin).await;
    sys.run().await;
    let mk =
        |name: &str| json!({"name": name, "url": "https://example.com/hook", "event_types": ["license.*"]});
    let busy = sys.call(Method::POST, &admin, "/webhooks", mk("Busy")).await;
    let quiet = sys.call(Method::POST, &admin, "/webhooks", mk("Quiet")).await;
    let busy_id = busy["id"].as_str().expect("id").to_owned();
    // 55 updates: more than one page of 50.
    for n in 0..55 {
        sys.call(
            Method::PATCH,
            &admin,
            &format!("/webhooks/{busy_id}"),
            json!({"name": format!("Busy {n}")}),
        )
        .await;
    }
    sys.call(
        Method::PATCH,
        &admin,
        &format!("/webhooks/{}", quiet["id"].as_str().expect("id")),
        json!({"enabled": false}),
    )
    .await;

    let b = Browser::start(&sys.base).await;
    b.open_signed_in(ACTIVITY, &admin, LISTED).await;
    assert_eq!(kinds(&b).await.len(), 50, "a first page of 50");
    assert_eq!(kinds(&b).await[0], "webhook.disabled", "newest first");
    b.click("#more").await;
    b.wait(
        "the rest is loaded",
        "return document.querySelectorAll('#rows tr[data-kind^=\"webhook.\"]').length === 58",
    )
    .await;
    assert_eq!(
        b.js("return document.getElementById('more').hidden").await,
        true,
        "nothing more to load"
    );

    b.wait(
        "the webhook picker lists Busy",
        &format!(
            "return [...document.querySelectorAll('#a-webhook option')].some(o => o.value === '{busy_id}')"
        ),
    )
    .await;
    b.select("#a-webhook", &busy_id).await;
    b.wait(
        "the webhook filter is applied",
        &format!("return location.search.includes('webhook_id={busy_id}')"),
    )
    .await;
    b.wait(LISTED, LISTED).await;
    b.wait(
        "only Busy's 50 newest entries are shown",
        "return document.querySelectorAll('#rows tr[data-id]').length === 50",
    )
    .await;
    let links = b.js("return [...new Set([...document.querySelectorAll('#rows td.webhook a')].map(a => a.textContent))].join();").await;
    assert_eq!(
        links,
        json!("Busy 54"),
        "each row links to the webhook, by its name"
    );

    b.select("#a-kind", "webhook.created").await;
    b.wait(
        "the kind filter is applied",
        "return location.search.includes('kind=webhook.created')",
    )
    .await;
    b.wait("Busy's creation alone is left", "const r = [...document.querySelectorAll('#rows tr[data-id]')]; return r.length === 1 && r[0].dataset.kind === 'webhook.created'").await;
    assert!(b.text("#rows td.actor").await.contains("browser test admin"));

    // The URL keeps the filters: Back goes to the previous ones.
    b.d().back().await.expect("back");
    b.wait("Back restores the webhook filter alone", "return !location.search.includes('kind=') && document.querySelectorAll('#rows tr[data-id]').length === 50").await;

    b.quit().await;
    sys.stop().await;
}
