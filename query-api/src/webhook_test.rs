//! `POST /api/v1/webhooks/{id}/test`: a `webhook.test` event to one webhook, through the
//! normal pipeline ([`hookrelay_shared::test_event`]). The API stores the event and its
//! delivery and queues a first-attempt job; a dispatcher signs, sends and records it.

use axum::{Json, extract::State, http::StatusCode};
use hookrelay_shared::{
    activity,
    test_event::{self, TestEventError},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    auth::{Admin, Auth},
    error::{AppError, AppResult},
    extract::IdPath,
    problems::{AmqpDown, BadId, NeedsAdmin, NotFound, WebhookDisabled},
    state::AppState,
};

/// The answer to a test event: follow it in the log (`GET /api/v1/deliveries?webhook_id=...`;
/// its attempt has `event_type` `webhook.test`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TestSent {
    #[schema(example = "evt_0193a1b2c3d4e5f6a7b8c9d0e1f2a3b4")]
    pub event_id: String,
    pub delivery_id: Uuid,
}

/// Sends a `webhook.test` event to this webhook alone (whatever it subscribes to): signed,
/// sent by a dispatcher, recorded and retried like any delivery.
#[utoipa::path(
    post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks", operation_id = "test_webhook",
    params(("id" = Uuid, Path)),
    responses(
        (status = 202, description = "Stored and queued; a dispatcher makes the attempt", body = TestSent),
        BadId, NeedsAdmin, NotFound, AmqpDown, WebhookDisabled,
    )
)]
pub async fn send(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    IdPath(id): IdPath,
) -> AppResult<(StatusCode, Json<TestSent>)> {
    // Unknown and disabled webhooks are told apart before anything is stored.
    match hookrelay_shared::webhooks::get(&state.ctx.db, id).await? {
        None => return Err(AppError::NotFound(format!("no webhook with id {id}"))),
        Some(w) if !w.enabled => return Err(conflict(id)),
        Some(_) => {}
    }
    // The channel first: with RabbitMQ down nothing is stored (a 503, try again) rather than a
    // test event the scheduler would send much later.
    let channel = state.publisher.channel().await?;
    let test = test_event::store(&state.ctx.db, id).await.map_err(|e| match e {
        TestEventError::NotFound(_) => AppError::NotFound(format!("no webhook with id {id}")),
        TestEventError::Disabled(_) => conflict(id),
        TestEventError::Db(e) => e.into(),
        TestEventError::Publish(e) => AppError::Internal(e.into()),
    })?;
    if let Err(e) = test_event::publish(&channel, &state.publisher.names, &test).await {
        // Stored and due: the scheduler's reconcile fires it, so it is still on its way.
        state.publisher.reset().await;
        tracing::warn!(error = %e, delivery_id = %test.delivery_id,
            "publishing a test event's job failed; the scheduler's reconcile will send it");
    }
    tracing::info!(webhook_id = %id, delivery_id = %test.delivery_id, token_id = %auth.token.id, "test event sent");
    activity::record_logged(
        &state.ctx.db,
        &auth.actor(),
        activity::kind::WEBHOOK_TESTED,
        Some(id),
        serde_json::json!({"event_id": test.event_id, "delivery_id": test.delivery_id}),
    )
    .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(TestSent {
            event_id: test.event_id,
            delivery_id: test.delivery_id,
        }),
    ))
}

fn conflict(id: Uuid) -> AppError {
    AppError::Conflict(format!(
        "webhook {id} is disabled; enable it (PATCH enabled: true) before sending it a test event"
    ))
}
