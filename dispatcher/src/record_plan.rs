//! What an attempt means for its delivery ([`Plan`]): success, a retry at a given time, no
//! retry left, or a failed manual attempt that leaves the automatic schedule alone — decided
//! from the webhook's retry policy before the attempt is recorded.

use std::time::Duration;

use hookrelay_shared::{Context, jobs::Trigger, retry};
use time::OffsetDateTime;

use crate::send::{AttemptOutcome, AttemptRequest};

/// What the attempt means for its delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    Success,
    /// Failed; the next automatic retry is due then.
    Retry {
        at: OffsetDateTime,
    },
    /// Failed and no retry is left.
    Exhausted,
    /// A manual attempt failed: the automatic schedule, if any, stays as it is.
    ManualFailed,
}

impl Plan {
    /// The `mode` the delivery UPDATE takes it as.
    pub(super) fn mode(self) -> &'static str {
        match self {
            Plan::Success => "success",
            Plan::Retry { .. } => "retry",
            Plan::Exhausted => "exhausted",
            Plan::ManualFailed => "manual_failed",
        }
    }

    /// Decides what follows an attempt, from the webhook's retry policy.
    pub fn decide(ctx: &Context, req: &AttemptRequest, out: &AttemptOutcome) -> Self {
        if out.success() {
            return Plan::Success;
        }
        if req.trigger == Trigger::Manual {
            return Plan::ManualFailed;
        }
        // 410 Gone: the endpoint says it will never take them; its webhook is disabled.
        if out.response_code == Some(410) {
            return Plan::Exhausted;
        }
        // The default in force: `PUT /api/v1/settings`, else the config (refreshed in the background).
        let default = ctx.settings.retry_policy();
        let policy = match &req.target.webhook.retry_policy {
            Some(spec) => spec.resolve(&default),
            None => default,
        };
        let since = out.attempted_at - req.delivery_created_at;
        let failed = retry::FailedAttempt {
            failures: req.attempt.max(1) as u32,
            since_first_failure: since.try_into().unwrap_or(Duration::ZERO),
            retry_after: out.retry_after,
        };
        let now = OffsetDateTime::now_utc();
        match retry::next_delay(&policy, failed, &mut rand::rng()).and_then(|d| retry::retry_at(now, d)) {
            Some(at) => Plan::Retry { at },
            None => Plan::Exhausted,
        }
    }
}
