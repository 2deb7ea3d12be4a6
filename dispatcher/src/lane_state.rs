//! One lane's counters and the timing rules its decisions use: when its queue counts as the
//! process's backlog, when a queued attempt has waited too long, and when a deferred attempt
//! comes back. The decisions themselves are in `lanes.rs`.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use super::Attempt;
use crate::guard::View;

/// The longest an attempt waits in a lane's queue before it is deferred instead.
pub const MAX_QUEUE_WAIT: Duration = Duration::from_secs(1);
/// How old this replica's view of a webhook's shared state may get before it is re-read.
pub const VIEW_TTL: Duration = Duration::from_secs(1);

/// The longest queue a lane keeps: enough for several intake batches at full speed.
pub(super) fn queue_cap(max_in_flight: u32) -> usize {
    (max_in_flight as usize).saturating_mul(256).clamp(256, 16_384)
}

/// A lane whose requests take less than this on average queues up to its bound.
pub(super) const FAST_REQUEST_MS: f64 = 250.0;
/// A lane none of whose requests ended for this long is not moving its queue.
const STALLED: Duration = Duration::from_millis(250);

pub(super) struct State {
    pub(super) in_flight: u32,
    pub(super) queue: VecDeque<(Attempt, Instant)>,
    pub(super) view: View,
    pub(super) view_at: Option<Instant>,
    pub(super) refreshing: bool,
    /// Moving average of this webhook's request duration (ms).
    pub(super) avg_ms: f64,
    /// The latest time an `in_flight` deferral was given, so the next is spread after it.
    pub(super) horizon_ms: i64,
    /// When a request of this lane last ended (or, before any has, when the first started).
    pub(super) progress_at: Option<Instant>,
    /// How many of this lane's queued attempts count in the process's backlog.
    pub(super) counted: usize,
    /// This lane is in the list of lanes waiting for a process slot.
    pub(super) starved: bool,
    /// Its endpoint answered (any HTTP status) the last request of this lane that ended.
    /// Until it has, the lane sends one request at a time: an endpoint that never answers
    /// (a black hole) holds one connection and one task of this process, not `max_in_flight`.
    pub(super) answering: bool,
}

impl State {
    pub(super) fn new() -> Self {
        Self {
            in_flight: 0,
            queue: VecDeque::new(),
            view: View::default(),
            view_at: None,
            refreshing: false,
            avg_ms: 0.0,
            horizon_ms: 0,
            progress_at: None,
            counted: 0,
            starved: false,
            answering: false,
        }
    }

    /// How many requests `a`'s lane may have in flight now: its `max_in_flight` once its
    /// endpoint answers, one until then (a manual attempt is never held to one).
    pub(super) fn cap(&self, a: &Attempt) -> u32 {
        if self.answering || a.manual() { a.cap() } else { 1 }
    }

    /// Whether this lane's queue is the process's backlog rather than the endpoint's own: its
    /// requests are fast, and it is moving (one ended just now) or has nothing in flight (it
    /// waits for a process slot, not for its endpoint). A lane that stalls (no answer yet, or
    /// none lately) keeps its queue to itself, so it never pauses intake for everyone; its
    /// queue is bounded by its own rules and deferred after [`MAX_QUEUE_WAIT`].
    pub(super) fn counts(&self, now: Instant) -> bool {
        self.avg_ms > 0.0
            && self.avg_ms < FAST_REQUEST_MS
            && (self.in_flight == 0
                || self
                    .progress_at
                    .is_some_and(|t| now.saturating_duration_since(t) < STALLED))
    }

    /// Whether what waits at the front of the queue has waited too long and should be
    /// deferred: only when this lane (its cap, its slow or stalled endpoint) holds it back.
    /// A fast lane below its cap waits for a process slot instead: the process is behind, the
    /// endpoint is not, and intake pauses on the backlog meanwhile.
    pub(super) fn expired(&self, a: &Attempt, queued_at: Instant, now: Instant) -> bool {
        !a.manual()
            && now.duration_since(queued_at) > MAX_QUEUE_WAIT
            && (self.in_flight >= self.cap(a) || !self.counts(now))
    }

    /// How long this lane's requests have been hanging: since the last one ended (or the first
    /// started), while any is in flight.
    fn hanging_ms(&self, now: Instant) -> f64 {
        match self.progress_at {
            Some(t) if self.in_flight > 0 => now.saturating_duration_since(t).as_secs_f64() * 1000.0,
            _ => 0.0,
        }
    }

    /// When an attempt that found no free slot should come back: after about one request's
    /// time — the average, or how long the requests in flight have been hanging if longer (a
    /// lane with no answer yet has no average), at most the request timeout — and each one
    /// later than the last by a slot's share of that, so a backlog returns spread at the rate
    /// the endpoint takes it rather than all at once, and an endpoint that never answers is
    /// not asked again every few milliseconds.
    pub(super) fn in_flight_deferral(&mut self, now_ms: i64, cap: u32, timeout_ms: f64) -> i64 {
        let est = self
            .avg_ms
            .max(self.hanging_ms(Instant::now()))
            .clamp(50.0, timeout_ms.max(50.0));
        let at = (now_ms + est as i64).max(self.horizon_ms);
        let at = at.min(now_ms + 600_000);
        self.horizon_ms = at + (est / f64::from(cap.max(1))) as i64;
        at
    }
}
