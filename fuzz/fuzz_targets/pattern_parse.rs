//! Subscription patterns: any text is a pattern or refused, never a panic; validation accepts
//! exactly what matching can match (a refused pattern matches nothing, an accepted one matches
//! its obvious witness); what a pattern matches is what its grammar says.
#![no_main]

use hookrelay_shared::{
    event::is_valid_type,
    matching::{Pattern, any_matches, is_valid_pattern, pattern_matches},
    webhooks::validate_patterns,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (pattern, event_type) = input;
    let matched = pattern_matches(pattern, event_type);
    match Pattern::parse(pattern) {
        None => {
            assert!(!is_valid_pattern(pattern));
            assert!(!matched, "{pattern:?} is refused yet matches {event_type:?}");
            assert!(validate_patterns(&[pattern.to_owned()]).is_err());
        }
        Some(p) => {
            assert!(is_valid_pattern(pattern));
            assert!(validate_patterns(&[pattern.to_owned()]).is_ok());
            let witness = match p {
                Pattern::All => "a.b".to_owned(),
                Pattern::Below(prefix) => format!("{prefix}.x"),
                Pattern::Exact(t) => t.to_owned(),
            };
            assert!(is_valid_type(&witness), "{pattern:?}: witness {witness:?}");
            assert!(p.matches(&witness), "{pattern:?} does not match {witness:?}");
            let want = match p {
                Pattern::All => true,
                Pattern::Below(prefix) => {
                    event_type.len() > prefix.len() + 1
                        && event_type.starts_with(prefix)
                        && event_type.as_bytes()[prefix.len()] == b'.'
                }
                Pattern::Exact(t) => t == event_type,
            };
            assert_eq!(matched, want, "{pattern:?} against {event_type:?}");
        }
    }
    assert_eq!(
        any_matches(&[pattern, event_type], event_type),
        matched || pattern_matches(event_type, event_type)
    );
});
