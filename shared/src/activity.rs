//! The activity log: who (a token's name, or `system`) did what, when. Written by the query
//! API for people's actions and by the dispatcher and scheduler for the system's; read by
//! `GET /api/v1/activity`; purged with the attempts' retention.
//!
//! Recording is best effort after the action itself succeeded ([`record_logged`]): a failed
//! insert is logged and never undoes or fails the action it describes.

use std::time::Duration;

use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

/// The actor of what the system did on its own.
pub const SYSTEM: &str = "system";

/// The kinds of entry (the `kind` filter takes these).
pub mod kind {
    pub const WEBHOOK_CREATED: &str = "webhook.created";
    pub const WEBHOOK_UPDATED: &str = "webhook.updated";
    pub const WEBHOOK_DELETED: &str = "webhook.deleted";
    pub const WEBHOOK_ENABLED: &str = "webhook.enabled";
    pub const WEBHOOK_DISABLED: &str = "webhook.disabled";
    pub const WEBHOOK_SECRET_ROTATED: &str = "webhook.secret_rotated";
    pub const WEBHOOK_AUTO_DISABLED: &str = "webhook.auto_disabled";
    pub const WEBHOOK_TESTED: &str = "webhook.tested";
    pub const DELIVERY_RETRIED: &str = "delivery.retried";
    pub const BULK_RETRY_REQUESTED: &str = "bulk_retry.requested";
    pub const BULK_RETRY_FINISHED: &str = "bulk_retry.finished";
    pub const SETTINGS_CHANGED: &str = "settings.changed";
    pub const TOKEN_CREATED: &str = "token.created";
    pub const TOKEN_REVOKED: &str = "token.revoked";
    pub const CIRCUIT_OPENED: &str = "circuit.opened";
    pub const CIRCUIT_CLOSED: &str = "circuit.closed";
    pub const RETENTION_RUN: &str = "retention.run";

    /// Every kind, for validating the filter and documenting it.
    pub const ALL: [&str; 17] = [
        WEBHOOK_CREATED,
        WEBHOOK_UPDATED,
        WEBHOOK_DELETED,
        WEBHOOK_ENABLED,
        WEBHOOK_DISABLED,
        WEBHOOK_SECRET_ROTATED,
        WEBHOOK_AUTO_DISABLED,
        WEBHOOK_TESTED,
        DELIVERY_RETRIED,
        BULK_RETRY_REQUESTED,
        BULK_RETRY_FINISHED,
        SETTINGS_CHANGED,
        TOKEN_CREATED,
        TOKEN_REVOKED,
        CIRCUIT_OPENED,
        CIRCUIT_CLOSED,
        RETENTION_RUN,
    ];
}

/// Who did it.
#[derive(Clone, Debug)]
pub struct Actor {
    /// The token's name, or [`SYSTEM`].
    pub name: String,
    pub token_id: Option<Uuid>,
}

impl Actor {
    pub fn system() -> Self {
        Self {
            name: SYSTEM.into(),
            token_id: None,
        }
    }

    pub fn token(id: Uuid, name: &str) -> Self {
        Self {
            name: name.into(),
            token_id: Some(id),
        }
    }
}

/// Writes one entry.
pub async fn record<'e>(
    db: impl PgExecutor<'e>,
    actor: &Actor,
    kind: &str,
    webhook_id: Option<Uuid>,
    details: serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO activity (id, at, actor, token_id, kind, webhook_id, details)
         VALUES ($1, now(), $2, $3, $4, $5, $6)",
    )
    .bind(crate::ids::new_id())
    .bind(&actor.name)
    .bind(actor.token_id)
    .bind(kind)
    .bind(webhook_id)
    .bind(details)
    .execute(db)
    .await?;
    Ok(())
}

/// [`record`], logging a failure instead of returning it.
pub async fn record_logged(
    db: &PgPool,
    actor: &Actor,
    kind: &str,
    webhook_id: Option<Uuid>,
    details: serde_json::Value,
) {
    if let Err(e) = record(db, actor, kind, webhook_id, details).await {
        tracing::error!(error = %e, kind, "recording an activity entry failed");
    }
}

/// Deletes the entries older than `retention`, a batch at a time; returns how many.
pub async fn purge(db: &PgPool, retention: Duration) -> sqlx::Result<u64> {
    let secs = retention.as_secs_f64();
    crate::db::delete_in_batches(|| async move {
        sqlx::query(
            "DELETE FROM activity WHERE id IN (
                 SELECT id FROM activity WHERE at < now() - make_interval(secs => $1) LIMIT $2)",
        )
        .bind(secs)
        .bind(crate::db::PURGE_BATCH)
        .execute(db)
        .await
        .map(|done| done.rows_affected())
    })
    .await
}
