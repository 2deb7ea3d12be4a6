//! Subscription patterns: an exact type (`license.assigned`), a prefix wildcard (`license.*`,
//! `license.key.*`: any depth below the prefix), or `*` for everything. `*` is only ever a
//! whole last segment. Validation and matching both go through [`Pattern::parse`], so a
//! pattern that is accepted is one that can match.

use crate::event::{MAX_TYPE_LEN, is_valid_type, valid_segments};

/// A parsed subscription pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern<'a> {
    /// `*`: every event.
    All,
    /// `prefix.*`: every type with at least one segment below `prefix` (`license.key.*`
    /// matches `license.key.created` and `license.key.a.b`, not `license.key` itself).
    Below(&'a str),
    /// An exact event type.
    Exact(&'a str),
}

impl<'a> Pattern<'a> {
    /// Parses a pattern, or `None` when it is not one (the grammar is in the module docs).
    pub fn parse(pattern: &'a str) -> Option<Self> {
        if pattern == "*" {
            return Some(Self::All);
        }
        if let Some(prefix) = pattern.strip_suffix(".*") {
            // `prefix.x`, the shortest type below the prefix and as long as the pattern, is a
            // valid type exactly when the prefix is one or more valid segments and short enough
            // (checked without building it: this runs per webhook per event).
            let ok = prefix.len() <= MAX_TYPE_LEN.saturating_sub(2) && valid_segments(prefix).is_some();
            return ok.then_some(Self::Below(prefix));
        }
        is_valid_type(pattern).then_some(Self::Exact(pattern))
    }

    /// Whether an event of type `event_type` matches.
    pub fn matches(self, event_type: &str) -> bool {
        match self {
            Self::All => true,
            Self::Below(prefix) => event_type
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|rest| !rest.is_empty()),
            Self::Exact(t) => t == event_type,
        }
    }
}

/// Whether `pattern` is a valid subscription pattern.
pub fn is_valid_pattern(pattern: &str) -> bool {
    Pattern::parse(pattern).is_some()
}

/// Whether an event of type `event_type` goes to a webhook subscribed with `pattern`.
/// An invalid pattern matches nothing.
pub fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    Pattern::parse(pattern).is_some_and(|p| p.matches(event_type))
}

/// Whether any of `patterns` matches.
pub fn any_matches<S: AsRef<str>>(patterns: &[S], event_type: &str) -> bool {
    patterns.iter().any(|p| pattern_matches(p.as_ref(), event_type))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn exact_category_and_star() {
        assert!(pattern_matches("license.assigned", "license.assigned"));
        assert!(!pattern_matches("license.assigned", "license.revoked"));
        assert!(pattern_matches("license.*", "license.revoked"));
        assert!(!pattern_matches("license.*", "licenses.revoked"));
        assert!(!pattern_matches("license.*", "product.created"));
        assert!(pattern_matches("*", "product.created"));
    }

    #[test]
    fn a_deeper_prefix_matches_any_depth_below_it() {
        assert!(pattern_matches("license.a.*", "license.a.b"));
        assert!(pattern_matches("license.key.*", "license.key.created"));
        assert!(pattern_matches("license.key.*", "license.key.a.b"));
        assert!(pattern_matches("license.*", "license.key.created"));
        assert!(!pattern_matches("license.key.*", "license.key"));
        assert!(!pattern_matches("license.key.*", "license.keys.created"));
        assert!(!pattern_matches("license.key.*", "license.created"));
        assert!(!pattern_matches("license.key.*", "license.key."));
    }

    #[test]
    fn patterns_are_validated() {
        for ok in [
            "*",
            "license.*",
            "license.assigned",
            "a.b.c",
            "license.a.*",
            "license.key.*",
        ] {
            assert!(is_valid_pattern(ok), "{ok}");
        }
        for bad in [
            "",
            "license",
            "License.*",
            "*.assigned",
            "license.**",
            "a..b",
            "license.*.created",
            "license.a*",
            "license*",
            "lic*nse.created",
            ".*",
            "..*",
            "license..*",
            "*.*",
            "**",
            "license.*.*",
            " license.*",
        ] {
            assert!(!is_valid_pattern(bad), "{bad}");
        }
    }

    #[test]
    fn an_invalid_pattern_matches_nothing() {
        assert!(!pattern_matches("license.*.created", "license.key.created"));
        assert!(!pattern_matches("*.created", "license.created"));
        assert!(!pattern_matches("license", "license"));
    }

    /// The one event type a pattern should obviously match, if it is valid.
    fn witness(pattern: &str) -> String {
        match pattern.strip_suffix('*') {
            _ if pattern == "*" => "a.b".into(),
            Some(prefix) => format!("{prefix}x"),
            None => pattern.into(),
        }
    }

    fn segment() -> impl Strategy<Value = String> {
        "[a-z0-9_-]{1,8}"
    }

    /// Pattern-like text: mostly valid characters, dots and stars, so the interesting cases
    /// (stars in the middle, empty segments, prefixes) come up often.
    fn pattern_like() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z.*]{0,12}",
            "[a-zA-Z0-9_. *-]{0,24}",
            prop::collection::vec(
                prop_oneof![segment(), Just("*".to_owned()), Just(String::new())],
                0..5
            )
            .prop_map(|s| s.join(".")),
            any::<String>(),
        ]
    }

    proptest! {
        /// Validation accepts exactly the patterns that match a valid event type, and a
        /// refused pattern matches nothing at all.
        #[test]
        fn validation_and_matching_agree(p in pattern_like(), t in pattern_like()) {
            let w = witness(&p);
            prop_assert_eq!(is_valid_pattern(&p), is_valid_type(&w) && pattern_matches(&p, &w), "{:?}", p);
            if !is_valid_pattern(&p) {
                prop_assert!(!pattern_matches(&p, &t));
                prop_assert!(!pattern_matches(&p, &w));
            }
        }

        /// `prefix.*` matches a type exactly when the type has the prefix's segments and at
        /// least one more.
        #[test]
        fn a_prefix_matches_every_type_below_it(
            prefix in prop::collection::vec(segment(), 1..4),
            below in prop::collection::vec(segment(), 0..3),
            other in prop::collection::vec(segment(), 2..5),
        ) {
            let pattern = format!("{}.*", prefix.join("."));
            prop_assert!(is_valid_pattern(&pattern));
            let mut t = prefix.clone();
            t.extend(below.iter().cloned());
            let t = t.join(".");
            prop_assert_eq!(pattern_matches(&pattern, &t), !below.is_empty());
            let other = other.join(".");
            let below_prefix = other.starts_with(&format!("{}.", prefix.join(".")));
            prop_assert_eq!(pattern_matches(&pattern, &other), below_prefix);
        }

        /// An exact type matches itself and nothing else; any text is handled without panic.
        #[test]
        fn an_exact_type_matches_only_itself(segs in prop::collection::vec(segment(), 2..5), t in any::<String>()) {
            let p = segs.join(".");
            prop_assert!(is_valid_pattern(&p));
            prop_assert!(pattern_matches(&p, &p));
            prop_assert_eq!(pattern_matches(&p, &t), p == t);
            let _ = is_valid_pattern(&t);
        }
    }
}
