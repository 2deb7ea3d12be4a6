//! End-to-end tests of the admin page in a real headless Chromium (Debian `chromium` and
//! `chromium-driver`), against the real system — query API, dispatcher and scheduler running
//! in-process on a fresh `TestEnv`, real receivers on 127.0.0.1 — walking the four scenarios of
//! issue 5. Every run saves screenshots under `<target>/screenshots/`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use hookrelay_shared::{
    testing::{Receiver, Reply, TestEnv, eventually},
    tokens::{self, Role},
    webhooks::{self, NewWebhook, Webhook},
};
use serde::Deserialize;
use serde_json::{Value, json};
use thirtyfour::{components::SelectElement, prelude::*};
use tokio::{net::TcpListener, sync::Semaphore, task::JoinHandle};
use tokio_util::sync::CancellationToken;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PAGE: &str = "/admin/webhook-deliveries";
/// Generous: the CI machine is small and runs other suites (and other browsers) at once.
const WAIT: Duration = Duration::from_secs(45);

/// One Chromium at a time: each takes a good share of a 2-core machine shared with builds.
static BROWSERS: Semaphore = Semaphore::const_new(1);

// ------------------------------------------------------------------------------------------
// The system under test

/// API, dispatcher and scheduler on a fresh environment, as `hookrelay up` runs them.
struct System {
    env: TestEnv,
    base: String,
    listener: Option<TcpListener>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    channel: lapin::Channel,
    http: reqwest::Client,
}

impl System {
    /// A fresh environment; automatic retries are off so that only the page's retries resend.
    /// Nothing runs until [`System::run`], so webhooks made before it are loaded at start-up
    /// (no race with the dispatcher's change listener).
    async fn new() -> Self {
        let env = TestEnv::with(|c| c.retry_max = 0).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the API");
        let base = format!("http://{}", listener.local_addr().expect("API address"));
        let channel = env.channel().await;
        Self {
            env,
            base,
            listener: Some(listener),
            shutdown: CancellationToken::new(),
            tasks: vec![],
            channel,
            http: reqwest::Client::new(),
        }
    }

