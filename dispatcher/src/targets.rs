//! The in-memory cache of subscribed webhooks (enabled, live, with their secrets).
//!
//! Every replica listens on [`webhooks::CHANGES_CHANNEL`] and reloads the whole set on a
//! notification; a periodic reload covers notifications missed while the listener was
//! reconnecting. The set is small (webhooks, not events), so a full reload is cheap.
//!
//! Payload filters are compiled here, once per load, and evaluated in [`TargetCache::matching`];
//! an event's body is parsed for them only when a subscribed webhook has one.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use hookrelay_shared::{filter::Filter, matching, webhooks, webhooks::Target};
use sqlx::{PgPool, postgres::PgListener};
use tokio_util::sync::CancellationToken;

/// How often the cache is reloaded even without a notification.
pub const FULL_RELOAD_EVERY: Duration = Duration::from_secs(30);

/// A cached webhook with its compiled filter.
#[derive(Clone)]
struct Entry {
    target: Arc<Target>,
    filter: Option<Filter>,
}

/// The current set of targets, swapped as a whole on reload.
#[derive(Clone, Default)]
pub struct TargetCache {
    inner: Arc<RwLock<Arc<Vec<Entry>>>>,
}

/// Compiles a webhook's filter. One that does not compile (it was stored by hand, or by a newer
/// version) matches nothing: sending what the filter was meant to hold back would be worse.
fn compile(target: &Target) -> Result<Option<Filter>, ()> {
    match &target.webhook.filter {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(doc) => Filter::compile(doc).map(Some).map_err(|e| {
            tracing::warn!(webhook_id = %target.webhook.id, error = %e,
                "webhook filter does not compile; the webhook gets no events");
        }),
    }
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
        self.replace(webhooks::load_targets(pool).await?);
        Ok(())
    }

    /// A cache holding `targets` (for tests and benchmarks; the dispatcher uses [`Self::load`]).
    pub fn with_targets(targets: Vec<Target>) -> Self {
        let cache = Self::default();
        cache.replace(targets);
        cache
    }

    fn replace(&self, targets: Vec<Target>) {
        let entries: Vec<Entry> = targets
            .into_iter()
            .filter_map(|t| {
                let filter = compile(&t).ok()?;
                Some(Entry {
                    target: Arc::new(t),
                    filter,
                })
            })
            .collect();
        tracing::debug!(webhooks = entries.len(), "webhook cache loaded");
        if let Ok(mut guard) = self.inner.write() {
            *guard = Arc::new(entries);
        }
    }

    fn snapshot(&self) -> Arc<Vec<Entry>> {
        self.inner.read().map(|g| g.clone()).unwrap_or_default()
    }

    /// The enabled webhooks subscribed to an event of `event_type` whose filters (if any) pass
    /// it. `body` is the event's outgoing body (`{"id","type","timestamp","data"}`): it is parsed
    /// at most once, and only when a subscribed webhook has a filter.
    pub fn matching(&self, event_type: &str, body: &str) -> Vec<Arc<Target>> {
        let snapshot = self.snapshot();
        let mut data: Option<serde_json::Value> = None;
        snapshot
            .iter()
            .filter(|e| matching::any_matches(&e.target.webhook.event_types, event_type))
            .filter(|e| match &e.filter {
                None => true,
                Some(f) => f.matches(event_type, data.get_or_insert_with(|| event_data(body))),
            })
            .map(|e| e.target.clone())
            .collect()
    }

    /// Drops one webhook from the cache at once (it was disabled; the NOTIFY reload follows).
    pub fn remove(&self, id: uuid::Uuid) {
        if let Ok(mut guard) = self.inner.write() {
            let kept: Vec<Entry> = guard
                .iter()
                .filter(|e| e.target.webhook.id != id)
                .cloned()
                .collect();
            *guard = Arc::new(kept);
        }
    }

    /// One enabled webhook, if it is in the cache.
    pub fn get(&self, id: uuid::Uuid) -> Option<Arc<Target>> {
        self.snapshot()
            .iter()
            .find(|e| e.target.webhook.id == id)
            .map(|e| e.target.clone())
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

/// The `data` of an outgoing body (`null` if it can't be read, which a valid event never is).
pub fn event_data(body: &str) -> serde_json::Value {
    #[derive(serde::Deserialize)]
    struct Body {
        data: serde_json::Value,
    }
    serde_json::from_str::<Body>(body)
        .map(|b| b.data)
        .unwrap_or(serde_json::Value::Null)
}

async fn subscribe(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut l = PgListener::connect_with(pool).await?;
    l.listen(webhooks::CHANGES_CHANNEL).await?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use hookrelay_shared::webhooks::Webhook;
    use serde_json::json;
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::*;

    fn target(pattern: &str, filter: Option<serde_json::Value>) -> Target {
        let now = OffsetDateTime::now_utc();
        Target {
            webhook: Webhook {
                id: Uuid::now_v7(),
                name: "w".into(),
                url: "http://127.0.0.1:9/".into(),
                event_types: vec![pattern.into()],
                enabled: true,
                retry_policy: None,
                max_in_flight: 1,
                rate_limit: None,
                disabled_reason: None,
                disabled_at: None,
                filter,
                headers: Default::default(),
                signature_scheme: Default::default(),
                ordering: Default::default(),
                public_key: None,
                created_at: now,
                updated_at: now,
            },
            keys: Default::default(),
        }
    }

    fn body(event_type: &str, data: serde_json::Value) -> String {
        json!({"id": "evt_1", "type": event_type, "timestamp": "2026-12-01T00:00:00Z", "data": data})
            .to_string()
    }

    #[test]
    fn filters_are_evaluated_after_the_patterns() {
        let plain = target("order.*", None);
        let pro = target("order.*", Some(json!({"data.plan": "pro"})));
        let other = target("user.*", Some(json!({"data.plan": "pro"})));
        let (plain_id, pro_id) = (plain.webhook.id, pro.webhook.id);
        let cache = TargetCache::with_targets(vec![plain, pro, other]);
        let ids = |t: &str, data| -> Vec<Uuid> {
            cache
                .matching(t, &body(t, data))
                .iter()
                .map(|t| t.webhook.id)
                .collect()
        };
        assert_eq!(ids("order.paid", json!({"plan": "pro"})), vec![plain_id, pro_id]);
        assert_eq!(ids("order.paid", json!({"plan": "free"})), vec![plain_id]);
        assert_eq!(ids("order.paid", json!({})), vec![plain_id]);
        assert!(ids("product.created", json!({"plan": "pro"})).is_empty());
    }

    #[test]
    fn a_stored_filter_that_does_not_compile_gets_no_events() {
        let broken = target("*", Some(json!({"nope": 1})));
        let cache = TargetCache::with_targets(vec![broken]);
        assert!(cache.matching("a.b", &body("a.b", json!({}))).is_empty());
        let null = target("*", Some(serde_json::Value::Null));
        let cache = TargetCache::with_targets(vec![null]);
        assert_eq!(cache.matching("a.b", &body("a.b", json!({}))).len(), 1);
    }

    #[test]
    fn an_unreadable_body_is_no_data_not_a_panic() {
        assert_eq!(event_data("not json"), serde_json::Value::Null);
        let cache = TargetCache::with_targets(vec![target("*", Some(json!({"data.a": {"$exists": false}})))]);
        assert_eq!(cache.matching("a.b", "garbage").len(), 1);
    }
}
