//! The scheduler: fires due retries from Redis and runs retention. (Being built.)

use hookrelay_shared::Context;
use tokio_util::sync::CancellationToken;

/// Runs a scheduler until `shutdown` is cancelled.
pub async fn run(ctx: Context, shutdown: CancellationToken) -> anyhow::Result<()> {
    let _ = ctx;
    shutdown.cancelled().await;
    Ok(())
}

/// What one retention run removed.
#[derive(Debug, Default, serde::Serialize)]
pub struct PurgeReport {
    pub partitions_dropped: Vec<String>,
}

/// Runs retention once.
pub async fn purge_once(ctx: &Context) -> anyhow::Result<PurgeReport> {
    let _ = ctx;
    Ok(PurgeReport::default())
}
