//! Properties of the retry policy the scheduler's retries follow (`hookrelay_shared::retry`),
//! beyond the shared crate's own: explicit schedules, and Retry-After.

use std::time::Duration;

use hookrelay_shared::retry::{FailedAttempt, JITTER, RetryPolicy, next_delay};
use proptest::prelude::*;
use rand::{SeedableRng, rngs::StdRng};

/// The delays a policy yields for consecutive failures, with `retry_after(n)` on failure n.
fn run(policy: &RetryPolicy, seed: u64, retry_after: impl Fn(u32) -> Option<Duration>) -> Vec<Duration> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = vec![];
    let mut elapsed = Duration::ZERO;
    for failures in 1..=1000 {
        let failed = FailedAttempt {
            failures,
            since_first_failure: elapsed,
            retry_after: retry_after(failures),
        };
        let Some(d) = next_delay(policy, failed, &mut rng) else {
            break;
        };
        elapsed += d;
        out.push(d);
    }
    out
}

proptest! {
    #[test]
    fn an_explicit_schedule_is_used_as_written_with_its_length(
        secs in proptest::collection::vec(0u64..100_000, 0..20), seed in any::<u64>()
    ) {
        let delays: Vec<Duration> = secs.iter().map(|s| Duration::from_secs(*s)).collect();
        let policy = RetryPolicy::Schedule(delays.clone());
        prop_assert_eq!(run(&policy, seed, |_| None), delays);
    }

    #[test]
    fn jitter_only_shortens_and_by_at_most_its_share(
        n in 1u32..12, window in 1u64..200_000, seed in any::<u64>()
    ) {
        let policy = RetryPolicy::Exponential { max_retries: n, window: Duration::from_secs(window) };
        for (i, d) in run(&policy, seed, |_| None).into_iter().enumerate() {
            let base = policy.base_delay(i as u32 + 1).expect("within the length");
            prop_assert!(d <= base);
            prop_assert!(d >= base.mul_f64(1.0 - JITTER) - Duration::from_nanos(1));
        }
    }

    #[test]
    fn retry_after_lengthens_a_delay_but_the_schedule_stays_in_its_window_and_keeps_its_count(
        n in 1u32..8, window in 10u64..100_000, seed in any::<u64>(),
        after in proptest::collection::vec(proptest::option::of(0u64..200_000), 8)
    ) {
        let policy = RetryPolicy::Exponential { max_retries: n, window: Duration::from_secs(window) };
        let window = Duration::from_secs(window);
        let plain = run(&policy, seed, |_| None);
        let ra = |f: u32| after[(f as usize - 1) % after.len()].map(Duration::from_secs);
        let honoured = run(&policy, seed, ra);
        prop_assert_eq!(honoured.len(), plain.len(), "Retry-After never adds or drops a retry");
        let mut elapsed = Duration::ZERO;
        for (i, (h, p)) in honoured.iter().zip(&plain).enumerate() {
            // Same seed, so the same jitter. A delay grows only to honour this failure's
            // Retry-After, and shrinks only where an earlier Retry-After used up the window:
            // then it ends exactly at the window's end.
            if h > p {
                prop_assert!(Some(*h) <= ra(i as u32 + 1), "retry {} lengthened beyond its Retry-After", i + 1);
            }
            if h < p {
                prop_assert_eq!(elapsed + *h, window, "retry {} shortened but not to the window's end", i + 1);
            }
            elapsed += *h;
            prop_assert!(elapsed <= window, "retry {} ends after the window", i + 1);
        }
    }
}
