//! API token management for owners: list, create (the token is shown once), revoke; and
//! `GET /api/v1/me` so any valid token can learn its own role (the admin page uses it).

use axum::{Json, extract::State, http::StatusCode};
use hookrelay_shared::{
    activity,
    event::rfc3339,
    tokens::{self, Role, TokenInfo},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    auth::{Auth, Owner, Viewer},
    error::{AppError, AppResult},
    extract::{ApiJson, IdPath},
    problems::{BadId, JsonBody, NeedsOwner, NeedsToken, NoSuchLiveToken},
    state::AppState,
};

/// A stored token (never its secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenOut {
    pub id: Uuid,
    pub name: String,
    /// `viewer`, `admin` or `owner`.
    pub role: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    /// The token itself: only in the answer to create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl TokenOut {
    fn new(t: TokenInfo, token: Option<String>) -> Self {
        Self {
            id: t.id,
            name: t.name,
            role: t.role.as_str().into(),
            created_at: rfc3339(t.created_at),
            last_used_at: t.last_used_at.map(rfc3339),
            revoked_at: t.revoked_at.map(rfc3339),
            token,
        }
    }
}

/// The body of `POST /api/v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    pub name: String,
    /// `viewer`, `admin` or `owner`.
    pub role: String,
}

/// Every token, newest first (revoked ones too).
#[utoipa::path(
    get, path = "/api/v1/tokens", tag = "tokens", operation_id = "list_tokens",
    responses(
        (status = 200, body = Vec<TokenOut>),
        NeedsOwner,
    )
)]
pub async fn list(State(state): State<AppState>, _auth: Auth<Owner>) -> AppResult<Json<Vec<TokenOut>>> {
    let all = tokens::list(&state.ctx.db).await?;
    Ok(Json(all.into_iter().map(|t| TokenOut::new(t, None)).collect()))
}

/// Creates a token; the answer's `token` is shown only this once.
#[utoipa::path(
    post, path = "/api/v1/tokens", tag = "tokens", operation_id = "create_token", request_body = TokenCreate,
    responses(
        (status = 201, body = TokenOut),
        JsonBody, NeedsOwner,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Owner>,
    ApiJson(req): ApiJson<TokenCreate>,
) -> AppResult<(StatusCode, Json<TokenOut>)> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AppError::unprocessable("name: must be 1-200 characters"));
    }
    let role: Role = req
        .role
        .parse()
        .map_err(|e| AppError::unprocessable(format!("role: {e}")))?;
    let (token, info) = tokens::create(&state.ctx.db, name, role).await?;
    tracing::info!(token_id = %info.id, role = role.as_str(), by = %auth.token.id, "token created");
    activity::record_logged(
        &state.ctx.db,
        &auth.actor(),
        activity::kind::TOKEN_CREATED,
        None,
        serde_json::json!({"token_id": info.id, "name": info.name, "role": role.as_str()}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(TokenOut::new(info, Some(token)))))
}

/// Revokes a token at once.
#[utoipa::path(
    delete, path = "/api/v1/tokens/{id}", tag = "tokens", operation_id = "revoke_token", params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Revoked"),
        BadId, NeedsOwner, NoSuchLiveToken,
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    auth: Auth<Owner>,
    IdPath(id): IdPath,
) -> AppResult<StatusCode> {
    if !tokens::revoke(&state.ctx.db, id).await? {
        return Err(AppError::NotFound(format!("no live token with id {id}")));
    }
    tracing::info!(token_id = %id, by = %auth.token.id, "token revoked");
    activity::record_logged(
        &state.ctx.db,
        &auth.actor(),
        activity::kind::TOKEN_REVOKED,
        None,
        serde_json::json!({"token_id": id}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The calling token (any role).
#[utoipa::path(
    get, path = "/api/v1/me", tag = "tokens",
    responses(
        (status = 200, body = TokenOut),
        NeedsToken,
    )
)]
pub async fn me(auth: Auth<Viewer>) -> Json<TokenOut> {
    Json(TokenOut::new(auth.token, None))
}
