//! `/admin/webhooks`: create a webhook and copy its secret (the copied secret verifies what the
//! endpoint receives), edit its event types from the known types, rotate, delete; a failing
//! endpoint's health.

use hookrelay_shared::signature::Secret;

use super::*;

const WEBHOOKS: &str = "/admin/webhooks";
const LISTED: &str = "return !document.getElementById('view-webhooks').hidden && !document.getElementById('webhooks').hasAttribute('aria-busy') && document.querySelectorAll('#rows tr').length > 0";

/// The rows of the list as `name|event types|status` lines.
async fn listed(b: &Browser) -> Vec<String> {
    let v = b
        .js("return [...document.querySelectorAll('#rows tr[data-id]')].map(tr => tr.querySelector('.wh-name').textContent + '|' + tr.querySelector('td.event-types').textContent + '|' + tr.querySelector('td.status .badge').textContent);")
        .await;
    serde_json::from_value(v).expect("rows")
}

/// Clicks the button `class` of the webhook row named `name`.
async fn row_button(b: &Browser, name: &str, class: &str) {
    let css = format!("#rows tr[data-id] .{class}");
    b.wait(
        &format!("the {class} button of {name} is shown"),
        &format!("return [...document.querySelectorAll({})].some(x => x.closest('tr').querySelector('.wh-name').textContent === {})", json!(css), json!(name)),
    )
    .await;
    for e in b.d().find_all(By::Css(&css)).await.expect("buttons") {
        let row = e.find(By::XPath("./ancestor::tr")).await.expect("row");
        if row
            .find(By::Css(".wh-name"))
            .await
            .expect("name")
            .text()
            .await
            .expect("text")
            == name
        {
            e.click().await.expect("click");
            return;
        }
    }
    panic!("no {class} button for {name}");
}

