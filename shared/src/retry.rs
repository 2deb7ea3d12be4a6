//! Retries are data: one pure function, [`next_delay`], decides when (and whether) to retry.
//!
//! Exponential: `max_retries` delays that double each time and add up to `window`
//! (3 over 30 minutes: ~4.3 m, ~8.6 m, ~17.1 m), each shortened by up to 20 % of jitter so the
//! schedule never leaves its window. Schedule: the delays as written, no jitter.
//! A `Retry-After` (429 or 503) lengthens a delay, but never past the end of the window.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;

/// How far jitter may shorten an exponential delay.
pub const JITTER: f64 = 0.2;

/// When to retry a failed delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryPolicy {
    /// `max_retries` retries with doubling delays that add up to `window`.
    Exponential { max_retries: u32, window: Duration },
    /// Retry after each of these delays in turn (delay i follows failure i).
    Schedule(Vec<Duration>),
}

/// A webhook's own policy as stored and shown in the API:
/// `{"max_retries": 5, "window": "1h"}` or `{"schedule": ["1s", "2s", "4s"]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Vec<HumanDuration>>,
}

/// Most retries a policy may ask for (and most entries of a schedule).
pub const MAX_RETRIES_LIMIT: u32 = 100;

/// The longest delay [`next_delay`] ever returns, whatever the policy (one stored before
/// policies were bounded included), so `now + delay` can never overflow a time.
pub const MAX_DELAY: Duration = Duration::from_secs(366 * 86_400);

/// The sum of `delays`, saturating instead of overflowing.
fn total(delays: &[Duration]) -> Duration {
    delays.iter().fold(Duration::ZERO, |a, d| a.saturating_add(*d))
}

/// `now + delay`, or `None` when that is not a representable time.
pub fn retry_at(now: time::OffsetDateTime, delay: Duration) -> Option<time::OffsetDateTime> {
    now.checked_add(time::Duration::try_from(delay).ok()?)
}

impl RetryPolicySpec {
    /// Checks the spec, saying what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.schedule, self.max_retries, self.window) {
            (Some(s), None, None) => {
                if s.len() > MAX_RETRIES_LIMIT as usize {
                    return Err(format!("schedule: at most {MAX_RETRIES_LIMIT} entries"));
                }
                Ok(())
            }
            (Some(_), _, _) => Err("give either `schedule` or `max_retries`/`window`, not both".into()),
            (None, m, w) => {
                if m.is_none() && w.is_none() {
                    return Err("give `schedule`, or `max_retries` and/or `window`".into());
                }
                if m.unwrap_or(0) > MAX_RETRIES_LIMIT {
                    return Err(format!("max_retries: at most {MAX_RETRIES_LIMIT}"));
                }
                if w.is_some_and(|w| w.0.is_zero()) {
                    return Err("window: must be greater than 0".into());
                }
                Ok(())
            }
        }
    }

    /// Checks the spec's durations against `max` (the retention: a retry after its delivery was
    /// purged can't be made). The error names the field, e.g. `window: ...`.
    pub fn validate_bounds(&self, max: Duration) -> Result<(), String> {
        let max_text = crate::duration::format_duration(max);
        if let Some(w) = self.window
            && w.0 > max
        {
            return Err(format!("window: `{w}` is longer than the retention ({max_text})"));
        }
        if let Some(s) = &self.schedule {
            if let Some((i, d)) = s.iter().enumerate().find(|(_, d)| d.0 > max) {
                return Err(format!(
                    "schedule[{i}]: `{d}` is longer than the retention ({max_text})"
                ));
            }
            let sum: Vec<Duration> = s.iter().map(|d| d.0).collect();
            if total(&sum) > max {
                return Err(format!(
                    "schedule: the delays add up to more than the retention ({max_text})"
                ));
            }
        }
        Ok(())
    }

    /// The policy this spec means, filling gaps from `default`.
    pub fn resolve(&self, default: &RetryPolicy) -> RetryPolicy {
        if let Some(s) = &self.schedule {
            return RetryPolicy::Schedule(s.iter().map(|d| d.0).collect());
        }
        let (dm, dw) = match default {
            RetryPolicy::Exponential { max_retries, window } => (*max_retries, *window),
            RetryPolicy::Schedule(s) => (s.len() as u32, total(s)),
        };
        RetryPolicy::Exponential {
            max_retries: self.max_retries.unwrap_or(dm),
            window: self.window.map(|w| w.0).unwrap_or(dw),
        }
    }
}

