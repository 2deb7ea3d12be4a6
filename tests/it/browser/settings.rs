//! `/admin/settings`: an owner changes the retention and finds the change in the activity log;
//! an admin sees the settings read-only, told why.

use super::*;

const SETTINGS: &str = "/admin/settings";
const LOADED: &str = "return !document.getElementById('view-settings').hidden && document.getElementById('s-retention').value !== ''";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_owner_changes_the_retention_and_finds_it_in_the_activity_log() {
    let mut sys = System::new().await;
    let owner = sys.token(Role::Owner).await;
    let admin = sys.token(Role::Admin).await;
    sys.run().await;
    let before = sys.api(&admin, "/settings").await;
    assert_eq!(before["retention"], "30d", "{before}");

    let b = Browser::start(&sys.base).await;
    b.open_signed_in(SETTINGS, &owner, LOADED).await;
    assert_eq!(
        b.js("return document.getElementById('readonly').hidden").await,
        true,
        "an owner may edit"
    );
    assert!(b.text("#s-retention-source").await.contains("configuration"));
    let retention = b.el("#s-retention").await;
    retention.clear().await.expect("clear");
    retention.send_keys("400d").await.expect("type");
    b.click("#settings-save").await;
    b.wait("the bad value is refused beside its field", "return document.getElementById('s-retention').getAttribute('aria-invalid') === 'true' && document.getElementById('s-retention-error').textContent.includes('365d')").await;
    retention.clear().await.expect("clear");
    retention.send_keys("14d" + Key::Enter).await.expect("type");
    b.wait(
        "the change is saved",
        "return document.getElementById('s-retention-source').textContent.startsWith('Set here')",
    )
    .await;
    assert_eq!(sys.api(&admin, "/settings").await["retention"], "14d");
    b.screenshot("settings").await;
    b.screenshot_for_docs("screenshot-settings.png").await;

    // The navigation keeps the sign-in; the activity log names who changed what.
    b.click("nav.pages a[href='/admin/activity']").await;
    b.wait(
        "the activity page is shown",
        "return location.pathname === '/admin/activity' && !document.getElementById('view-activity').hidden",
    )
    .await;
    b.select("#a-kind", "settings.changed").await;
    b.wait(
        "the filter is applied",
        "return location.search.includes('kind=settings.changed')",
    )
    .await;
    b.wait(
        "the retention change is listed",
        "const rows = [...document.querySelectorAll('#rows tr[data-id]')]; return rows.length === 1 && rows[0].dataset.kind === 'settings.changed' && rows[0].querySelector('td.actor').textContent === 'browser test owner' && rows[0].querySelector('td.details').textContent.includes('retention: \"30d\" → \"14d\"');",
    )
    .await;
    b.screenshot("activity").await;
    b.screenshot_for_docs("screenshot-activity.png").await;

    // An admin reads the settings but may not change them, and is told so.
    b.click("#sign-out").await;
    b.open(SETTINGS).await;
    b.sign_in(&admin).await;
    b.wait(LOADED, LOADED).await;
    b.wait(
        "the read-only note is shown",
        "return !document.getElementById('readonly').hidden",
    )
    .await;
    assert!(
        b.text("#readonly")
            .await
            .contains("only an owner can change settings")
    );
    assert_eq!(b.js("return document.getElementById('s-retention').matches(':disabled') && document.getElementById('settings-save').disabled").await, true);
    assert_eq!(
        b.js("return document.getElementById('s-retention').value").await,
        "14d"
    );
    b.screenshot("settings-read-only").await;

    b.quit().await;
    sys.stop().await;
}
