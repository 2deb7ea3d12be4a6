//! The Redis side of pending retries, shared by the dispatcher (which schedules a retry after
//! a failed attempt is recorded) and the scheduler (which fires them and rebuilds the set from
//! PostgreSQL). Layout: one sorted set per namespace, [`crate::redis_keys::retries`]; member
//! [`RetryEntry::member`], score = due time in Unix milliseconds.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::redis_keys;

/// One pending retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryEntry {
    pub delivery_id: Uuid,
    pub event_received_at: OffsetDateTime,
    /// The attempt number the retry will make.
    pub attempt: i32,
    pub due: OffsetDateTime,
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// `event_received_at` is part of the deliveries' key and PostgreSQL keeps microseconds, so
/// the member must carry all of them: a job with a truncated time claims no row.
fn unix_us(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

impl RetryEntry {
    /// `{delivery_id}|{event_received_at unix µs}|{attempt}`
    pub fn member(&self) -> String {
        format!(
            "{}|{}|{}",
            self.delivery_id,
            unix_us(self.event_received_at),
            self.attempt
        )
    }

    /// The due time as a sorted-set score.
    pub fn score(&self) -> i64 {
        unix_ms(self.due)
    }

    /// Parses a member back (with its score); `None` for anything malformed.
    pub fn parse(member: &str, score: i64) -> Option<Self> {
        let mut parts = member.split('|');
        let delivery_id = parts.next()?.parse().ok()?;
        let received_us: i64 = parts.next()?.parse().ok()?;
        let attempt = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        let from_ms = |ms: i64| OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok();
        Some(Self {
            delivery_id,
            event_received_at: OffsetDateTime::from_unix_timestamp_nanos(received_us as i128 * 1_000).ok()?,
            attempt,
            due: from_ms(score)?,
        })
    }
}

/// Adds (or moves) pending retries in the namespace's sorted set.
pub async fn schedule<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    namespace: &str,
    entries: &[RetryEntry],
) -> redis::RedisResult<()> {
    update(conn, namespace, entries, &[]).await
}

/// Adds (or moves) the pending retries `add` and removes the entries of the attempts `made`,
/// in one round trip. An attempt's own entry can still be there when it was made: the
/// scheduler's reconcile re-adds a delivery whose attempt is in flight (due when the attempt's
/// lease runs out, in case its dispatcher dies), and that entry would fire a stale job then.
pub async fn update<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    namespace: &str,
    add: &[RetryEntry],
    made: &[RetryEntry],
) -> redis::RedisResult<()> {
    if add.is_empty() && made.is_empty() {
        return Ok(());
    }
    let key = redis_keys::retries(namespace);
    let mut pipe = redis::pipe();
    if !add.is_empty() {
        let cmd = pipe.cmd("ZADD").arg(&key);
        for e in add {
            cmd.arg(e.score()).arg(e.member());
        }
        cmd.ignore();
    }
    if !made.is_empty() {
        let cmd = pipe.cmd("ZREM").arg(&key);
        for e in made {
            cmd.arg(e.member());
        }
        cmd.ignore();
    }
    pipe.query_async::<()>(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip() {
        let e = RetryEntry {
            delivery_id: Uuid::now_v7(),
            // Microseconds, as PostgreSQL stores them: milliseconds would hide a truncation.
            event_received_at: time::macros::datetime!(2026-11-27 10:00:00.123456 UTC),
            attempt: 3,
            due: time::macros::datetime!(2026-11-27 10:05:00 UTC),
        };
        assert_eq!(RetryEntry::parse(&e.member(), e.score()), Some(e));
        assert_eq!(RetryEntry::parse("junk", 0), None);
    }
}
