//! End-to-end tests of the admin pages in a real headless Chromium (Debian `chromium` and
//! `chromium-driver`), against the real system — query API, dispatcher and scheduler running
//! in-process on a fresh `TestEnv`, real receivers on 127.0.0.1. This file is the harness
//! (the browser and its helpers); one file per page or scenario. Every run saves screenshots
//! under `<target>/screenshots/`.

mod activity;
mod log_filters;
mod paging;
mod recovery;
mod settings;
mod sign_in;
mod system;
mod troubleshooting;
mod webhook_options;
mod webhooks;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use hookrelay_shared::{
    testing::{Receiver, Reply, eventually},
    tokens::Role,
};
use serde::Deserialize;
use serde_json::{Value, json};
use thirtyfour::{components::SelectElement, prelude::*};
use tokio::sync::Semaphore;

use system::{System, unused_addr, urlencode};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PAGE: &str = "/admin/webhook-deliveries";
/// Generous: the CI machine is small and runs other suites (and other browsers) at once.
const WAIT: Duration = Duration::from_secs(45);

/// One Chromium at a time: each takes a good share of a 2-core machine shared with builds.
static BROWSERS: Semaphore = Semaphore::const_new(1);

// ------------------------------------------------------------------------------------------
// The browser

/// One row of the page's table, as the page shows it.
#[derive(Debug, Deserialize, Clone)]
struct Row {
    id: String,
    delivery_id: String,
    status: String,
    webhook: String,
    event_type: String,
    response: String,
    status_text: String,
    retry: bool,
}

const ROWS_JS: &str = r#"
  return [...document.querySelectorAll('#rows tr[data-id]')].map((tr) => ({
    id: tr.dataset.id,
    delivery_id: tr.dataset.deliveryId,
    status: tr.dataset.status,
    webhook: tr.querySelector('.wh-name').textContent,
    event_type: tr.querySelector('.etype').textContent,
    response: tr.querySelector('td.response').textContent,
    status_text: tr.querySelector('td.status .badge').textContent,
    retry: !!tr.querySelector('button.retry'),
  }));
"#;

/// Headless Chromium driven through its own chromedriver child process.
struct Browser {
    driver: Option<WebDriver>,
    chromedriver: Child,
    /// chromedriver's own address (for the W3C permissions call).
    driver_url: String,
    profile: PathBuf,
    base: String,
    _permit: tokio::sync::SemaphorePermit<'static>,
}

