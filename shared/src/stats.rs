//! Endpoint health stats (issue 12): the rollup of attempts per webhook that
//! `GET /api/v1/webhooks/{id}/stats` reads, so its cost does not grow with the attempts.
//!
//! The dispatcher's recorder adds every committed attempt to an in-memory [`Rollup`]: per
//! webhook, one entry for the attempt's minute and one for its hour, each with counts, the
//! last success and failure, and a fixed log-scale latency histogram ([`bucket_of`]). Once a
//! second the rollup is upserted into `webhook_stats` ([`crate::stats_store`]) under the
//! process's own `shard`, so two recorder batches, or two replicas, never update the same row:
//! readers sum the shards. The read side takes minute rows for the ragged start of a window
//! and hour rows for the rest.

use std::collections::HashMap;

use time::OffsetDateTime;
use uuid::Uuid;

/// Buckets of the latency histogram: 0-15 ms exactly, then 8 per power of two up to 2^20 ms
/// (about 17 minutes; anything longer counts in the last bucket). A bucket is at most 12.5 %
/// of its lower bound wide, and a percentile is reported as its bucket's midpoint, so it is
/// within 6.25 % of the true value (exact below 16 ms).
pub const BUCKETS: usize = 16 + 16 * 8;

/// The histogram bucket of a response time in milliseconds.
pub fn bucket_of(ms: u64) -> usize {
    if ms < 16 {
        return ms as usize;
    }
    let ms = ms.min((1 << 20) - 1);
    let e = 63 - ms.leading_zeros() as usize; // 4..=19
    let sub = ((ms >> (e - 3)) & 7) as usize;
    16 + (e - 4) * 8 + sub
}

/// The range `[lo, hi)` of response times (ms) bucket `i` holds.
pub fn bucket_range(i: usize) -> (u64, u64) {
    if i < 16 {
        return (i as u64, i as u64 + 1);
    }
    let i = i.min(BUCKETS - 1) - 16;
    let e = 4 + i / 8;
    let sub = (i % 8) as u64;
    let width = 1u64 << (e - 3);
    let lo = (8 + sub) << (e - 3);
    (lo, lo + width)
}

/// The value reported for bucket `i`: the midpoint of the whole milliseconds it holds.
pub fn bucket_value(i: usize) -> f64 {
    let (lo, hi) = bucket_range(i);
    (lo + hi - 1) as f64 / 2.0
}

/// The `q` quantile (0 < q ≤ 1) of a histogram, as its bucket's [`bucket_value`]; `None` when
/// it holds nothing.
pub fn percentile(hist: &[u64], q: f64) -> Option<f64> {
    let total: u64 = hist.iter().fold(0u64, |a, c| a.saturating_add(*c));
    if total == 0 {
        return None;
    }
    // The smallest value with at least q of the attempts at or below it (nearest rank).
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0u64;
    for (i, c) in hist.iter().enumerate() {
        seen = seen.saturating_add(*c);
        if seen >= rank {
            return Some(bucket_value(i));
        }
    }
    None
}

/// The windows the stats route offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    Hour,
    Day,
    Week,
}

impl Window {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "1h" => Some(Self::Hour),
            "24h" => Some(Self::Day),
            "7d" => Some(Self::Week),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "1h",
            Self::Day => "24h",
            Self::Week => "7d",
        }
    }

    pub fn length(self) -> time::Duration {
        match self {
            Self::Hour => time::Duration::HOUR,
            Self::Day => time::Duration::DAY,
            Self::Week => time::Duration::WEEK,
        }
    }

    /// Which rows a window at `now` reads: minute rows from the first instant up to the
    /// second, hour rows from the second on. 1 h and 24 h start at the minute at or before
    /// `now - window` (up to a minute more than the window), 7 d at the hour (up to an hour more).
    pub fn bounds(self, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
        let start = now - self.length();
        match self {
            Self::Hour => {
                let s = floor(start, MINUTE);
                (s, now + time::Duration::HOUR)
            }
            Self::Day => {
                let s = floor(start, MINUTE);
                let h = floor(s, HOUR);
                let h = if h == s { h } else { h + time::Duration::HOUR };
                (s, h)
            }
            Self::Week => {
                let h = floor(start, HOUR);
                (h, h)
            }
        }
    }
}

/// The two spans of rollup rows, in seconds.
pub const MINUTE: i64 = 60;
pub const HOUR: i64 = 3600;

/// `t` rounded down to a multiple of `span` seconds (UTC).
pub fn floor(t: OffsetDateTime, span: i64) -> OffsetDateTime {
    let secs = t.unix_timestamp().div_euclid(span) * span;
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(t)
}

/// One rollup row's worth of attempts.
#[derive(Clone, Debug, PartialEq)]
pub struct Counts {
    pub attempts: u64,
    pub succeeded: u64,
    pub last_success_at: Option<OffsetDateTime>,
    pub last_failure_at: Option<OffsetDateTime>,
    /// [`BUCKETS`] counts.
    pub latency: Vec<u64>,
}

impl Default for Counts {
    fn default() -> Self {
        Self {
            attempts: 0,
            succeeded: 0,
            last_success_at: None,
            last_failure_at: None,
            latency: vec![0; BUCKETS],
        }
    }
}

