//! Endpoint health: `GET /api/v1/webhooks/{id}/stats?window=1h|24h|7d` and the `health`
//! object of the webhook routes (circuit from Redis, 24 h summary from the rollup). Both read
//! the rollup of `hookrelay_shared::stats_store`, never the attempts.

use std::collections::HashMap;

use axum::{Json, extract::State};
use hookrelay_shared::{
    circuit::Health,
    event::rfc3339,
    stats::Window,
    stats_store::{self, success_rate},
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    auth::{Admin, Auth},
    error::{AppError, AppResult},
    extract::{ApiQuery, IdPath, truncate},
    problems::{BadIdOrWindow, NeedsAdmin, NotFound},
    state::AppState,
};

/// A webhook's health: its circuit breaker, shared by every dispatcher, and its last 24 h.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthOut {
    /// `closed`, `open` or `half_open`; null when Redis can't be read (as are the next three).
    pub circuit: Option<String>,
    pub consecutive_failures: Option<u32>,
    pub open_until: Option<String>,
    pub last_error: Option<String>,
    /// Attempts in the last 24 hours (`GET .../stats?window=24h` has the rest).
    pub attempts: u64,
    /// Their share that succeeded, 0..1; null without attempts.
    pub success_rate: Option<f64>,
}

impl HealthOut {
    fn new(circuit: Option<Health>, summary: Option<(u64, u64)>) -> Self {
        let (attempts, succeeded) = summary.unwrap_or((0, 0));
        let (circuit, consecutive_failures, open_until, last_error) = match circuit {
            Some(h) => (
                Some(h.circuit),
                Some(h.consecutive_failures),
                h.open_until.map(rfc3339),
                h.last_error,
            ),
            None => (None, None, None, None),
        };
        Self {
            circuit,
            consecutive_failures,
            open_until,
            last_error,
            attempts,
            success_rate: success_rate(attempts, succeeded),
        }
    }
}

/// The health of each of `ids`: one rollup query and one Redis round trip for them all.
pub async fn health_of(state: &AppState, ids: &[Uuid]) -> AppResult<HashMap<Uuid, HealthOut>> {
    let now = OffsetDateTime::now_utc();
    let (summaries, circuits) = tokio::join!(
        stats_store::summaries(&state.ctx.db, ids, now),
        state.health.read_many(ids)
    );
    let summaries = summaries?;
    let mut circuits = circuits.map(Vec::into_iter);
    Ok(ids
        .iter()
        .map(|id| {
            let circuit = circuits.as_mut().and_then(Iterator::next);
            (*id, HealthOut::new(circuit, summaries.get(id).copied()))
        })
        .collect())
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// `1h`, `24h` (the default) or `7d`.
    #[param(value_type = Option<String>, example = "24h")]
    pub window: Option<String>,
}

/// Response times of the window's attempts (ms; null without attempts).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResponseMs {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

/// A webhook's attempts in one window.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatsOut {
    pub webhook_id: Uuid,
    /// `1h`, `24h` or `7d`.
    pub window: String,
    /// Where the counted buckets start: the minute (1 h, 24 h) or hour (7 d) at or before
    /// `until` minus the window.
    pub since: String,
    pub until: String,
    pub attempts: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// 0..1; null without attempts.
    pub success_rate: Option<f64>,
    /// Percentiles read from a log-scale histogram: exact below 16 ms, within 6.25 % above.
    pub response_ms: ResponseMs,
    pub last_success_at: Option<String>,
    pub last_failure_at: Option<String>,
    /// The circuit now (`closed`, `open`, `half_open`); null when Redis can't be read.
    pub circuit: Option<String>,
}

/// Attempts, success rate, response-time percentiles, last success and failure of one
/// webhook in the last hour, day or week, and its circuit now. Read from a rollup the
/// dispatchers write about once a second, so the newest second or so may be missing.
#[utoipa::path(
    get, path = "/api/v1/webhooks/{id}/stats", tag = "webhooks", operation_id = "webhook_stats",
    params(("id" = Uuid, Path), StatsParams),
    responses(
        (status = 200, body = StatsOut),
        BadIdOrWindow, NeedsAdmin, NotFound,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
    IdPath(id): IdPath,
    ApiQuery(p): ApiQuery<StatsParams>,
) -> AppResult<Json<StatsOut>> {
    let window = match p.window.as_deref() {
        None => Window::Day,
        Some(w) => Window::parse(w).ok_or_else(|| {
            AppError::bad(format!("window: `{}` is not one of 1h, 24h, 7d", truncate(w, 20)))
        })?,
    };
    if hookrelay_shared::webhooks::get(&state.ctx.db, id)
        .await?
        .is_none()
    {
        return Err(AppError::NotFound(format!("no webhook with id {id}")));
    }
    let now = OffsetDateTime::now_utc();
    let (counts, circuit) = tokio::join!(
        stats_store::read(&state.ctx.db, id, window, now),
        state.health.read(id)
    );
    let c = counts?;
    let [p50, p95, p99] = stats_store::response_ms(&c);
    Ok(Json(StatsOut {
        webhook_id: id,
        window: window.as_str().into(),
        since: rfc3339(window.bounds(now).0),
        until: rfc3339(now),
        attempts: c.attempts,
        succeeded: c.succeeded.min(c.attempts),
        failed: c.attempts.saturating_sub(c.succeeded),
        success_rate: success_rate(c.attempts, c.succeeded),
        response_ms: ResponseMs { p50, p95, p99 },
        last_success_at: c.last_success_at.map(rfc3339),
        last_failure_at: c.last_failure_at.map(rfc3339),
        circuit: circuit.map(|h| h.circuit),
    }))
}
