//! A webhook's circuit health, read from the dispatchers' shared state in Redis
//! ([`hookrelay_shared::circuit`]). The connection is made lazily and at most once a second
//! while Redis is down; a webhook read then still answers, with `health: null`.

use std::time::{Duration, Instant};

use hookrelay_shared::circuit::{self, Health};
use redis::aio::ConnectionManager;
use tokio::sync::Mutex;
use uuid::Uuid;

/// The query API's Redis connection for health reads.
pub struct HealthReader {
    url: String,
    namespace: String,
    conn: Mutex<(Option<ConnectionManager>, Option<Instant>)>,
}

impl HealthReader {
    pub fn new(url: &str, namespace: &str) -> Self {
        Self {
            url: url.to_owned(),
            namespace: namespace.to_owned(),
            conn: Mutex::new((None, None)),
        }
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.0.as_ref() {
            return Some(c.clone());
        }
        if slot.1.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return None;
        }
        slot.1 = Some(Instant::now());
        let client = redis::Client::open(self.url.as_str()).ok()?;
        match tokio::time::timeout(Duration::from_secs(2), client.get_connection_manager()).await {
            Ok(Ok(m)) => {
                slot.0 = Some(m.clone());
                Some(m)
            }
            _ => None,
        }
    }

    /// Adds deliveries to the scheduler's retry set (those an `ordering: none` released), on
    /// this connection; when Redis can't take them, the scheduler's reconcile adds them.
    pub async fn schedule(&self, entries: &[hookrelay_shared::retry_store::RetryEntry]) {
        let Some(mut conn) = self.connection().await else {
            return;
        };
        let added = tokio::time::timeout(
            Duration::from_secs(2),
            hookrelay_shared::retry_store::schedule(&mut conn, &self.namespace, entries),
        )
        .await;
        if !matches!(added, Ok(Ok(()))) {
            tracing::warn!(
                deliveries = entries.len(),
                "released deliveries not added to redis; the scheduler's reconcile adds them"
            );
        }
    }

    /// The webhook's health; `None` when Redis can't answer within a second.
    pub async fn read(&self, webhook_id: Uuid) -> Option<Health> {
        let mut conn = self.connection().await?;
        match tokio::time::timeout(
            Duration::from_secs(1),
            circuit::read(&mut conn, &self.namespace, webhook_id),
        )
        .await
        {
            Ok(Ok(h)) => Some(h),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reading webhook health from redis failed");
                None
            }
            Err(_) => {
                self.conn.lock().await.0 = None;
                None
            }
        }
    }

    /// The health of each of `ids` in one round trip, in order; `None` when Redis can't
    /// answer within a second.
    pub async fn read_many(&self, ids: &[Uuid]) -> Option<Vec<Health>> {
        let mut conn = self.connection().await?;
        match tokio::time::timeout(
            Duration::from_secs(1),
            circuit::read_many(&mut conn, &self.namespace, ids),
        )
        .await
        {
            Ok(Ok(h)) => Some(h),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reading webhooks' health from redis failed");
                None
            }
            Err(_) => {
                self.conn.lock().await.0 = None;
                None
            }
        }
    }
}
