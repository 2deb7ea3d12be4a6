//! A webhook's keys in PostgreSQL (`webhook_secrets`): storing new ones, rotation, and the
//! change of signature scheme. `whsec_` (v1) and `whsk_` (v1a) keys share the table and the
//! rules, each kind counted on its own: at most [`MAX_LIVE_SECRETS`] live per kind.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    signature::Secret,
    signing_keys::{Key, KeyKind, NewKeys, SignatureScheme},
    webhooks::{MAX_LIVE_SECRETS, MAX_ROTATION_OVERLAP, ROTATION_OVERLAP, notify_changed},
};

/// Stores a new key of a webhook (current: no expiry).
pub async fn insert(conn: &mut PgConnection, webhook_id: Uuid, key: &Key) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO webhook_secrets (id, webhook_id, secret) VALUES ($1, $2, $3)")
        .bind(crate::ids::new_id())
        .bind(webhook_id)
        .bind(key.expose())
        .execute(conn)
        .await?;
    Ok(())
}

/// The keys a new webhook starts with: one of every kind its scheme names, `given` taking the
/// place of the generated one of its kind.
pub fn initial(scheme: SignatureScheme, given: Option<Key>) -> Vec<Key> {
    scheme
        .kinds()
        .iter()
        .map(|&kind| match &given {
            Some(k) if k.kind() == kind => k.clone(),
            _ => Key::generate(kind),
        })
        .collect()
}

/// Replaces the current keys with new ones; see [`rotate_secret_with`]. The previous keys keep
/// signing for 24 h.
pub async fn rotate_secret(pool: &PgPool, id: Uuid, new: Option<Secret>) -> sqlx::Result<Option<NewKeys>> {
    rotate_secret_with(pool, id, new.map(Key::Hmac), ROTATION_OVERLAP).await
}

/// Makes a new key of every kind the webhook's scheme names (`new` replacing the generated one
/// of its kind; the caller checks that the scheme uses it). The previous keys, of every kind,
/// keep signing for `overlap` at most (zero: they stop at once, for a leaked key), and of the
/// live keys of each kind only the newest [`MAX_LIVE_SECRETS`] are kept. `overlap` is clamped
/// to 0..=[`MAX_ROTATION_OVERLAP`]. `None` when there is no such webhook.
pub async fn rotate_secret_with(
    pool: &PgPool,
    id: Uuid,
    new: Option<Key>,
    overlap: time::Duration,
) -> sqlx::Result<Option<NewKeys>> {
    let overlap = overlap.clamp(time::Duration::ZERO, MAX_ROTATION_OVERLAP);
    let mut tx = pool.begin().await?;
    let scheme: Option<String> = sqlx::query_scalar(
        "SELECT signature_scheme FROM webhooks WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(scheme) = scheme else {
        return Ok(None);
    };
    let scheme = SignatureScheme::parse(&scheme).unwrap_or_default();
    sqlx::query(
        "UPDATE webhook_secrets SET expires_at = now() + $2
         WHERE webhook_id = $1 AND (expires_at IS NULL OR expires_at > now() + $2)",
    )
    .bind(id)
    .bind(overlap)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM webhook_secrets WHERE webhook_id = $1 AND expires_at <= now()")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let mut made = NewKeys::default();
    for key in initial(scheme, new) {
        insert(&mut tx, id, &key).await?;
        made.push(key);
    }
    prune(&mut tx, id).await?;
    sqlx::query("UPDATE webhooks SET updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    notify_changed(&mut *tx, id).await?;
    tx.commit().await?;
    Ok(Some(made))
}

/// Keeps the newest [`MAX_LIVE_SECRETS`] live keys of each kind.
async fn prune(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    // Rows made in one transaction share now(): the id (UUIDv7) breaks the tie.
    sqlx::query(
        "DELETE FROM webhook_secrets WHERE webhook_id = $1 AND id NOT IN (
             SELECT id FROM (
                 SELECT id, row_number() OVER (PARTITION BY starts_with(secret, 'whsk_')
                                               ORDER BY created_at DESC, id DESC) AS n
                 FROM webhook_secrets
                 WHERE webhook_id = $1 AND (expires_at IS NULL OR expires_at > now())
             ) live WHERE n <= $2)",
    )
    .bind(id)
    .bind(MAX_LIVE_SECRETS)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves a webhook (row locked by the caller) from scheme `from` to `to`: a key of each kind
/// `to` adds is made at once; the keys of each kind it drops keep signing for
/// [`ROTATION_OVERLAP`] (24 h), so receivers have a day to switch. Returns the new keys.
pub async fn change_scheme(
    conn: &mut PgConnection,
    id: Uuid,
    from: SignatureScheme,
    to: SignatureScheme,
) -> sqlx::Result<NewKeys> {
    let mut made = NewKeys::default();
    for kind in [KeyKind::Hmac, KeyKind::Ed25519] {
        match (from.uses(kind), to.uses(kind)) {
            (false, true) => {
                let key = Key::generate(kind);
                insert(conn, id, &key).await?;
                made.push(key);
            }
            (true, false) => {
                sqlx::query(
                    "UPDATE webhook_secrets SET expires_at = now() + $3
                     WHERE webhook_id = $1 AND starts_with(secret, $2)
                       AND (expires_at IS NULL OR expires_at > now() + $3)",
                )
                .bind(id)
                .bind(kind.prefix())
                .bind(ROTATION_OVERLAP)
                .execute(&mut *conn)
                .await?;
            }
            _ => {}
        }
    }
    Ok(made)
}