impl RetryPolicy {
    /// How many automatic retries the policy allows.
    pub fn max_retries(&self) -> u32 {
        match self {
            Self::Exponential { max_retries, .. } => *max_retries,
            Self::Schedule(s) => s.len() as u32,
        }
    }

    /// The whole time from the first failure within which every retry is sent.
    pub fn window(&self) -> Duration {
        match self {
            Self::Exponential { window, .. } => *window,
            Self::Schedule(s) => total(s),
        }
    }

    /// The delay before retry `n` (1-based), without jitter.
    pub fn base_delay(&self, n: u32) -> Option<Duration> {
        if n == 0 || n > self.max_retries() {
            return None;
        }
        match self {
            Self::Schedule(s) => s.get(n as usize - 1).copied(),
            Self::Exponential { max_retries, window } => {
                // d_i = base * 2^(i-1), sum = base * (2^N - 1) = window.
                let total_units = 2f64.powi(*max_retries as i32) - 1.0;
                let base = window.as_secs_f64() / total_units;
                // Checked: a NaN or overflowing value (a zero-length or absurd policy) is no delay.
                Duration::try_from_secs_f64(base * 2f64.powi(n as i32 - 1)).ok()
            }
        }
    }
}

/// What [`next_delay`] needs to know about the attempt that just failed.
#[derive(Clone, Copy, Debug)]
pub struct FailedAttempt {
    /// How many attempts have failed so far, this one included (1 after the first attempt).
    pub failures: u32,
    /// Time since the first attempt failed (zero after the first attempt).
    pub since_first_failure: Duration,
    /// `Retry-After` from a 429 or 503 response.
    pub retry_after: Option<Duration>,
}

/// The delay until the next automatic retry, or `None` when retries are exhausted.
pub fn next_delay<R: Rng + ?Sized>(
    policy: &RetryPolicy,
    failed: FailedAttempt,
    rng: &mut R,
) -> Option<Duration> {
    let base = policy.base_delay(failed.failures)?;
    let mut delay = match policy {
        RetryPolicy::Schedule(_) => base,
        RetryPolicy::Exponential { .. } => {
            let factor = 1.0 - JITTER * rng.random::<f64>();
            base.mul_f64(factor)
        }
    };
    let left = policy.window().saturating_sub(failed.since_first_failure);
    if let Some(ra) = failed.retry_after {
        delay = delay.max(ra.min(left));
    }
    if let RetryPolicy::Exponential { .. } = policy {
        // An earlier Retry-After may have used up part of the window: the rest of the
        // schedule still ends inside it. (A written schedule is used as written.)
        delay = delay.min(left);
    }
    Some(delay.min(MAX_DELAY))
}

