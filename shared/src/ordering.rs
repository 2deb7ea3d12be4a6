//! FIFO ordering per webhook: the `ordering` field, and the SQL that keeps an ordered webhook's
//! deliveries one at a time in acceptance order.
//!
//! Intake numbers each delivery of a `fifo` webhook from `webhook_sequences` ([`take_seqs`]).
//! The **head** of webhook W is its lowest-`seq` delivery not yet finished (`pending` or
//! `retrying`). Only the head has a `next_attempt_at` (a lease while it is in flight, its retry
//! time while it waits); the ones behind it are **held**: `pending`, `seq` set,
//! `next_attempt_at` NULL, so neither Redis nor any dispatcher's memory holds them. Whoever ends
//! the head promotes the next one ([`promote`]) in the same transaction.
//!
//! Lock order, everywhere: the `webhooks` row (only where it is changed: a PATCH,
//! auto-disable), then the `webhook_sequences` row ([`lock`]), then `deliveries` rows by id.
//! Every statement that decides which delivery is the head runs after the `webhook_sequences`
//! row is locked, so intake, the recorder and reconcile never see each other's half-made heads.

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::retry_store::RetryEntry;

/// How a webhook's deliveries are ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    /// As fast as the limits allow, in no particular order (the default).
    #[default]
    None,
    /// One at a time, in the order the events were accepted.
    Fifo,
}

impl Ordering {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Fifo => "fifo",
        }
    }

    /// Parses the stored or given text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "fifo" => Some(Self::Fifo),
            _ => None,
        }
    }

    pub fn is_fifo(self) -> bool {
        self == Self::Fifo
    }
}

/// Read as a string, so a value of any other type is a data error naming the field (an API
/// 422), like an unknown name, rather than a JSON syntax error.
impl<'de> Deserialize<'de> for Ordering {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown ordering `{text}`, expected `none` or `fifo`"))
        })
    }
}

/// Locks the `webhook_sequences` rows of `webhooks` (sorted here) for the transaction; a
/// webhook without a row has never had a sequenced delivery.
pub async fn lock(conn: &mut PgConnection, webhooks: &[Uuid]) -> sqlx::Result<()> {
    let mut ids = webhooks.to_vec();
    ids.sort_unstable();
    ids.dedup();
    sqlx::query(
        "SELECT webhook_id FROM webhook_sequences WHERE webhook_id = ANY($1) ORDER BY webhook_id FOR UPDATE",
    )
    .bind(&ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes `n` sequence numbers for each `(webhook, n)` (locking the rows, in webhook order) and
/// returns the first number of each, in the order given.
pub async fn take_seqs(conn: &mut PgConnection, wanted: &[(Uuid, i64)]) -> sqlx::Result<Vec<i64>> {
    let mut sorted = wanted.to_vec();
    sorted.sort_unstable();
    let (ids, counts): (Vec<Uuid>, Vec<i64>) = sorted.iter().copied().unzip();
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "INSERT INTO webhook_sequences (webhook_id, next_seq)
         SELECT w, 1 + n FROM UNNEST($1::uuid[], $2::int8[]) AS u(w, n) ORDER BY w
         ON CONFLICT (webhook_id) DO UPDATE SET next_seq = webhook_sequences.next_seq + EXCLUDED.next_seq - 1
         RETURNING webhook_id, next_seq",
    )
    .bind(&ids)
    .bind(&counts)
    .fetch_all(&mut *conn)
    .await?;
    let next: std::collections::HashMap<Uuid, i64> = rows.into_iter().collect();
    Ok(wanted
        .iter()
        .map(|(w, n)| next.get(w).copied().unwrap_or(1).saturating_sub(*n))
        .collect())
}

/// Which of `webhooks` have a head already (an unfinished sequenced delivery). Run after
/// [`take_seqs`] or [`lock`] in the same transaction.
pub async fn with_head(conn: &mut PgConnection, webhooks: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT w FROM UNNEST($1::uuid[]) AS u(w) WHERE EXISTS (
             SELECT 1 FROM deliveries d WHERE d.webhook_id = u.w AND d.seq IS NOT NULL
               AND d.state IN ('pending', 'retrying'))",
    )
    .bind(webhooks)
    .fetch_all(conn)
    .await
}

/// A head just promoted: what its first (or next) attempt needs.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Promoted {
    pub delivery_id: Uuid,
    pub event_received_at: OffsetDateTime,
    pub webhook_id: Uuid,
    pub event_id: String,
    pub event_type: String,
    pub attempt_count: i32,
    /// When it became the head (its retry window starts then).
    pub created_at: OffsetDateTime,
    pub seq: i64,
    pub next_attempt_at: OffsetDateTime,
    /// The event's body; `None` when the event is gone (past retention).
    pub body: Option<String>,
}

impl Promoted {
    /// Its retry-set entry (when it is left to the scheduler).
    pub fn entry(&self) -> RetryEntry {
        RetryEntry {
            delivery_id: self.delivery_id,
            event_received_at: self.event_received_at,
            attempt: self.attempt_count.saturating_add(1),
            due: self.next_attempt_at,
        }
    }
}

