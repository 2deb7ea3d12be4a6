//! The in-memory cache of subscribed webhooks (enabled, live, with their secrets).
//!
//! Every replica listens on [`webhooks::CHANGES_CHANNEL`] and reloads the whole set on a
//! notification; a periodic reload covers notifications missed while the listener was
//! reconnecting. The set is small (webhooks, not events), so a full reload is cheap.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use hookrelay_shared::{matching, webhooks, webhooks::Target};
use sqlx::{PgPool, postgres::PgListener};
use tokio_util::sync::CancellationToken;

/// How often the cache is reloaded even without a notification.
pub const FULL_RELOAD_EVERY: Duration = Duration::from_secs(30);

/// The current set of targets, swapped as a whole on reload.
#[derive(Clone, Default)]
pub struct TargetCache {
    inner: Arc<RwLock<Arc<Vec<Arc<Target>>>>>,
}

impl TargetCache {
    /// Loads the cache once.
    pub async fn load(pool: &PgPool) -> sqlx::Result<Self> {
        let cache = Self::default();
        cache.reload(pool).await?;
        Ok(cache)
    }

    /// Replaces the set with the database's.
    pub async fn reload(&self, pool: &PgPool) -> sqlx::Result<()> {
        let targets: Vec<Arc<Target>> = webhooks::load_targets(pool)
            .await?
            .into_iter()
            .map(Arc::new)
            .collect();
        tracing::debug!(webhooks = targets.len(), "webhook cache loaded");
        if let Ok(mut guard) = self.inner.write() {
            *guard = Arc::new(targets);
        }
        Ok(())
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Target>>> {
        self.inner.read().map(|g| g.clone()).unwrap_or_default()
    }

    /// The enabled webhooks subscribed to `event_type`.
    pub fn matching(&self, event_type: &str) -> Vec<Arc<Target>> {
        self.snapshot()
            .iter()
            .filter(|t| matching::any_matches(&t.webhook.event_types, event_type))
            .cloned()
            .collect()
    }

    /// Drops one webhook from the cache at once (it was disabled; the NOTIFY reload follows).
    pub fn remove(&self, id: uuid::Uuid) {
        if let Ok(mut guard) = self.inner.write() {
            let kept: Vec<Arc<Target>> = guard.iter().filter(|t| t.webhook.id != id).cloned().collect();
            *guard = Arc::new(kept);
        }
    }

    /// One enabled webhook, if it is in the cache.
    pub fn get(&self, id: uuid::Uuid) -> Option<Arc<Target>> {
        self.snapshot().iter().find(|t| t.webhook.id == id).cloned()
    }

    /// Keeps the cache fresh until `shutdown`: LISTEN for changes, plus a periodic reload.
    pub async fn keep_fresh(self, pool: PgPool, shutdown: CancellationToken) {
        let mut listener: Option<PgListener> = None;
        let mut backoff = Duration::from_millis(200);
        loop {
            if listener.is_none() {
                match subscribe(&pool).await {
                    Ok(l) => {
                        listener = Some(l);
                        backoff = Duration::from_millis(200);
                        // Changes made while not listening would be missed otherwise.
                        self.reload_logged(&pool).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for webhook changes; retrying");
                    }
                }
            }
            let tick = tokio::time::sleep(if listener.is_some() {
                FULL_RELOAD_EVERY
            } else {
                backoff
            });
            let got = async {
                match listener.as_mut() {
                    Some(l) => Some(l.recv().await),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick => {
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    self.reload_logged(&pool).await;
                }
                result = got => match result {
                    Some(Ok(_)) => self.reload_logged(&pool).await,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "webhook change listener failed; reconnecting");
                        listener = None;
                    }
                    None => {}
                },
            }
        }
    }

    async fn reload_logged(&self, pool: &PgPool) {
        if let Err(e) = self.reload(pool).await {
            tracing::warn!(error = %e, "reloading webhooks failed; keeping the previous set");
        }
    }
}

async fn subscribe(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut l = PgListener::connect_with(pool).await?;
    l.listen(webhooks::CHANGES_CHANNEL).await?;
    Ok(l)
}