/// Parses a `Retry-After` header: delay-seconds, or an HTTP date relative to `now`.
pub fn parse_retry_after(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let when = time::PrimitiveDateTime::parse(v, &fmt).ok()?.assume_utc();
    let secs = (when - now).whole_seconds();
    Some(Duration::from_secs(secs.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{SeedableRng, rngs::StdRng};

    fn exp(n: u32, secs: u64) -> RetryPolicy {
        RetryPolicy::Exponential {
            max_retries: n,
            window: Duration::from_secs(secs),
        }
    }

    fn schedule(policy: &RetryPolicy, seed: u64) -> Vec<Duration> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = Vec::new();
        let mut elapsed = Duration::ZERO;
        for failures in 1.. {
            let f = FailedAttempt {
                failures,
                since_first_failure: elapsed,
                retry_after: None,
            };
            match next_delay(policy, f, &mut rng) {
                Some(d) => {
                    elapsed += d;
                    out.push(d);
                }
                None => break,
            }
        }
        out
    }

    #[test]
    fn default_is_three_retries_over_thirty_minutes() {
        let p = exp(3, 1800);
        let s = schedule(&p, 1);
        assert_eq!(s.len(), 3);
        assert!(s.iter().sum::<Duration>() <= Duration::from_secs(1800));
        assert!(s.iter().sum::<Duration>() >= Duration::from_secs(1440), "{s:?}");
    }

    #[test]
    fn an_explicit_schedule_is_used_as_written() {
        let p = RetryPolicy::Schedule(vec![
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(4),
        ]);
        assert_eq!(
            schedule(&p, 7),
            vec![
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(4)
            ]
        );
    }

    #[test]
    fn retry_after_is_honoured_within_the_window() {
        let p = exp(3, 1800);
        let mut rng = StdRng::seed_from_u64(3);
        let f = FailedAttempt {
            failures: 1,
            since_first_failure: Duration::ZERO,
            retry_after: Some(Duration::from_secs(900)),
        };
        assert_eq!(next_delay(&p, f, &mut rng), Some(Duration::from_secs(900)));
        let f = FailedAttempt {
            failures: 2,
            since_first_failure: Duration::from_secs(1700),
            retry_after: Some(Duration::from_secs(900)),
        };
        let d = next_delay(&p, f, &mut rng).expect("still retries");
        assert!(d <= Duration::from_secs(600), "{d:?}");
    }

    #[test]
    fn a_long_retry_after_does_not_push_later_retries_past_the_window() {
        let p = exp(3, 1800);
        let mut rng = StdRng::seed_from_u64(5);
        let f = FailedAttempt {
            failures: 3,
            since_first_failure: Duration::from_secs(1790),
            retry_after: None,
        };
        let d = next_delay(&p, f, &mut rng).expect("the last retry is still made");
        assert!(d <= Duration::from_secs(10), "{d:?}");
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = time::macros::datetime!(2026-11-27 10:00:00 UTC);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Fri, 27 Nov 2026 10:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn specs_validate_and_resolve() {
        let spec: RetryPolicySpec = serde_json::from_str(r#"{"schedule":["1s","2s"]}"#).expect("parses");
        assert!(spec.validate().is_ok());
        assert_eq!(spec.resolve(&exp(3, 1800)).max_retries(), 2);
        let spec: RetryPolicySpec = serde_json::from_str(r#"{"max_retries":5}"#).expect("parses");
        assert_eq!(spec.resolve(&exp(3, 1800)), exp(5, 1800));
        let spec: RetryPolicySpec =
            serde_json::from_str(r#"{"max_retries":5,"schedule":["1s"]}"#).expect("parses");
        assert!(spec.validate().is_err());
        assert!(serde_json::from_str::<RetryPolicySpec>(r#"{"bogus":1}"#).is_err());
    }

    #[test]
    fn durations_longer_than_the_retention_are_refused_naming_the_field() {
        let month = Duration::from_secs(30 * 86_400);
        for (json, field) in [
            (r#"{"window":"3000000d"}"#, "window"),
            (r#"{"max_retries":3,"window":"31d"}"#, "window"),
            (r#"{"schedule":["1s","3000000d"]}"#, "schedule[1]"),
            (r#"{"schedule":["20d","20d"]}"#, "schedule"),
        ] {
            let spec: RetryPolicySpec = serde_json::from_str(json).expect("parses");
            let err = spec.validate_bounds(month).expect_err(json);
            assert!(err.starts_with(field), "{json}: {err}");
        }
        let ok: RetryPolicySpec = serde_json::from_str(r#"{"schedule":["1s","29d"]}"#).expect("parses");
        assert!(ok.validate_bounds(month).is_ok());
    }

    #[test]
    fn an_absurd_stored_policy_never_yields_a_delay_that_overflows_a_time() {
        let huge = Duration::from_millis(u64::MAX);
        let mut rng = StdRng::seed_from_u64(1);
        for p in [
            RetryPolicy::Schedule(vec![huge; 100]),
            RetryPolicy::Exponential {
                max_retries: 100,
                window: huge,
            },
            RetryPolicy::Exponential {
                max_retries: 1,
                window: huge,
            },
        ] {
            let _ = p.window();
            for failures in 1..=100 {
                let f = FailedAttempt {
                    failures,
                    since_first_failure: Duration::ZERO,
                    retry_after: Some(huge),
                };
                if let Some(d) = next_delay(&p, f, &mut rng) {
                    assert!(d <= MAX_DELAY);
                    assert!(retry_at(time::OffsetDateTime::now_utc(), d).is_some());
                }
            }
        }
        assert!(retry_at(time::OffsetDateTime::now_utc(), huge).is_none());
    }

    proptest! {
        #[test]
        fn every_schedule_stays_inside_its_window_and_has_its_length(
            n in 0u32..12, window in 1u64..200_000, seed in any::<u64>()
        ) {
            let p = exp(n, window);
            let s = schedule(&p, seed);
            prop_assert_eq!(s.len() as u32, n);
            prop_assert!(s.iter().sum::<Duration>() <= Duration::from_secs(window) + Duration::from_millis(1));
        }

        #[test]
        fn delays_are_non_decreasing_before_jitter(n in 1u32..12, window in 1u64..200_000) {
            let p = exp(n, window);
            let base: Vec<Duration> = (1..=n).filter_map(|i| p.base_delay(i)).collect();
            prop_assert_eq!(base.len() as u32, n);
            prop_assert!(base.windows(2).all(|w| w[0] <= w[1]));
        }
    }
}
