//! Bearer-token auth as extractors: a handler states the role it needs in its signature
//! (`Auth<Admin>`), so no route can be added without deciding who may call it.

use std::marker::PhantomData;

use axum::{extract::FromRequestParts, http::request::Parts};
use hookrelay_shared::{
    activity,
    tokens::{self, Role, TokenInfo},
};

use crate::{error::AppError, state::AppState};

/// The least role a route needs.
pub trait Required {
    const ROLE: Role;
}

pub struct Viewer;
pub struct Admin;
pub struct Owner;

impl Required for Viewer {
    const ROLE: Role = Role::Viewer;
}
impl Required for Admin {
    const ROLE: Role = Role::Admin;
}
impl Required for Owner {
    const ROLE: Role = Role::Owner;
}

/// The authenticated caller, holding at least role `R`.
pub struct Auth<R: Required> {
    pub token: TokenInfo,
    _role: PhantomData<R>,
}

impl<R: Required> Auth<R> {
    /// The caller as the activity log names it (the token's name).
    pub fn actor(&self) -> activity::Actor {
        activity::Actor::token(self.token.id, &self.token.name)
    }
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl<R: Required> FromRequestParts<AppState> for Auth<R> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(raw) = bearer(parts) else {
            return Err(AppError::Unauthorized);
        };
        // authenticate looks the token up by its SHA-256, so timing does not depend on it.
        let Some(token) = tokens::authenticate(&state.ctx.db, raw).await? else {
            return Err(AppError::Unauthorized);
        };
        if token.role < R::ROLE {
            tracing::info!(token_id = %token.id, role = token.role.as_str(), needs = R::ROLE.as_str(), "role too low");
            return Err(AppError::Forbidden(R::ROLE.as_str()));
        }
        Ok(Self {
            token,
            _role: PhantomData,
        })
    }
}
