//! Signing in: no token, an unknown token, a viewer; sign-out; webhook health on the rows.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_token_the_sign_in_shows_and_a_viewer_token_is_refused_politely() {
    let mut sys = System::new().await;
    let viewer = sys.token(Role::Viewer).await;
    let admin = sys.token(Role::Admin).await;

    sys.run().await;
    // The page's own security headers.
    let r = sys
        .http
        .get(format!("{}{PAGE}", sys.base))
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        csp.starts_with("default-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");

    let b = Browser::start(&sys.base).await;
    b.open(PAGE).await;
    b.el("#token").await;
    assert_eq!(
        b.js("return document.getElementById('view-log').hidden").await,
        true,
        "no table without a token"
    );
    assert_eq!(b.stored_token().await, Value::Null);
    b.screenshot("sign-in").await;

    b.sign_in("hr_not-a-real-token").await;
    b.wait(
        "an unknown token is refused",
        "return document.getElementById('signin-error').textContent.includes('not accepted')",
    )
    .await;
    assert_eq!(b.stored_token().await, Value::Null, "a refused token is not kept");

    b.sign_in(&viewer).await;
    b.wait(
        "a viewer is told the page needs the admin role",
        "return !document.getElementById('view-forbidden').hidden",
    )
    .await;
    assert!(b.text("#forbidden-title").await.contains("needs the admin role"));
    assert_eq!(
        b.js("return document.getElementById('view-log').hidden").await,
        true,
        "no table for a viewer"
    );
    assert_eq!(b.stored_token().await, Value::Null, "the viewer token is dropped");
    assert!(!b.url().await.contains("hr_"), "no token in the URL");
    b.screenshot("viewer-refused").await;

    b.click("#forbidden-signin").await;
    b.sign_in(&admin).await;
    b.settled().await;
    assert_eq!(
        b.stored_token().await,
        Value::String(admin.clone()),
        "kept in sessionStorage"
    );
    assert!(!b.url().await.contains("hr_"), "no token in the URL");
    // A reload keeps the session (same tab) ...
    b.d().refresh().await.expect("reload");
    b.settled().await;
    assert_eq!(b.text("#state").await, "0 attempts on this page");
    b.wait(
        "the empty state shows",
        "return document.querySelector('#rows td.empty').textContent.includes('No deliveries yet')",
    )
    .await;
    // ... and signing out ends it.
    b.click("#sign-out").await;
    b.wait(
        "signing out shows the sign-in",
        "return !document.getElementById('view-signin').hidden",
    )
    .await;
    assert_eq!(b.stored_token().await, Value::Null);
    b.d().refresh().await.expect("reload");
    b.el("#token").await;
    assert_eq!(
        b.js("return document.getElementById('view-log').hidden").await,
        true
    );

    b.quit().await;
    sys.stop().await;
}

#[tokio::test]
async fn a_row_says_when_its_webhook_has_an_open_circuit_or_was_disabled() {
    let mut sys = System::new().await;
    let admin = sys.token(Role::Admin).await;
    let down = Receiver::start_with(|_| Reply::status(500, "down")).await;
    let gone = Receiver::start_with(|_| Reply::status(410, "gone")).await;
    sys.webhook("Down", &down.url("/down"), &["down.*"]).await;
    sys.webhook("Gone", &gone.url("/gone"), &["gone.*"]).await;
    sys.run().await;
    // Five consecutive failures open the circuit; one 410 disables the webhook.
    for i in 0..5 {
        sys.publish("down.event", json!({"i": i})).await;
    }
    sys.publish("gone.event", json!({"i": 0})).await;
    sys.wait_for_attempts(&admin, 6).await;

    let b = Browser::start(&sys.base).await;
    b.open(PAGE).await;
    b.sign_in(&admin).await;
    b.settled().await;
    b.wait(
        "the open circuit is shown on the failing webhook's rows",
        "return [...document.querySelectorAll('#rows tr[data-id] .wh-health')].some(e => e.textContent.startsWith('Circuit open'))",
    )
    .await;
    b.wait(
        "the disabled webhook's row says why",
        "return [...document.querySelectorAll('#rows tr[data-id] .wh-health')].some(e => e.textContent === 'Disabled: the endpoint answered 410 Gone')",
    )
    .await;
    b.screenshot("webhook-health").await;
    b.quit().await;
    sys.stop().await;
}
