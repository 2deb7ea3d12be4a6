//! The webhook receiver of the process tests (`tests/it/processes.rs`, `tests/it/ops.rs`,
//! `tests/faults`): its answer depends on the path and the `x-webhook-attempt` header, so it is
//! per event (the shared `testing::Receiver` answers by request index). Included by both test binaries with `#[path]`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

/// What the receiver saw: one `(path, webhook-id, attempt)` per request.
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<Vec<(String, String, u32)>>>);

impl Seen {
    pub fn all(&self) -> Vec<(String, String, u32)> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// How many times each event id reached `path` with `attempt` (any attempt when None).
    pub fn per_event(&self, path: &str, attempt: Option<u32>) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for (p, id, a) in self.all() {
            if p == path && attempt.is_none_or(|want| want == a) {
                *out.entry(id).or_insert(0) += 1;
            }
        }
        out
    }
}

/// Starts the receiver: `/ok` → 200; `/flaky` → 500 on attempt 1, then 200; `/fail` → 500;
/// `/slow` → 200 after 1.5 s. Returns its base URL.
///
/// It runs on a thread and runtime of its own: a test that blocks its thread (stopping and
/// starting a service takes seconds) must not freeze the receiver, or attempts made meanwhile
/// would time out for a reason of the test's own.
pub fn start_receiver() -> (String, Seen) {
    let seen = Seen::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
        let s = s.clone();
        async move {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let attempt: u32 = header("x-webhook-attempt").parse().unwrap_or(0);
            let path = uri.path().to_owned();
            if let Ok(mut v) = s.0.lock() {
                v.push((path.clone(), header("webhook-id"), attempt));
            }
            match path.as_str() {
                "/flaky" if attempt <= 1 => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "/fail" => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "/slow" => {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    axum::http::StatusCode::OK
                }
                _ => axum::http::StatusCode::OK,
            }
        }
    });
    (format!("http://{}", serve_on_own_thread(app)), seen)
}

/// Serves `app` on 127.0.0.1 (port 0) from a thread and runtime of its own (see
/// [`start_receiver`] for why), and returns its address.
pub fn serve_on_own_thread(app: axum::Router) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("receiver runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("receiver listener");
            let _ = axum::serve(listener, app).await;
        });
    });
    addr
}
