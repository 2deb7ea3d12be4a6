//! `GET /api/v1/activity`: who did what, when, newest first, with a keyset cursor on (at, id).
//! Entries are written by the handlers (people) and by the dispatcher and scheduler (the
//! system); see `hookrelay_shared::activity`.

use axum::{Json, extract::State};
use hookrelay_shared::{activity::kind, event::rfc3339};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    auth::{Admin, Auth},
    cursor::{decode_time_id, encode_time_id},
    deliveries::{parse_limit, parse_time, parse_uuid},
    error::{AppError, AppResult},
    extract::{ApiQuery, truncate},
    problems::{BadQuery, NeedsAdmin},
    state::AppState,
};

/// One entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActivityOut {
    pub id: Uuid,
    pub at: String,
    /// The token's name, or `system`.
    #[schema(example = "ops-admin")]
    pub actor: String,
    /// E.g. `webhook.created`, `settings.changed`, `circuit.opened`, `retention.run`.
    #[schema(example = "webhook.updated")]
    pub kind: String,
    pub webhook_id: Option<Uuid>,
    /// What the entry is about; the shape depends on `kind` (never a secret).
    #[schema(value_type = Object, example = json!({"fields": ["url", "event_types"]}))]
    pub details: serde_json::Value,
}

/// A page of entries, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActivityPage {
    pub items: Vec<ActivityOut>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityParams {
    /// An exact kind (`webhook.created`), or every kind of a subject (`webhook.*`).
    pub kind: Option<String>,
    /// One webhook's entries.
    #[param(value_type = Option<Uuid>)]
    pub webhook_id: Option<String>,
    /// RFC 3339: entries at or after this time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339: entries before this time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    /// 1..200, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

enum KindFilter {
    Exact(String),
    Prefix(String),
}

fn parse_kind(raw: &str) -> AppResult<KindFilter> {
    if kind::ALL.contains(&raw) {
        return Ok(KindFilter::Exact(raw.to_owned()));
    }
    if let Some(subject) = raw.strip_suffix(".*")
        && kind::ALL
            .iter()
            .any(|k| k.split_once('.').is_some_and(|(s, _)| s == subject))
    {
        return Ok(KindFilter::Prefix(format!("{subject}.")));
    }
    Err(AppError::bad(format!(
        "kind: `{}` is not one of {} (or `<subject>.*`)",
        truncate(raw, 40),
        kind::ALL.join(", ")
    )))
}

type Row = (
    Uuid,
    OffsetDateTime,
    String,
    String,
    Option<Uuid>,
    serde_json::Value,
);

/// The activity log, newest first.
#[utoipa::path(
    get, path = "/api/v1/activity", tag = "portal", operation_id = "list_activity",
    params(ActivityParams),
    responses(
        (status = 200, body = ActivityPage),
        BadQuery, NeedsAdmin,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
    ApiQuery(p): ApiQuery<ActivityParams>,
) -> AppResult<Json<ActivityPage>> {
    let nonempty = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    let kind = nonempty(&p.kind).map(|k| parse_kind(&k)).transpose()?;
    let webhook_id = parse_uuid("webhook_id", nonempty(&p.webhook_id).as_deref())?;
    let since = parse_time("since", nonempty(&p.since).as_deref())?;
    let until = parse_time("until", nonempty(&p.until).as_deref())?;
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        return Err(AppError::bad("since: must not be after until"));
    }
    let limit = parse_limit(p.limit.as_deref())?;
    let after = nonempty(&p.cursor).map(|c| decode_time_id(&c)).transpose()?;

    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new("SELECT id, at, actor, kind, webhook_id, details FROM activity WHERE true");
    match &kind {
        Some(KindFilter::Exact(k)) => {
            qb.push(" AND kind = ").push_bind(k.clone());
        }
        Some(KindFilter::Prefix(pre)) => {
            // Kinds are fixed ASCII names without LIKE wildcards.
            qb.push(" AND kind LIKE ").push_bind(format!("{pre}%"));
        }
        None => {}
    }
    if let Some(w) = webhook_id {
        qb.push(" AND webhook_id = ").push_bind(w);
    }
    if let Some(s) = since {
        qb.push(" AND at >= ").push_bind(s);
    }
    if let Some(u) = until {
        qb.push(" AND at < ").push_bind(u);
    }
    if let Some((at, id)) = after {
        qb.push(" AND (at, id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    qb.push(" ORDER BY at DESC, id DESC LIMIT ").push_bind(limit + 1);
    let mut rows: Vec<Row> = qb.build_query_as().fetch_all(&state.ctx.db).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = rows
        .last()
        .filter(|_| more)
        .map(|(id, at, ..)| encode_time_id(*at, *id));
    Ok(Json(ActivityPage {
        items: rows
            .into_iter()
            .map(|(id, at, actor, kind, webhook_id, details)| ActivityOut {
                id,
                at: rfc3339(at),
                actor,
                kind,
                webhook_id,
                details,
            })
            .collect(),
        next_cursor,
    }))
}