/// For each of `webhooks` (whose rows the caller locked with [`lock`]) whose head is held,
/// gives the head a `next_attempt_at` `lease_secs` from now (0 = due now) and returns it.
/// A head that already has one (in flight, or waiting for its retry) is left alone, so this
/// is safe to call whenever a sequenced delivery may have ended.
pub async fn promote(
    conn: &mut PgConnection,
    webhooks: &[Uuid],
    lease_secs: f64,
) -> sqlx::Result<Vec<Promoted>> {
    if webhooks.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "WITH heads AS (
             SELECT h.id, h.event_received_at, h.event_id FROM UNNEST($1::uuid[]) AS u(w)
             CROSS JOIN LATERAL (
                 SELECT d.id, d.event_received_at, d.event_id, d.next_attempt_at FROM deliveries d
                 WHERE d.webhook_id = u.w AND d.seq IS NOT NULL AND d.state IN ('pending', 'retrying')
                 ORDER BY d.seq LIMIT 1) h
             WHERE h.next_attempt_at IS NULL)
         UPDATE deliveries d SET next_attempt_at = now() + make_interval(secs => $2), promoted_at = now(),
             updated_at = now()
         FROM heads LEFT JOIN events e ON e.id = heads.event_id AND e.received_at = heads.event_received_at
         WHERE d.id = heads.id AND d.event_received_at = heads.event_received_at AND d.next_attempt_at IS NULL
         RETURNING d.id AS delivery_id, d.event_received_at, d.webhook_id, d.event_id, d.event_type,
             d.attempt_count, d.promoted_at AS created_at, d.seq, d.next_attempt_at, e.body",
    )
    .bind(webhooks)
    .bind(lease_secs)
    .fetch_all(conn)
    .await
}

/// Webhooks whose head is held with nothing to promote it (for reconcile): normally the
/// transaction that ends a head promotes the next, so this finds only what a race or an
/// operator left behind.
pub async fn stuck_webhooks(conn: &mut PgConnection) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT w.webhook_id FROM (SELECT DISTINCT webhook_id FROM deliveries
             WHERE seq IS NOT NULL AND state IN ('pending', 'retrying') AND next_attempt_at IS NULL) w
         WHERE (SELECT d.next_attempt_at IS NULL FROM deliveries d
                WHERE d.webhook_id = w.webhook_id AND d.seq IS NOT NULL AND d.state IN ('pending', 'retrying')
                ORDER BY d.seq LIMIT 1)",
    )
    .fetch_all(conn)
    .await
}

/// Releases every held delivery of `webhook` (its `ordering` went to `none`): each is due at
/// once and goes the normal way. The caller holds the `webhooks` row; this locks the
/// sequence row. Returns their retry-set entries.
pub async fn release(conn: &mut PgConnection, webhook: Uuid) -> sqlx::Result<Vec<RetryEntry>> {
    lock(&mut *conn, &[webhook]).await?;
    let rows: Vec<(Uuid, OffsetDateTime, i32, OffsetDateTime)> = sqlx::query_as(
        "WITH held AS (SELECT id, event_received_at FROM deliveries
             WHERE webhook_id = $1 AND seq IS NOT NULL AND state IN ('pending', 'retrying')
               AND next_attempt_at IS NULL ORDER BY id FOR UPDATE)
         UPDATE deliveries d SET next_attempt_at = now(), promoted_at = now(), updated_at = now() FROM held
         WHERE d.id = held.id AND d.event_received_at = held.event_received_at
         RETURNING d.id, d.event_received_at, d.attempt_count, d.next_attempt_at",
    )
    .bind(webhook)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(delivery_id, event_received_at, count, due)| RetryEntry {
            delivery_id,
            event_received_at,
            attempt: count.saturating_add(1),
            due,
        })
        .collect())
}

/// Whether a delivery is held behind its webhook's head (a manual retry of it is refused).
pub async fn is_held<'e, E: sqlx::PgExecutor<'e>>(
    exec: E,
    delivery_id: Uuid,
    event_received_at: OffsetDateTime,
) -> sqlx::Result<bool> {
    let held: Option<bool> = sqlx::query_scalar(
        "SELECT seq IS NOT NULL AND state IN ('pending', 'retrying') AND next_attempt_at IS NULL
         FROM deliveries WHERE id = $1 AND event_received_at = $2",
    )
    .bind(delivery_id)
    .bind(event_received_at)
    .fetch_optional(exec)
    .await?;
    Ok(held.unwrap_or(false))
}

/// The SQL condition (on `deliveries d`) of a held delivery, for queries that skip them.
pub const HELD_SQL: &str =
    "(d.seq IS NOT NULL AND d.state IN ('pending', 'retrying') AND d.next_attempt_at IS NULL)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_reads_and_writes_none_and_fifo_only() {
        assert_eq!(Ordering::default(), Ordering::None);
        for o in [Ordering::None, Ordering::Fifo] {
            assert_eq!(Ordering::parse(o.as_str()), Some(o));
            let json = serde_json::to_string(&o).expect("serializes");
            assert_eq!(json, format!("\"{}\"", o.as_str()));
            assert_eq!(serde_json::from_str::<Ordering>(&json).expect("parses"), o);
        }
        assert!(serde_json::from_str::<Ordering>("\"FIFO\"").is_err());
        assert!(serde_json::from_str::<Ordering>("true").is_err());
        assert!(Ordering::parse("lifo").is_none());
    }
}
