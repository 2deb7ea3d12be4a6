//! What a component needs to start: the configuration, the database pool and the metrics.
//! RabbitMQ and Redis connections are each component's own, so each can reconnect by itself.

use std::sync::Arc;

use sqlx::PgPool;

use crate::{Config, metrics::Metrics};

/// Shared handles passed to every component's `run`.
#[derive(Clone)]
pub struct Context {
    pub config: Arc<Config>,
    pub db: PgPool,
    pub metrics: Arc<Metrics>,
}
