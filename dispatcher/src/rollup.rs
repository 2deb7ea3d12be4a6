//! The recorder's side of the endpoint health stats ([`hookrelay_shared::stats`]): committed
//! attempts are counted in memory and upserted into `webhook_stats` once a second, under this
//! process's own shard, outside the attempts' transactions.
//!
//! Why outside: the hot path (7,000 attempts/s, all to one webhook) gains no statement and no
//! row lock per batch; one small upsert a second per process is all it costs, and no two
//! writers ever touch the same row. What that gives up: a process that crashes loses at most
//! the last second of counts (or, while PostgreSQL is unreachable, the counts kept for it
//! meanwhile). The attempts themselves are in the log; the stats are a health summary, and
//! a second of a window of an hour or more is noise.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use hookrelay_shared::{Context, stats::Rollup, stats_store};
use tokio_util::sync::CancellationToken;

use crate::record::Record;

/// How often the counts are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The counts not yet written, and this process's shard.
pub struct RollupSink {
    shard: i32,
    pending: Mutex<Rollup>,
}

impl RollupSink {
    /// A sink with a random shard: two processes share one only by a 1-in-4-billion chance,
    /// and then merely update the same rows (still correct).
    pub fn new() -> Self {
        Self {
            shard: rand::random(),
            pending: Mutex::new(Rollup::default()),
        }
    }

    /// Counts a committed batch.
    pub fn add(&self, batch: &[Record]) {
        // A poisoned lock (a panic elsewhere while adding) only costs those counts.
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        for r in batch {
            let ms = u64::try_from(r.out.duration.as_millis()).unwrap_or(u64::MAX);
            pending.add(r.req.target.webhook.id, r.out.success(), r.out.attempted_at, ms);
        }
    }

    fn take(&self) -> Rollup {
        self.pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }

    fn put_back(&self, rollup: Rollup) {
        if let Ok(mut p) = self.pending.lock() {
            p.merge(rollup);
        }
    }

    /// Writes what is pending; on failure keeps it for the next flush.
    pub async fn flush(&self, ctx: &Context) -> bool {
        let rollup = self.take();
        if rollup.is_empty() {
            return true;
        }
        let started = std::time::Instant::now();
        match stats_store::upsert(&ctx.db, self.shard, &rollup).await {
            Ok(()) => {
                ctx.metrics
                    .db_operation
                    .get_or_create(&[("op", "stats_rollup")])
                    .observe(started.elapsed().as_secs_f64());
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, rows = rollup.rows.len(), "writing the stats rollup failed; kept for the next flush");
                self.put_back(rollup);
                false
            }
        }
    }
}

impl Default for RollupSink {
    fn default() -> Self {
        Self::new()
    }
}

/// Flushes every [`FLUSH_EVERY`] until `stop`, then once more (the recorder stops it after
/// its last batch is committed).
pub async fn run(ctx: Context, sink: Arc<RollupSink>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                sink.flush(&ctx).await;
            }
            _ = stop.cancelled() => break,
        }
    }
    // A last try at shutdown, bounded so a database outage can't hold the exit.
    let _ = tokio::time::timeout(Duration::from_secs(2), sink.flush(&ctx)).await;
}
