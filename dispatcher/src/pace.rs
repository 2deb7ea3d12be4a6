//! How much intake may queue ahead of sending: a quarter second of what this process has been
//! completing lately (at least [`MIN_BACKLOG`], at most [`MAX_BACKLOG`]).
//!
//! A fixed bound was wrong both ways: on a busy machine that completes 1,000 attempts a second,
//! 4,096 queued attempts wait 4 s, longer than a lane may keep them, so a healthy endpoint's
//! attempts were deferred (a database write, a trip through the scheduler) because the process,
//! not the endpoint, was behind. With the bound in time, a fast lane's queue stays well under
//! [`crate::lanes::MAX_QUEUE_WAIT`] and intake slows down instead.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// Never less than this much queued ahead (two intake batches): enough to keep lanes busy
/// between batches, and the bound before anything has completed.
pub const MIN_BACKLOG: usize = 400;
/// Never more than this much queued ahead (memory, and the shutdown drain).
pub const MAX_BACKLOG: usize = 4_096;
/// How far ahead of sending intake may run.
pub const AHEAD: Duration = Duration::from_millis(250);

/// Completions counted, and the bound derived from them.
pub struct Pace {
    completed: AtomicU64,
    limit: AtomicUsize,
    last: Mutex<Option<(Instant, u64, f64)>>,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            completed: AtomicU64::new(0),
            limit: AtomicUsize::new(MIN_BACKLOG),
            last: Mutex::new(None),
        }
    }
}

impl Pace {
    /// One attempt ended (sent, whatever the outcome).
    pub fn completed(&self) {
        self.completed.fetch_add(1, Ordering::Relaxed);
    }

    /// The attempts intake may have waiting in the lanes now.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Re-estimates the rate (the sweeper calls it every few hundred ms). The rate is smoothed
    /// so one quiet interval does not shut intake down.
    pub fn tick(&self, now: Instant) {
        let done = self.completed.load(Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let rate = match *last {
            Some((at, before, smoothed)) => {
                let secs = now.saturating_duration_since(at).as_secs_f64();
                if secs < 0.05 {
                    return;
                }
                let now_rate = done.saturating_sub(before) as f64 / secs;
                if smoothed == 0.0 {
                    now_rate
                } else {
                    smoothed * 0.5 + now_rate * 0.5
                }
            }
            None => 0.0,
        };
        *last = Some((now, done, rate));
        self.limit.store(bound(rate), Ordering::Relaxed);
    }
}

/// The backlog allowed at `rate` completions per second.
fn bound(rate: f64) -> usize {
    let ahead = rate * AHEAD.as_secs_f64();
    if !ahead.is_finite() || ahead <= MIN_BACKLOG as f64 {
        return MIN_BACKLOG;
    }
    (ahead as usize).min(MAX_BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_a_quarter_second_of_the_rate_within_limits() {
        assert_eq!(bound(0.0), MIN_BACKLOG);
        assert_eq!(bound(f64::NAN), MIN_BACKLOG);
        assert_eq!(bound(1_000.0), MIN_BACKLOG);
        assert_eq!(bound(8_000.0), 2_000);
        assert_eq!(bound(1e12), MAX_BACKLOG);
    }

    #[test]
    fn the_limit_follows_what_completes() {
        let pace = Pace::default();
        let t0 = Instant::now();
        pace.tick(t0);
        assert_eq!(pace.limit(), MIN_BACKLOG, "nothing completed yet");
        for _ in 0..4_000 {
            pace.completed();
        }
        pace.tick(t0 + Duration::from_millis(500));
        assert_eq!(pace.limit(), 2_000, "8,000/s: a quarter second is 2,000");
        // A quiet half second halves the smoothed rate rather than stopping intake.
        pace.tick(t0 + Duration::from_millis(1_000));
        assert_eq!(pace.limit(), 1_000);
    }
}
