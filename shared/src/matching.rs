//! Subscription patterns: an exact type (`license.assigned`), a category wildcard
//! (`license.*`), or `*` for everything.

use crate::event::{category_of, is_valid_type};

/// Whether `pattern` is a valid subscription pattern.
pub fn is_valid_pattern(pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(cat) = pattern.strip_suffix(".*") {
        return is_valid_type(&format!("{cat}.x"));
    }
    is_valid_type(pattern)
}

/// Whether an event of type `event_type` goes to a webhook subscribed with `pattern`.
pub fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    match pattern {
        "*" => true,
        p => match p.strip_suffix(".*") {
            Some(cat) => category_of(event_type) == cat,
            None => p == event_type,
        },
    }
}

/// Whether any of `patterns` matches.
pub fn any_matches<S: AsRef<str>>(patterns: &[S], event_type: &str) -> bool {
    patterns.iter().any(|p| pattern_matches(p.as_ref(), event_type))
}

#[cfg(test)]
mod tests {
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
    fn patterns_are_validated() {
        for ok in ["*", "license.*", "license.assigned", "a.b.c"] {
            assert!(is_valid_pattern(ok), "{ok}");
        }
        for bad in ["", "license", "License.*", "*.assigned", "license.**", "a..b"] {
            assert!(!is_valid_pattern(bad), "{bad}");
        }
    }
}
