//! `GET|PUT /api/v1/settings`: the data retention and the default retry policy in force.
//! Reading needs admin, changing needs owner. A change is stored in PostgreSQL and taken up by
//! every replica within `HOOKRELAY_SETTINGS_REFRESH` (10 s by default); the env/TOML values
//! stand for whatever is not stored, and `null` goes back to them.

use std::time::Duration;

use axum::{Json, extract::State};
use hookrelay_shared::{
    duration::{format_duration, parse_duration},
    event::rfc3339,
    retry::RetryPolicySpec,
    settings::{self, Change, Settings, Stored},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    auth::{Admin, Auth, Owner},
    error::{AppError, AppResult},
    extract::{ApiJson, truncate},
    problems::{JsonBody, NeedsAdmin, NeedsOwner},
    state::AppState,
};

/// Settings as the API shows them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SettingsOut {
    /// How long attempts, their payloads and the activity log are kept (1d-365d).
    #[schema(example = "30d")]
    pub retention: String,
    /// The retry policy of webhooks without their own: `{"max_retries", "window"}` or
    /// `{"schedule"}`.
    #[schema(value_type = Object, example = json!({"max_retries": 3, "window": "30m"}))]
    pub retry: serde_json::Value,
    /// Where each value comes from: `stored` (set through this API) or `config` (env/TOML).
    pub source: SourceOut,
    /// The env/TOML values (what `null` goes back to).
    pub defaults: DefaultsOut,
    /// The last change, and the name of the token that made it; null when never changed.
    pub updated_at: Option<String>,
    pub updated_by: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SourceOut {
    #[schema(example = "stored")]
    pub retention: String,
    #[schema(example = "config")]
    pub retry: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DefaultsOut {
    pub retention: String,
    #[schema(value_type = Object)]
    pub retry: serde_json::Value,
}

/// The body of `PUT /api/v1/settings`: an absent field keeps its value, `null` goes back to the
/// env/TOML value.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
pub struct SettingsUpdate {
    /// 1d-365d, e.g. `30d`.
    #[schema(example = "14d")]
    retention: Option<String>,
    /// `{"max_retries": 0-100, "window": "30m"}` (both) or `{"schedule": ["1s", "2s"]}` (at
    /// most 100 delays); the delays may not add up to more than the retention.
    #[schema(value_type = Option<Object>, example = json!({"schedule": ["10s", "1m", "10m"]}))]
    retry: Option<serde_json::Value>,
}

fn out(config: &hookrelay_shared::Config, stored: Option<&Stored>) -> SettingsOut {
    let base = Settings::from_config(config);
    let s = match stored {
        Some(st) => base.clone().with(st),
        None => base.clone(),
    };
    let source = |set: bool| if set { "stored" } else { "config" }.to_owned();
    let spec = |p| serde_json::to_value(settings::spec_of(p)).unwrap_or_default();
    SettingsOut {
        retention: format_duration(s.retention),
        retry: spec(&s.retry),
        source: SourceOut {
            retention: source(stored.is_some_and(|s| s.retention.is_some())),
            retry: source(stored.is_some_and(|s| s.retry.is_some())),
        },
        defaults: DefaultsOut {
            retention: format_duration(base.retention),
            retry: spec(&base.retry),
        },
        updated_at: stored.and_then(|s| s.updated_at).map(rfc3339),
        updated_by: stored.and_then(|s| s.updated_by.clone()),
    }
}

/// The settings in force.
#[utoipa::path(
    get, path = "/api/v1/settings", tag = "portal", operation_id = "get_settings",
    responses(
        (status = 200, body = SettingsOut),
        NeedsAdmin,
    )
)]
pub async fn get(State(state): State<AppState>, _auth: Auth<Admin>) -> AppResult<Json<SettingsOut>> {
    let stored = settings::load(&state.ctx.db).await?;
    Ok(Json(out(&state.ctx.config, stored.as_ref())))
}

fn parse_body(body: &serde_json::Value) -> AppResult<(Change<Duration>, Change<RetryPolicySpec>)> {
    let bad = |d: String| AppError::unprocessable(d);
    let obj = body
        .as_object()
        .ok_or_else(|| bad("request body: must be a JSON object with `retention` and/or `retry`".into()))?;
    if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "retention" | "retry")) {
        return Err(bad(format!(
            "{}: unknown field; the settings are `retention` and `retry`",
            truncate(k, 40)
        )));
    }
    if obj.is_empty() {
        return Err(bad("request body: give `retention` and/or `retry`".into()));
    }
    let retention = match obj.get("retention") {
        None => Change::Keep,
        Some(serde_json::Value::Null) => Change::Reset,
        Some(serde_json::Value::String(s)) => {
            let d = parse_duration(s).map_err(|e| bad(format!("retention: {}", truncate(&e, 100))))?;
            settings::validate_retention(d).map_err(bad)?;
            Change::Set(d)
        }
        Some(_) => return Err(bad("retention: must be a duration string such as `30d`".into())),
    };
    let retry = match obj.get("retry") {
        None => Change::Keep,
        Some(serde_json::Value::Null) => Change::Reset,
        Some(v @ serde_json::Value::Object(_)) => {
            let spec: RetryPolicySpec = serde_json::from_value(v.clone())
                .map_err(|e| bad(format!("retry: {}", truncate(&e.to_string(), 200))))?;
            Change::Set(spec)
        }
        Some(_) => {
            return Err(bad(
                "retry: must be {\"max_retries\": N, \"window\": \"30m\"} or {\"schedule\": [\"1s\", ...]}"
                    .into(),
            ));
        }
    };
    Ok((retention, retry))
}

/// Changes the data retention and/or the default retry policy; every replica uses the new
/// values within `HOOKRELAY_SETTINGS_REFRESH` (10 s by default).
#[utoipa::path(
    put, path = "/api/v1/settings", tag = "portal", operation_id = "update_settings",
    request_body = SettingsUpdate,
    responses(
        (status = 200, description = "The settings now in force", body = SettingsOut),
        JsonBody, NeedsOwner,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    auth: Auth<Owner>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> AppResult<Json<SettingsOut>> {
    let (retention, retry) = parse_body(&body)?;
    let changed = settings::change(&state.ctx.db, &state.ctx.config, retention, retry, &auth.actor())
        .await
        .map_err(|e| match e {
            settings::ChangeError::Invalid(d) => AppError::unprocessable(d),
            settings::ChangeError::Db(e) => e.into(),
        })?;
    let after_out = out(&state.ctx.config, changed.after.as_ref());
    tracing::info!(token_id = %auth.token.id, retention = %after_out.retention, "settings changed");
    // This replica at once; the others at their next refresh.
    if let Err(e) = state.ctx.settings.refresh().await {
        tracing::warn!(error = %e, "re-reading the settings after a change failed");
    }
    Ok(Json(after_out))
}