    /// Starts the API, a dispatcher and a scheduler, as `hookrelay up` does.
    async fn run(&mut self) {
        let listener = self.listener.take().expect("run once");
        let ctx = self.env.context();
        let stop = &self.shutdown;
        self.tasks = vec![
            tokio::spawn(hookrelay_query_api::run(ctx.clone(), listener, stop.clone())),
            tokio::spawn(hookrelay_dispatcher::run(ctx.clone(), stop.clone())),
            tokio::spawn(hookrelay_scheduler::run(ctx, stop.clone())),
        ];
        let up = eventually(WAIT, || async {
            self.http
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(up, "the query API at {} never became ready", self.base);
    }

    async fn token(&self, role: Role) -> String {
        tokens::create(&self.env.db, &format!("browser test {}", role.as_str()), role)
            .await
            .expect("token created")
            .0
    }

    async fn webhook(&self, name: &str, url: &str, patterns: &[&str]) -> Webhook {
        let new = NewWebhook {
            name: name.into(),
            url: url.into(),
            event_types: patterns.iter().map(|p| p.to_string()).collect(),
            enabled: true,
            retry_policy: None,
            secret: None,
            max_in_flight: None,
            rate_limit: None,
            ..Default::default()
        };
        webhooks::create(&self.env.db, new)
            .await
            .expect("webhook created")
            .0
    }

    async fn publish(&self, event_type: &str, data: Value) {
        let body = json!({"type": event_type, "data": data});
        self.env
            .publish_raw(&self.channel, event_type, body.to_string().as_bytes())
            .await;
    }

    /// `GET /api/v1{path}` as `token`; panics unless 200.
    async fn api(&self, token: &str, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}/api/v1{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("API reachable");
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Every item of the delivery log for `params`, page by page, as the API gives them.
    async fn pages(&self, token: &str, params: &str) -> Vec<Vec<Value>> {
        let mut pages = vec![];
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/deliveries?{params}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={}", urlencode(c)));
            }
            let page = self.api(token, &path).await;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            cursor = page["next_cursor"].as_str().map(str::to_owned);
            if !items.is_empty() || pages.is_empty() {
                pages.push(items);
            }
            if cursor.is_none() || pages.len() > 50 {
                return pages;
            }
        }
    }

    /// Waits until the log holds at least `n` attempts.
    async fn wait_for_attempts(&self, token: &str, n: usize) {
        let ok = eventually(WAIT, || async {
            self.api(token, "/deliveries?limit=200").await["items"]
                .as_array()
                .is_some_and(|a| a.len() >= n)
        })
        .await;
        assert!(ok, "the log never reached {n} attempts");
    }

    async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
        self.env.cleanup().await;
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An address nothing listens on (yet): an endpoint that is down.
fn unused_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

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

// ------------------------------------------------------------------------------------------
// Scenario 1

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

// ------------------------------------------------------------------------------------------
// Scenario 2

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

// ------------------------------------------------------------------------------------------
// Scenario 3

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_category_filter_sort_by_response_code_and_paging_show_the_same_rows_as_the_api() {
    let mut sys = System::new().await;
    let admin = sys.token(Role::Admin).await;
    let ok = Receiver::start().await;
    let boom = Receiver::start_with(|_| Reply::status(500, "boom")).await;
    let missing = Receiver::start_with(|_| Reply::status(404, "no such hook")).await;
    sys.webhook("Shop EU", &ok.url("/eu"), &["license.*", "activation.*"])
        .await;
    sys.webhook("Shop US", &boom.url("/us"), &["*"]).await;
    sys.webhook(
        "Partner portal",
        &missing.url("/partner"),
        &["license.*", "product.*"],
    )
    .await;
    sys.run().await;
    for n in 0..4 {
        sys.publish("license.assigned", json!({"n": n})).await;
    }
    sys.publish("activation.created", json!({"n": 1})).await;
    sys.publish("product.updated", json!({"n": 1})).await;
    // license: 3 × 4, activation: 2, product: 2.
    sys.wait_for_attempts(&admin, 16).await;

    let b = Browser::start(&sys.base).await;
    b.open(&format!("{PAGE}?limit=3")).await;
    b.sign_in(&admin).await;
    b.settled().await;
    let options = b
        .js("return [...document.querySelectorAll('#f-category option')].map(o => o.value).join();")
        .await;
    for c in ["license", "activation", "product"] {
        assert!(
            options.as_str().unwrap_or_default().contains(c),
            "category {c} is offered: {options}"
        );
    }
    b.search("shop").await;
    b.wait(
        "the search is applied",
        "return location.search.includes('q=shop')",
    )
    .await;
    b.settled().await;
    b.select("#f-category", "license").await;
    b.wait(
        "the category is applied",
        "return location.search.includes('category=license')",
    )
    .await;
    b.settled().await;
    b.click("th[data-sort='response_code'] button").await;
    b.wait(
        "the sort is applied",
        "return location.search.includes('sort=response_code')",
    )
    .await;
    b.settled().await;
    let sort = b
        .js("return document.querySelector(\"th[data-sort='response_code']\").getAttribute('aria-sort');")
        .await;
    assert_eq!(sort, "descending");

    let expected = sys
        .pages(
            &admin,
            "q=shop&category=license&sort=response_code&order=desc&limit=3",
        )
        .await;
    assert_eq!(
        expected.iter().map(Vec::len).sum::<usize>(),
        8,
        "Shop EU and Shop US, four license events each"
    );
    assert!(expected.len() >= 3, "three pages of three");
    for (n, page) in expected.iter().enumerate() {
        if n > 0 {
            b.click("#next").await;
            b.wait(&format!("page {} is shown", n + 1), &format!(
                "return document.getElementById('page-label').textContent === 'Page {}' && !document.getElementById('log').hasAttribute('aria-busy')",
                n + 1
            ))
            .await;
            b.settled().await;
        }
        let rows = b.rows().await;
        assert_eq!(row_ids(&rows), ids(page), "page {} matches the API", n + 1);
        assert!(
            rows.iter()
                .all(|r| r.webhook.starts_with("Shop") && r.event_type.starts_with("license.")),
            "{rows:?}"
        );
    }
    assert!(
        b.el("#next")
            .await
            .prop("disabled")
            .await
            .expect("prop")
            .as_deref()
            == Some("true"),
        "no page after the last"
    );
    let codes: Vec<String> = expected
        .concat()
        .iter()
        .map(|i| i["response_code"].to_string())
        .collect();
    assert_eq!(
        codes.first().map(String::as_str),
        Some("500"),
        "500s first when sorted descending: {codes:?}"
    );

    // Previous walks back through the cursor stack; the browser's Back button restores the
    // page it came from.
    let last = expected.len();
    b.click("#prev").await;
    b.wait(
        "the previous page is shown",
        &format!(
            "return document.getElementById('page-label').textContent === 'Page {}'",
            last - 1
        ),
    )
    .await;
    b.settled().await;
    assert_eq!(row_ids(&b.rows().await), ids(&expected[last - 2]));
    b.d().back().await.expect("back");
    b.wait(
        "Back returns to the last page",
        &format!("return document.getElementById('page-label').textContent === 'Page {last}'"),
    )
    .await;
    b.settled().await;
    assert_eq!(row_ids(&b.rows().await), ids(&expected[last - 1]));

    // Reversing the sort gives the API's ascending order.
    b.click("th[data-sort='response_code'] button").await;
    b.wait(
        "the sort is reversed",
        "return location.search.includes('order=asc')",
    )
    .await;
    b.settled().await;
    let sort = b
        .js("return document.querySelector(\"th[data-sort='response_code']\").getAttribute('aria-sort');")
        .await;
    assert_eq!(sort, "ascending");
    let asc = sys
        .pages(
            &admin,
            "q=shop&category=license&sort=response_code&order=asc&limit=3",
        )
        .await;
    assert_eq!(row_ids(&b.rows().await), ids(&asc[0]));

    // A shared link (filters, sort and cursor, never the token) opens the same rows.
    let url = b.url().await;
    assert!(
        !url.contains(&admin) && !url.contains("hr_"),
        "the token is never in the URL: {url}"
    );
    b.open(&url[sys.base.len()..]).await;
    b.settled().await;
    assert_eq!(row_ids(&b.rows().await), ids(&asc[0]));
    assert_eq!(b.js("return document.getElementById('f-q').value").await, "shop");
    assert_eq!(
        b.js("return document.getElementById('f-category').value").await,
        "license"
    );
    b.screenshot("filtered-sorted").await;

    // Narrow window: rows stack as cards (the header row of the table is hidden).
    b.d().set_window_rect(0, 0, 420, 900).await.expect("resize");
    b.wait(
        "the table stacks",
        "return getComputedStyle(document.querySelector('#rows td')).display === 'grid'",
    )
    .await;
    b.screenshot("narrow").await;

    b.quit().await;
    sys.stop().await;
}

// ------------------------------------------------------------------------------------------
// Scenario 4

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
