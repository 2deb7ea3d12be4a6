//! The query API: the delivery log, retries, webhooks, tokens, the admin page, metrics. (Being built.)

pub mod admin;

use hookrelay_shared::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves the API on `listener` until `shutdown` is cancelled.
pub async fn run(ctx: Context, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let _ = (ctx, listener);
    shutdown.cancelled().await;
    Ok(())
}
