//! Unit tests of the webhook field checks.

use super::*;

fn patterns(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn the_pattern_grammar_is_enforced_naming_event_types() {
    assert_eq!(
        validate_patterns(&patterns(&[
            "*",
            "license.*",
            "license.key.*",
            "license.assigned"
        ])),
        Ok(())
    );
    for bad in [
        "license.*.created",
        "*.created",
        "license.a*",
        "license",
        "license..*",
    ] {
        let err = validate_patterns(&patterns(&["license.*", bad])).expect_err(bad);
        assert_eq!(err.field, "event_types", "{bad}");
        assert!(err.reason.contains(bad), "{bad}: {}", err.reason);
        assert!(err.reason.contains("last segment"), "{}", err.reason);
    }
}
