//! The dispatcher: consumes events, fans them out to subscribed webhooks, sends signed POSTs
//! and records every attempt. (Being built: see ARCHITECTURE.md.)

use hookrelay_shared::Context;
use tokio_util::sync::CancellationToken;

/// Runs a dispatcher until `shutdown` is cancelled.
pub async fn run(ctx: Context, shutdown: CancellationToken) -> anyhow::Result<()> {
    let _ = ctx;
    shutdown.cancelled().await;
    Ok(())
}
