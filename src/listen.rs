//! `hookrelay listen`: a local receiver for trying hookrelay out. It prints each request's
//! webhook headers and body and, given the secret, whether the signature verifies.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use hookrelay_shared::signature::{self, Secret};

#[derive(Clone)]
struct Listener {
    secret: Option<Secret>,
    status: StatusCode,
}

/// Serves until SIGINT/SIGTERM.
pub async fn run(addr: SocketAddr, secret: Option<String>, status: u16) -> anyhow::Result<()> {
    let secret = secret
        .map(|s| Secret::parse(&s).map_err(|e| anyhow::anyhow!("--secret: {e}")))
        .transpose()?;
    let status = StatusCode::from_u16(status)
        .map_err(|_| anyhow::anyhow!("--status {status} is not an HTTP status"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!(
        "listening on http://{}/ (answering {status})",
        listener.local_addr()?
    );
    let app = Router::new()
        .fallback(receive)
        .with_state(Listener { secret, status });
    let stop = hookrelay_shared::shutdown::on_signal();
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await?;
    Ok(())
}

async fn receive(State(l): State<Listener>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    println!(
        "--- POST  {}  attempt {}",
        h("x-webhook-event"),
        h("x-webhook-attempt")
    );
    for name in [
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "user-agent",
    ] {
        println!("{name}: {}", h(name));
    }
    println!("{}", String::from_utf8_lossy(&body));
    if let Some(secret) = &l.secret {
        let valid = h("webhook-timestamp")
            .parse::<i64>()
            .map(|ts| signature::verify(secret, &h("webhook-id"), ts, &body, &h("webhook-signature")))
            .unwrap_or(false);
        println!("signature: {}", if valid { "valid" } else { "INVALID" });
    }
    l.status
}