/// Sets the editor's checkbox of `pattern` to `on`, clicking it as a user would.
async fn check_type(b: &Browser, pattern: &str, on: bool) {
    let css = format!("#w-types input[value={}]", json!(pattern));
    let input = b.el(&css).await;
    if input.is_selected().await.expect("checkbox state") != on {
        input.click().await.expect("click the checkbox");
    }
    b.wait(
        &format!("`{pattern}` is set to {on}"),
        &format!("return document.querySelector({}).checked === {on}", json!(css)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_creates_a_webhook_copies_its_secret_sends_a_test_event_and_edits_its_event_types_then_deletes_it()
 {
    let mut sys = System::new().await;
    let admin = sys.token(Role::Admin).await;
    let endpoint = Receiver::start().await;
    sys.run().await;
    // The types the picker offers are the ones the system has seen (no fixed list).
    sys.publish("license.assigned", json!({"seen": 1})).await;
    sys.publish("product.created", json!({"seen": 1})).await;
    let seen = eventually(WAIT, || async {
        sys.api(&admin, "/event-types").await["items"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    })
    .await;
    assert!(seen, "the two event types were recorded");

    let b = Browser::start(&sys.base).await;
    b.open_signed_in(WEBHOOKS, &admin, "return !document.getElementById('view-webhooks').hidden && document.querySelectorAll('#rows tr').length > 0").await;
    b.text("#rows .empty").await;
    b.click("#new-webhook").await;
    b.el("#w-name").await.send_keys("Billing").await.expect("type");
    b.el("#w-url")
        .await
        .send_keys(endpoint.url("/hooks"))
        .await
        .expect("type");
    let offered = b
        .js("return [...document.querySelectorAll('#w-types input')].map(i => i.value).join();")
        .await;
    assert_eq!(
        offered,
        json!("*,license.*,license.assigned,product.*,product.created"),
        "the picker offers the seen types, their categories and *"
    );
    check_type(&b, "license.*", true).await;
    b.screenshot("webhook-editor").await;
    b.click("#editor-save").await;

    // The secret, shown once, and what Copy put on the clipboard.
    b.grant_clipboard().await;
    let shown = b.text("#secret-value").await;
    assert!(shown.starts_with("whsec_"), "the secret is shown: {shown}");
    b.click("#copy-secret").await;
    b.wait(
        "the copy is confirmed",
        "return document.getElementById('copy-secret').textContent === 'Copied ✓'",
    )
    .await;
    let copied = b.clipboard().await;
    assert_eq!(copied, shown, "Copy put the secret on the clipboard");
    b.screenshot("webhook-secret").await;
    b.click("#secret-done").await;
    b.wait("the secret is gone from the page", "return document.getElementById('secret-value').textContent === '' && !document.getElementById('secret-dialog').open").await;
    b.wait(LISTED, LISTED).await;
    assert_eq!(listed(&b).await, vec!["Billing|license.*|●Enabled".to_owned()]);

    // The copied secret is the one the endpoint's signatures verify with.
    sys.publish("license.assigned", json!({"license_id": "lic_1"}))
        .await;
    assert!(endpoint.wait_for(1, WAIT).await, "the endpoint got the event");
    let got = endpoint.received().remove(0);
    let secret = Secret::parse(&copied).expect("a whsec_ secret");
    assert!(
        got.signed_with(&secret),
        "the copied secret verifies the received signature"
    );

    // Send a test event: it goes through the pipeline, signed, and the row shows it succeeded.
    row_button(&b, "Billing", "test").await;
    b.wait(
        "the test event's success is shown",
        "const o = document.querySelector('#rows tr[data-id] .test-outcome'); return !!o && o.classList.contains('ok') && o.textContent.startsWith('✓ Test delivered: 200 OK');",
    )
    .await;
    b.screenshot("webhook-tested").await;
    assert!(
        endpoint.wait_for(2, WAIT).await,
        "the endpoint got the test event"
    );
    let test = endpoint.received().remove(1);
    assert_eq!(test.header("x-webhook-event"), Some("webhook.test"));
    assert!(
        test.signed_with(&secret),
        "the test event is signed with the same secret"
    );

    // Edit: the event types, picked from the known ones.
    row_button(&b, "Billing", "edit").await;
    b.wait(
        "the editor shows the webhook",
        "return document.getElementById('w-name').value === 'Billing'",
    )
    .await;
    check_type(&b, "license.*", false).await;
    check_type(&b, "product.created", true).await;
    b.click("#editor-save").await;
    b.wait("the list shows the new types", "return [...document.querySelectorAll('#rows td.event-types')].some(e => e.textContent === 'product.created')").await;
    let id = sys.api(&admin, "/webhooks").await["items"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        sys.api(&admin, &format!("/webhooks/{id}")).await["event_types"],
        json!(["product.created"])
    );

    // Rotate: a new secret, shown once.
    row_button(&b, "Billing", "rotate").await;
    b.click("#confirm-ok").await;
    let rotated = b.text("#secret-value").await;
    assert!(
        rotated.starts_with("whsec_") && rotated != shown,
        "a new secret is shown"
    );
    b.click("#secret-done").await;

    // Delete, after a confirmation naming it; Cancel first keeps it.
    row_button(&b, "Billing", "delete").await;
    assert!(b.text("#confirm-text").await.contains("Billing"));
    b.click("#confirm-cancel").await;
    assert_eq!(listed(&b).await.len(), 1, "Cancel keeps the webhook");
    row_button(&b, "Billing", "delete").await;
    b.click("#confirm-ok").await;
    b.wait(
        "the list is empty",
        "return !!document.querySelector('#rows .empty')",
    )
    .await;
    assert_eq!(sys.api(&admin, "/webhooks").await["items"], json!([]));

    b.quit().await;
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_endpoints_health_shows_its_failure_rate_its_tripped_circuit_and_a_link_to_its_deliveries()
{
    let mut sys = System::new().await;
    let admin = sys.token(Role::Admin).await;
    let down = Receiver::start_with(|_| Reply::status(500, "down")).await;
    let fine = Receiver::start().await;
    sys.webhook("Down", &down.url("/down"), &["down.*"]).await;
    sys.webhook("Fine", &fine.url("/fine"), &["fine.*"]).await;
    sys.run().await;
    // Five consecutive failures open the circuit.
    for i in 0..5 {
        sys.publish("down.event", json!({"i": i})).await;
    }
    sys.publish("fine.event", json!({"i": 0})).await;
    sys.wait_for_attempts(&admin, 6).await;
    // The 24 h summary is a rollup the dispatcher writes about once a second.
    let counted = eventually(WAIT, || async {
        sys.api(&admin, "/webhooks").await["items"]
            .as_array()
            .is_some_and(|a| {
                a.iter()
                    .map(|w| w["health"]["attempts"].as_u64().unwrap_or(0))
                    .sum::<u64>()
                    == 6
            })
    })
    .await;
    assert!(counted, "the list counts the six attempts");

    let b = Browser::start(&sys.base).await;
    b.open_signed_in(WEBHOOKS, &admin, LISTED).await;
    b.wait(
        "the failing webhook shows its failure rate",
        "const tr = [...document.querySelectorAll('#rows tr[data-id]')].find(t => t.querySelector('.wh-name').textContent === 'Down'); return !!tr && tr.querySelector('.rate-line').textContent === '0% success · 100% failed (5 of 5 attempts)';",
    )
    .await;
    b.wait(
        "the healthy one shows its success rate",
        "const tr = [...document.querySelectorAll('#rows tr[data-id]')].find(t => t.querySelector('.wh-name').textContent === 'Fine'); return !!tr && tr.querySelector('.rate-line').textContent === '100% success · 0% failed (0 of 1 attempt)';",
    )
    .await;
    b.wait(
        "the failing webhook shows its tripped circuit",
        // Open, or already half-open: the test environment's open period is short.
        "const tr = [...document.querySelectorAll('#rows tr[data-id]')].find(t => t.querySelector('.wh-name').textContent === 'Down'); return !!tr && !!tr.querySelector('.circuit.open, .circuit.half_open') && tr.querySelector('.circuit-line').textContent.includes('5 consecutive failures');",
    )
    .await;
    b.wait(
        "the healthy one shows a closed circuit",
        "const tr = [...document.querySelectorAll('#rows tr[data-id]')].find(t => t.querySelector('.wh-name').textContent === 'Fine'); return !!tr && !!tr.querySelector('.circuit.closed');",
    )
    .await;
    b.screenshot("webhooks").await;
    b.screenshot_for_docs("screenshot-webhooks.png").await;

    // Keyboard: the editor opens from the Edit button with Enter, Escape closes it and gives the
    // focus back.
    b.js("const tr = [...document.querySelectorAll('#rows tr[data-id]')].find(t => t.querySelector('.wh-name').textContent === 'Fine'); tr.querySelector('button.edit').focus(); return true;").await;
    b.d()
        .active_element()
        .await
        .expect("focus")
        .send_keys(Key::Enter)
        .await
        .expect("Enter");
    b.wait("the editor is open", "return document.getElementById('editor').open && document.getElementById('editor-title').textContent === 'Edit Fine'").await;
    b.d()
        .active_element()
        .await
        .expect("focus")
        .send_keys(Key::Escape)
        .await
        .expect("Escape");
    b.wait(
        "Escape closes it and the focus is back on Edit",
        "return !document.getElementById('editor').open && document.activeElement.classList.contains('edit')",
    )
    .await;

    // Narrow window: the rows stack as cards, the navigation wraps, nothing scrolls sideways.
    b.d().set_window_rect(0, 0, 420, 900).await.expect("resize");
    b.wait(
        "the list stacks and fits",
        "return getComputedStyle(document.querySelector('#rows td')).display === 'grid' && document.documentElement.scrollWidth <= window.innerWidth && [...document.querySelectorAll('nav.pages a')].every(a => a.getBoundingClientRect().right <= window.innerWidth)",
    )
    .await;
    b.screenshot("webhooks-narrow").await;
    b.d().set_window_rect(0, 0, 1280, 900).await.expect("resize");

    row_button(&b, "Down", "deliveries").await;
    b.wait(
        "the log shows that webhook alone",
        "return location.pathname === '/admin/webhook-deliveries' && location.search.includes('webhook_id=')",
    )
    .await;
    b.settled().await;
    b.wait(
        "the chip names it",
        "return document.getElementById('webhook-chip-name').textContent === 'Down'",
    )
    .await;
    let rows = b.rows().await;
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(rows.iter().all(|r| r.webhook == "Down" && r.status == "failed"));

    b.quit().await;
    sys.stop().await;
}