impl Browser {
    /// Starts chromedriver and Chromium; fails the test, saying why, when they can't start.
    async fn start(base: &str) -> Self {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: the browser tests need Debian's `chromium` and `chromium-driver` \
                 (`apt-get install -y chromium chromium-driver`, or run scripts/services.sh)"
            );
        }
        let permit = BROWSERS.acquire().await.expect("semaphore open");
        let port = unused_addr().port();
        let chromedriver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMEDRIVER} could not be started: {e}"));
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let ready = eventually(Duration::from_secs(20), || async {
            http.get(format!("{url}/status"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        let profile = std::env::temp_dir().join(format!("hookrelay-chromium-{:016x}", rand::random::<u64>()));
        let mut me = Self {
            driver: None,
            chromedriver,
            driver_url: url.clone(),
            profile,
            base: base.to_owned(),
            _permit: permit,
        };
        assert!(ready, "chromedriver did not answer on port {port} within 20 s");
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(CHROMIUM).expect("binary capability");
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
            "--lang=en-US",
            &format!("--user-data-dir={}", me.profile.display()),
        ] {
            caps.add_arg(arg).expect("chrome argument");
        }
        let driver = WebDriver::new(url, caps)
            .await
            .unwrap_or_else(|e| panic!("Chromium ({CHROMIUM}) could not start under chromedriver: {e}"));
        me.driver = Some(driver);
        me
    }

    fn d(&self) -> &WebDriver {
        self.driver.as_ref().expect("driver running")
    }

    async fn open(&self, path: &str) {
        self.d()
            .goto(format!("{}{path}", self.base))
            .await
            .expect("page opens");
    }

    async fn js(&self, script: &str) -> Value {
        self.d()
            .execute(script, Vec::<Value>::new())
            .await
            .expect("script runs")
            .json()
            .clone()
    }

    async fn el(&self, css: &str) -> WebElement {
        self.wait(
            &format!("`{css}` is shown"),
            &format!(
                "const e = document.querySelector({}); return !!e && e.getClientRects().length > 0;",
                json!(css)
            ),
        )
        .await;
        self.d().find(By::Css(css)).await.expect("element present")
    }

    async fn click(&self, css: &str) {
        self.el(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn text(&self, css: &str) -> String {
        self.el(css).await.text().await.expect("text")
    }

    /// Waits until the JS `predicate` (a function body) returns true; on timeout saves a
    /// screenshot and fails naming what was awaited and what the page said.
    async fn wait(&self, what: &str, predicate: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if self.js(predicate).await == Value::Bool(true) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                let name = format!(
                    "failed-{}",
                    what.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
                );
                self.screenshot(&name).await;
                let said = self
                    .js("return document.getElementById('state').textContent + ' | ' + document.getElementById('toasts').textContent + ' | ' + location.href")
                    .await;
                panic!("timed out waiting until {what}; the page said: {said}");
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Waits until the table has finished loading.
    async fn settled(&self) {
        self.wait(
            "the table has loaded",
            "return !document.getElementById('view-log').hidden && !document.getElementById('log').hasAttribute('aria-busy') && document.querySelectorAll('#rows tr').length > 0",
        )
        .await;
    }

    /// After a filter is applied: waits until `url` (a JS predicate on the address, `what` in
    /// a failure) holds, the table has loaded, and it shows `rows` rows.
    async fn filtered(&self, what: &str, url: &str, rows: usize) {
        self.wait(what, url).await;
        self.settled().await;
        self.wait(
            &format!("{rows} rows are left"),
            &format!("return document.querySelectorAll('#rows tr[data-id]').length === {rows}"),
        )
        .await;
    }

    async fn rows(&self) -> Vec<Row> {
        serde_json::from_value(self.js(ROWS_JS).await).expect("rows")
    }

    async fn url(&self) -> String {
        self.d().current_url().await.expect("url").to_string()
    }

    async fn stored_token(&self) -> Value {
        self.js("return sessionStorage.getItem('hookrelay.admin.token');")
            .await
    }

    async fn sign_in(&self, token: &str) {
        let input = self.el("#token").await;
        input.clear().await.expect("clear");
        input.send_keys(token).await.expect("type the token");
        self.click("#signin-submit").await;
    }

    /// Types `q` into the search box and presses Enter.
    async fn search(&self, q: &str) {
        let input = self.el("#f-q").await;
        input.clear().await.expect("clear");
        input
            .send_keys(q.to_owned() + Key::Enter)
            .await
            .expect("type the search");
    }

    async fn select(&self, css: &str, value: &str) {
        SelectElement::new(&self.el(css).await)
            .await
            .expect("a select")
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value} in {css}: {e}"));
    }

    /// Lets the page read and write the clipboard (the W3C permissions extension of
    /// chromedriver), so a test can check what a Copy button put there.
    async fn grant_clipboard(&self) {
        let session = self.d().session_id().to_string();
        let http = reqwest::Client::new();
        for name in ["clipboard-read", "clipboard-write"] {
            let r = http
                .post(format!("{}/session/{session}/permissions", self.driver_url))
                .json(&json!({"descriptor": {"name": name}, "state": "granted"}))
                .send()
                .await
                .expect("chromedriver reachable");
            assert!(
                r.status().is_success(),
                "granting {name}: {}",
                r.text().await.unwrap_or_default()
            );
        }
    }

    /// What the clipboard holds now, as the page sees it.
    async fn clipboard(&self) -> String {
        let v = self
            .d()
            .execute_async(
                "const done = arguments[arguments.length - 1]; navigator.clipboard.readText().then(done, (e) => done('clipboard error: ' + e));",
                Vec::<Value>::new(),
            )
            .await
            .expect("script runs")
            .json()
            .clone();
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Saves a screenshot of the window as `docs/<name>` (the README's pictures of the pages).
    async fn screenshot_for_docs(&self, name: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join(name);
        if std::env::var_os("HOOKRELAY_DOCS_SCREENSHOTS").is_some()
            && let Err(e) = self.d().screenshot(&path).await
        {
            eprintln!("screenshot {} not saved: {e}", path.display());
        }
    }

    /// Opens `path`, signs in with `token` and waits until `ready` (a JS predicate) holds.
    async fn open_signed_in(&self, path: &str, token: &str, ready: &str) {
        self.open(path).await;
        self.sign_in(token).await;
        self.wait(&format!("{path} has loaded"), ready).await;
    }

    async fn screenshot(&self, name: &str) {
        let dir = screenshot_dir();
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{name}.png"));
        if let Err(e) = self.d().screenshot(&path).await {
            eprintln!("screenshot {} not saved: {e}", path.display());
        }
    }

    async fn quit(mut self) {
        if let Some(d) = self.driver.take() {
            let _ = d.quit().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // After a panic the session is still open: end it (closing Chromium) on a runtime of
        // its own, since Drop cannot await. No signals to process groups: only our own child.
        if let Some(driver) = self.driver.take() {
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    let _ = rt.block_on(async {
                        tokio::time::timeout(Duration::from_secs(10), driver.quit()).await
                    });
                }
            })
            .join();
        }
        let _ = self.chromedriver.kill();
        let _ = self.chromedriver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `<cargo target dir>/screenshots`.
fn screenshot_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("screenshots")
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn row_ids(rows: &[Row]) -> Vec<String> {
    rows.iter().map(|r| r.id.clone()).collect()
}
