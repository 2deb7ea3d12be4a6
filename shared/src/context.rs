//! What a component needs to start: the configuration, the database pool, the metrics and the
//! settings in force. RabbitMQ and Redis connections are each component's own, so each can
//! reconnect by itself.

use std::sync::Arc;

use sqlx::PgPool;

use crate::{Config, metrics::Metrics, settings::SettingsCache};

/// Shared handles passed to every component's `run`.
#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub db: PgPool,
    pub metrics: Arc<Metrics>,
    /// Retention and the default retry policy in force (`PUT /api/v1/settings`, else the
    /// config), refreshed in the background.
    pub settings: SettingsCache,
}

impl Context {
    /// A context on `db`; its settings cache starts refreshing (inside a Tokio runtime).
    pub fn new(config: Config, db: PgPool, metrics: Arc<Metrics>) -> Self {
        let settings = SettingsCache::new(&config, db.clone());
        Self {
            config: Arc::new(config),
            db,
            metrics,
            settings,
        }
    }
}
