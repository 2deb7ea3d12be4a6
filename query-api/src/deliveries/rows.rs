//! Rows of the log as the API shows them, and the cursor a row continues from.

use hookrelay_shared::event::rfc3339;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::cursor::{Cursor, SortKey, SortValue};

/// The columns of one attempt in the log (`ITEM_COLUMNS` and the webhook's name and URL).
#[derive(sqlx::FromRow)]
pub(super) struct ItemRow {
    pub(super) id: Uuid,
    pub(super) delivery_id: Uuid,
    pub(super) event_id: String,
    pub(super) event_type: String,
    pub(super) webhook_id: Uuid,
    pub(super) webhook_name: Option<String>,
    pub(super) webhook_url: Option<String>,
    pub(super) status: String,
    pub(super) response_code: Option<i32>,
    pub(super) error: Option<String>,
    pub(super) attempt: i32,
    pub(super) trigger: String,
    pub(super) attempted_at: OffsetDateTime,
    pub(super) duration_ms: i32,
}

/// The webhook an attempt went to.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookRef {
    pub id: Uuid,
    pub name: String,
    pub url: String,
}

/// One attempt, as listed in the log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryItem {
    /// The attempt id.
    pub id: Uuid,
    pub delivery_id: Uuid,
    pub event_id: String,
    pub event_type: String,
    pub webhook: WebhookRef,
    /// `success` or `failed`.
    pub status: String,
    pub response_code: Option<i32>,
    pub error: Option<String>,
    /// 1 for the first attempt, then 2, 3...
    pub attempt: i32,
    /// `initial`, `automatic` or `manual`.
    pub trigger: String,
    /// RFC 3339 with milliseconds, UTC.
    #[schema(example = "2026-11-27T10:00:00.123Z")]
    pub attempted_at: String,
    pub duration_ms: i32,
}

/// A page of the log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryItem>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl From<ItemRow> for DeliveryItem {
    fn from(r: ItemRow) -> Self {
        Self {
            id: r.id,
            delivery_id: r.delivery_id,
            event_id: r.event_id,
            event_type: r.event_type,
            webhook: WebhookRef {
                id: r.webhook_id,
                name: r.webhook_name.unwrap_or_default(),
                url: r.webhook_url.unwrap_or_default(),
            },
            status: r.status,
            response_code: r.response_code,
            error: r.error,
            attempt: r.attempt,
            trigger: r.trigger,
            attempted_at: rfc3339(r.attempted_at),
            duration_ms: r.duration_ms,
        }
    }
}

/// The cursor of the page that continues after `row`.
pub(super) fn cursor_after(row: &ItemRow, sort: SortKey) -> Cursor {
    let value = match sort {
        SortKey::AttemptedAt => SortValue::None,
        SortKey::Status => SortValue::Status(if row.status == "success" {
            "success"
        } else {
            "failed"
        }),
        SortKey::ResponseCode => SortValue::Code(row.response_code.unwrap_or(0)),
    };
    Cursor {
        value,
        attempted_at: row.attempted_at,
        id: row.id,
    }
}
