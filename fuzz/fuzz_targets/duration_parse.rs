//! Durations: any text is a duration or an error with a message, never a panic; a parsed
//! duration prints and parses back to itself. The same text also goes through the retry
//! policy a webhook may carry (`{"window": ..}`, `{"schedule": [..]}`), its validation and
//! the delays it yields, and through `Retry-After` parsing.
#![no_main]

use std::time::Duration;

use hookrelay_shared::{
    duration::{DurationList, HumanDuration, OrOff, format_duration, parse_duration, parse_duration_list},
    retry::{
        FailedAttempt, MAX_DELAY, RetryPolicy, RetryPolicySpec, next_delay, parse_retry_after, retry_at,
    },
};
use libfuzzer_sys::fuzz_target;
use rand::{SeedableRng, rngs::StdRng};
use time::OffsetDateTime;

fuzz_target!(|text: &str| {
    match parse_duration(text) {
        Err(e) => assert!(!e.is_empty()),
        Ok(d) => {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{text:?}");
            assert_eq!(text.parse::<HumanDuration>(), Ok(HumanDuration(d)));
        }
    }
    if let Ok(list) = parse_duration_list(text) {
        let printed: Vec<String> = list.iter().map(|d| format_duration(*d)).collect();
        assert_eq!(parse_duration_list(&printed.join(",")), Ok(list));
    }
    let _ = text.parse::<OrOff>();

    // The text as a JSON value, for serde.
    let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else {
        let _ = serde_json::from_value::<HumanDuration>(serde_json::Value::String(text.to_owned()));
        return;
    };
    let _ = serde_json::from_value::<HumanDuration>(json.clone());
    let _ = serde_json::from_value::<OrOff>(json.clone());
    let _ = serde_json::from_value::<DurationList>(json.clone());
    if let Ok(spec) = serde_json::from_value::<RetryPolicySpec>(json) {
        let default = RetryPolicy::Exponential {
            max_retries: 3,
            window: Duration::from_secs(1800),
        };
        if spec.validate().is_ok() && spec.validate_bounds(Duration::from_secs(30 * 86_400)).is_ok() {
            let policy = spec.resolve(&default);
            let mut rng = StdRng::seed_from_u64(1);
            let now = OffsetDateTime::UNIX_EPOCH;
            for failures in 0..=policy.max_retries().min(110) + 1 {
                let failed = FailedAttempt {
                    failures,
                    since_first_failure: Duration::from_secs(u64::from(failures) * 60),
                    retry_after: Some(Duration::from_secs(u64::from(failures) * 1000)),
                };
                if let Some(delay) = next_delay(&policy, failed, &mut rng) {
                    assert!(delay <= MAX_DELAY);
                    assert!(retry_at(now, delay).is_some());
                }
            }
        }
    }
    let _ = parse_retry_after(text, OffsetDateTime::UNIX_EPOCH);
});
