//! The dispatcher's view of webhooks: each live one with its live signing keys ([`Target`]),
//! all of them for the cache, or one for a manual retry.

use sqlx::PgPool;
use uuid::Uuid;

use super::{COLUMNS, Row, Webhook, from_row, get};
use crate::signing_keys::SigningKeys;

/// A webhook as the dispatcher needs it: with its live signing keys, newest first.
#[derive(Clone, Debug)]
pub struct Target {
    pub webhook: Webhook,
    pub keys: SigningKeys,
}

/// Every live, enabled webhook with its unexpired secrets (the dispatcher's cache).
pub async fn load_targets(pool: &PgPool) -> sqlx::Result<Vec<Target>> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhooks WHERE deleted_at IS NULL AND enabled ORDER BY id"
    )))
    .fetch_all(pool)
    .await?;
    let secrets: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT webhook_id, secret FROM webhook_secrets
         WHERE expires_at IS NULL OR expires_at > now() ORDER BY created_at DESC, id DESC",
    )
    .fetch_all(pool)
    .await?;
    let mut by_hook: std::collections::HashMap<Uuid, Vec<String>> = Default::default();
    for (id, s) in secrets {
        by_hook.entry(id).or_default().push(s);
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let webhook = from_row(r);
            let texts = by_hook.remove(&webhook.id).unwrap_or_default();
            let keys = SigningKeys::from_stored(texts.iter().map(String::as_str));
            Target { webhook, keys }
        })
        .collect())
}

/// The same as [`load_targets`] for one webhook, enabled or not (used for manual retries).
pub async fn load_target(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Target>> {
    let Some(webhook) = get(pool, id).await? else {
        return Ok(None);
    };
    let secrets: Vec<String> = sqlx::query_scalar(
        "SELECT secret FROM webhook_secrets WHERE webhook_id = $1
         AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at DESC, id DESC",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let keys = SigningKeys::from_stored(secrets.iter().map(String::as_str));
    Ok(Some(Target { webhook, keys }))
}
