//! Ids: time-ordered UUID v7 everywhere (attempts, deliveries, webhooks, tokens).

use uuid::Uuid;

/// A new time-ordered id.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}
