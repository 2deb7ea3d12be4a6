//! The load tool's endpoints: a fast receiver (`/hook/{n}`, optionally answering after
//! `--response-ms`) that counts arrivals and each event's publish → first attempt latency,
//! and black holes that accept connections and never answer.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};

/// What the receiver counts.
#[derive(Default)]
pub struct Stats {
    /// How long the receiver waits before it answers.
    pub response_ms: u64,
    pub arrivals: AtomicU64,
    /// When each event was published and its publish → first attempt arrival, in microseconds.
    pub latencies_us: Mutex<Vec<(u64, u64)>>,
}

/// Now, in microseconds since the epoch (what events carry as `sent_at_us`).
pub fn now_us() -> u64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as u64
}

async fn receive(State(stats): State<Arc<Stats>>, headers: HeaderMap, body: Bytes) -> &'static str {
    let at = now_us();
    if stats.response_ms > 0 {
        tokio::time::sleep(Duration::from_millis(stats.response_ms)).await;
    }
    stats.arrivals.fetch_add(1, Ordering::Relaxed);
    if headers.get("x-webhook-attempt").is_some_and(|v| v == "1")
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
        && let Some(sent) = v["data"]["sent_at_us"].as_u64()
        && let Ok(mut l) = stats.latencies_us.lock()
    {
        l.push((sent, at.saturating_sub(sent)));
    }
    "ok"
}

/// Starts the receiver on 127.0.0.1 (port 0) and returns its address.
pub async fn start(stats: Arc<Stats>) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/hook/{n}", post(receive)).with_state(stats);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// Accepts connections and never answers (keeps them open until the process ends).
pub async fn black_hole() -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    Ok(addr)
}