impl Counts {
    pub fn add(&mut self, success: bool, at: OffsetDateTime, duration_ms: u64) {
        self.attempts = self.attempts.saturating_add(1);
        if success {
            self.succeeded = self.succeeded.saturating_add(1);
            self.last_success_at = self.last_success_at.max(Some(at));
        } else {
            self.last_failure_at = self.last_failure_at.max(Some(at));
        }
        if let Some(c) = self.latency.get_mut(bucket_of(duration_ms)) {
            *c = c.saturating_add(1);
        }
    }

    /// Adds another row's counts (summing shards and buckets).
    pub fn merge(&mut self, other: &Counts) {
        self.attempts = self.attempts.saturating_add(other.attempts);
        self.succeeded = self.succeeded.saturating_add(other.succeeded);
        self.last_success_at = self.last_success_at.max(other.last_success_at);
        self.last_failure_at = self.last_failure_at.max(other.last_failure_at);
        if self.latency.len() < other.latency.len() {
            self.latency.resize(other.latency.len(), 0);
        }
        for (a, b) in self.latency.iter_mut().zip(&other.latency) {
            *a = a.saturating_add(*b);
        }
    }

    /// The histogram as stored: without trailing empty buckets, as a PostgreSQL array literal.
    pub fn latency_literal(&self) -> String {
        let used = self.latency.iter().rposition(|c| *c > 0).map_or(0, |i| i + 1);
        let parts: Vec<String> = self.latency[..used].iter().map(u64::to_string).collect();
        format!("{{{}}}", parts.join(","))
    }
}

/// A rollup row's key: webhook, span (seconds) and the bucket's start (Unix seconds).
pub type Key = (Uuid, i64, i64);

/// Attempts added since the last flush, per row.
#[derive(Debug, Default)]
pub struct Rollup {
    pub rows: HashMap<Key, Counts>,
}

impl Rollup {
    /// Counts one attempt in its minute and its hour.
    pub fn add(&mut self, webhook_id: Uuid, success: bool, at: OffsetDateTime, duration_ms: u64) {
        for span in [MINUTE, HOUR] {
            let bucket = at.unix_timestamp().div_euclid(span) * span;
            self.rows
                .entry((webhook_id, span, bucket))
                .or_default()
                .add(success, at, duration_ms);
        }
    }

    /// Puts back rows a failed flush took, adding what came in meanwhile.
    pub fn merge(&mut self, other: Rollup) {
        for (k, c) in other.rows {
            self.rows.entry(k).or_default().merge(&c);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_below_16_ms_and_within_an_eighth_above() {
        for ms in 0..16 {
            assert_eq!(bucket_range(bucket_of(ms)), (ms, ms + 1));
        }
        let mut last = 0;
        for ms in 16..200_000u64 {
            let b = bucket_of(ms);
            assert!(b >= last && b < BUCKETS, "{ms}");
            last = b;
            let (lo, hi) = bucket_range(b);
            assert!(lo <= ms && ms < hi, "{ms} in [{lo}, {hi})");
            assert!((hi - lo) * 8 <= lo, "{ms}: bucket [{lo}, {hi}) too wide");
            let err = (bucket_value(b) - ms as f64).abs() / ms as f64;
            assert!(err <= 0.0625, "{ms}: reported {} ({err})", bucket_value(b));
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let mut c = Counts::default();
        let t = OffsetDateTime::UNIX_EPOCH;
        for ms in 1..=10 {
            c.add(true, t, ms);
        }
        assert_eq!(percentile(&c.latency, 0.5), Some(5.0));
        assert_eq!(percentile(&c.latency, 0.95), Some(10.0));
        assert_eq!(percentile(&c.latency, 1.0), Some(10.0));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(c.latency_literal(), "{0,1,1,1,1,1,1,1,1,1,1}");
    }

    #[test]
    fn windows_read_minutes_at_their_start_and_hours_after() {
        let now = OffsetDateTime::from_unix_timestamp(1_764_700_000).expect("t"); // 18:26:40
        let (m, h) = Window::Day.bounds(now);
        assert_eq!(m.unix_timestamp() % 60, 0);
        assert!(m <= now - time::Duration::DAY && now - time::Duration::DAY - m < time::Duration::MINUTE);
        assert_eq!(h.unix_timestamp() % 3600, 0);
        assert!(h > m && h - m <= time::Duration::HOUR);
        let (m, h) = Window::Week.bounds(now);
        assert_eq!(m, h);
        assert!(now - time::Duration::WEEK - m < time::Duration::HOUR);
        let (m, h) = Window::Hour.bounds(now);
        assert!(h > now && now - time::Duration::HOUR - m < time::Duration::MINUTE);
    }

    #[test]
    fn a_rollup_counts_each_attempt_in_its_minute_and_hour() {
        let mut r = Rollup::default();
        let w = Uuid::now_v7();
        let t = OffsetDateTime::from_unix_timestamp(7_200 + 61).expect("t");
        r.add(w, true, t, 5);
        r.add(w, false, t + time::Duration::MINUTE, 7);
        assert_eq!(r.rows.len(), 3);
        let hour = &r.rows[&(w, HOUR, 7_200)];
        assert_eq!((hour.attempts, hour.succeeded), (2, 1));
        assert_eq!(hour.last_failure_at, Some(t + time::Duration::MINUTE));
        assert_eq!(r.rows[&(w, MINUTE, 7_260)].attempts, 1);
    }
}
