//! Ordered (`fifo`) webhooks in the dispatcher: intake numbers their deliveries and makes only
//! the head sendable; the others are held in PostgreSQL (no `next_attempt_at`, nothing in
//! memory). The recorder promotes the next head in the transaction that ends the current one
//! and hands it here to be sent at once ([`Core::send_promoted`]). The SQL and the lock order
//! are in [`hookrelay_shared::ordering`].

use std::{collections::HashMap, sync::Arc};

use hookrelay_shared::{
    jobs::{DeliveryJob, Trigger},
    ordering::{self, Promoted},
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{Core, defer::Deferral, lanes::Attempt, send::AttemptRequest};

/// A new delivery of an ordered webhook: its number, and whether it waits behind a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sequenced {
    pub seq: i64,
    pub held: bool,
}

/// Numbers the deliveries of ordered webhooks in intake's batch transaction. `deliveries` is
/// `(delivery id, webhook id)` in acceptance order, only those of `fifo` webhooks. The first
/// new delivery of a webhook with no head yet becomes its head; every other one is held.
pub async fn sequence(
    conn: &mut PgConnection,
    deliveries: &[(Uuid, Uuid)],
) -> sqlx::Result<HashMap<Uuid, Sequenced>> {
    if deliveries.is_empty() {
        return Ok(HashMap::new());
    }
    let mut counts: Vec<(Uuid, i64)> = Vec::new();
    for (_, w) in deliveries {
        match counts.iter_mut().find(|(c, _)| c == w) {
            Some((_, n)) => *n += 1,
            None => counts.push((*w, 1)),
        }
    }
    // Takes (and locks) the sequence rows first: whether a head exists is decided after that.
    let firsts = ordering::take_seqs(&mut *conn, &counts).await?;
    let hooks: Vec<Uuid> = counts.iter().map(|(w, _)| *w).collect();
    let with_head = ordering::with_head(&mut *conn, &hooks).await?;
    let mut next: HashMap<Uuid, (i64, bool)> = hooks
        .iter()
        .zip(firsts)
        .map(|(w, first)| (*w, (first, with_head.contains(w))))
        .collect();
    let mut out = HashMap::with_capacity(deliveries.len());
    for (d, w) in deliveries {
        if let Some((seq, has_head)) = next.get_mut(w) {
            out.insert(
                *d,
                Sequenced {
                    seq: *seq,
                    held: *has_head,
                },
            );
            *seq = seq.saturating_add(1);
            *has_head = true;
        }
    }
    Ok(out)
}

impl Core {
    /// Sends a head the recorder (or a failed job) just promoted. It holds the attempt lease,
    /// so no other replica sends it meanwhile; if this process can't send it (its webhook is
    /// gone from the cache: disabled or deleted; or its event is past retention), it is made
    /// due at once for the jobs path, which ends it and promotes the next.
    pub fn send_promoted(self: &Arc<Self>, p: Promoted) {
        let attempt = p.attempt_count.saturating_add(1);
        let target = self.cache.get(p.webhook_id);
        let (Some(target), Some(body)) = (target, p.body) else {
            let d = Deferral {
                delivery_id: p.delivery_id,
                event_received_at: p.event_received_at,
                attempt,
                at: time::OffsetDateTime::now_utc(),
                reason: "disabled",
                done: None,
            };
            let deferrer = self.deferrer.clone();
            self.tasks.spawn(async move { deferrer.defer(d).await });
            return;
        };
        let req = AttemptRequest {
            delivery_id: p.delivery_id,
            event_id: p.event_id,
            event_received_at: p.event_received_at,
            event_type: p.event_type,
            body: Arc::from(body),
            target,
            attempt,
            trigger: if p.attempt_count == 0 {
                Trigger::Initial
            } else {
                Trigger::Automatic
            },
            delivery_created_at: p.created_at,
            seq: Some(p.seq),
        };
        tracing::debug!(delivery_id = %req.delivery_id, webhook_id = %p.webhook_id, seq = p.seq,
            "next head of an ordered webhook promoted");
        self.submit(Attempt::new(req, None));
    }
}

/// Ends a delivery that can't be attempted any more (no request is made) and, for an ordered
/// webhook, promotes the one behind it in the same transaction.
pub async fn fail_delivery(core: &Arc<Core>, job: &DeliveryJob, why: &str) -> sqlx::Result<()> {
    let mut tx = core.ctx.db.begin().await?;
    let found: Option<(Uuid, Option<i64>)> =
        sqlx::query_as("SELECT webhook_id, seq FROM deliveries WHERE id = $1 AND event_received_at = $2")
            .bind(job.delivery_id)
            .bind(job.event_received_at)
            .fetch_optional(&mut *tx)
            .await?;
    let ordered = found.and_then(|(w, seq)| seq.map(|_| w));
    if let Some(w) = ordered {
        ordering::lock(&mut tx, &[w]).await?;
    }
    sqlx::query(
        "UPDATE deliveries SET state = 'failed', next_attempt_at = NULL, error = $3, updated_at = now()
         WHERE id = $1 AND event_received_at = $2 AND state IN ('pending', 'retrying')",
    )
    .bind(job.delivery_id)
    .bind(job.event_received_at)
    .bind(why)
    .execute(&mut *tx)
    .await?;
    let promoted = match ordered {
        Some(w) => ordering::promote(&mut tx, &[w], core.ctx.config.attempt_lease.0.as_secs_f64()).await?,
        None => Vec::new(),
    };
    tx.commit().await?;
    for p in promoted {
        core.send_promoted(p);
    }
    Ok(())
}
