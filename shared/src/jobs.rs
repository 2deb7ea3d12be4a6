//! Delivery jobs: the messages on `{ns}.deliveries` that ask a dispatcher to make one attempt
//! of an existing delivery (an automatic retry, a manual retry, or a recovered first attempt).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::amqp::{Names, PublishError, publish_confirmed};

/// What caused an attempt; stored on the attempt and shown in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Initial,
    Automatic,
    Manual,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Automatic => "automatic",
            Self::Manual => "manual",
        }
    }
}

/// One attempt to make.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryJob {
    pub delivery_id: Uuid,
    /// The delivery's partition key (its event's `received_at`), so lookups hit one partition.
    #[serde(with = "time::serde::rfc3339")]
    pub event_received_at: OffsetDateTime,
    pub trigger: Trigger,
    /// For automatic jobs: the attempt number this job makes. The dispatcher only sends it while
    /// the delivery still has `attempt_count == attempt - 1` and is due, so a duplicate job (a
    /// scheduler that crashed after publishing) is dropped. Manual jobs always send.
    pub attempt: i32,
}

/// Publishes a job to `{ns}.deliveries` and waits for the broker's confirm.
pub async fn publish_job(
    channel: &lapin::Channel,
    names: &Names,
    job: &DeliveryJob,
) -> Result<(), PublishError> {
    let body = serde_json::to_vec(job).map_err(|e| PublishError::Encode(e.to_string()))?;
    publish_confirmed(
        channel,
        "",
        &names.deliveries_queue,
        &body,
        lapin::BasicProperties::default().with_content_type("application/json".into()),
    )
    .await
}
