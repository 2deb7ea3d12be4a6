//! API tokens: `hr_` + 43 random base64url characters, shown once and stored as SHA-256.
//! High-entropy tokens need no slow hash; lookup is by hash, so no token-dependent timing.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// Roles rank `viewer` < `admin` < `owner`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Admin,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "admin" => Ok(Self::Admin),
            "owner" => Ok(Self::Owner),
            other => Err(format!("unknown role `{other}` (viewer, admin or owner)")),
        }
    }
}

/// A stored token, without its secret.
#[derive(Clone, Debug, Serialize)]
pub struct TokenInfo {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

type Row = (
    Uuid,
    String,
    String,
    OffsetDateTime,
    Option<OffsetDateTime>,
    Option<OffsetDateTime>,
);

fn from_row((id, name, role, created_at, last_used_at, revoked_at): Row) -> TokenInfo {
    TokenInfo {
        id,
        name,
        role: role.parse().unwrap_or(Role::Viewer),
        created_at,
        last_used_at,
        revoked_at,
    }
}

/// The SHA-256 of a token, as stored.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Creates a token; returns the plaintext (shown once) and what is stored.
pub async fn create(pool: &PgPool, name: &str, role: Role) -> sqlx::Result<(String, TokenInfo)> {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = format!("hr_{}", URL_SAFE_NO_PAD.encode(raw));
    let row: Row = sqlx::query_as(
        "INSERT INTO api_tokens (id, name, role, token_hash) VALUES ($1, $2, $3, $4)
         RETURNING id, name, role, created_at, last_used_at, revoked_at",
    )
    .bind(crate::ids::new_id())
    .bind(name)
    .bind(role.as_str())
    .bind(hash(&token))
    .fetch_one(pool)
    .await?;
    Ok((token, from_row(row)))
}

/// The live token matching `token`, if any (also records its use, at most once a minute).
pub async fn authenticate(pool: &PgPool, token: &str) -> sqlx::Result<Option<TokenInfo>> {
    if !token.starts_with("hr_") || token.len() > 100 {
        return Ok(None);
    }
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, name, role, created_at, last_used_at, revoked_at FROM api_tokens
         WHERE token_hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash(token))
    .fetch_optional(pool)
    .await?;
    let stale = |t: &Option<OffsetDateTime>| {
        t.is_none_or(|t| t < OffsetDateTime::now_utc() - time::Duration::minutes(1))
    };
    if let Some(r) = &row
        && stale(&r.4)
    {
        sqlx::query("UPDATE api_tokens SET last_used_at = now() WHERE id = $1")
            .bind(r.0)
            .execute(pool)
            .await?;
    }
    Ok(row.map(from_row))
}

/// Every token, newest first.
pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<TokenInfo>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, name, role, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY created_at DESC",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Revokes a token; false when there is no such live token.
pub async fn revoke(pool: &PgPool, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}
