//! What a webhook's fields must be: each check names the field it refuses ([`InvalidField`]),
//! for a new webhook ([`NewWebhook::validate`]) and for a patch ([`WebhookPatch::validate`]).

use super::{MAX_MAX_IN_FLIGHT, MAX_NAME_LEN, MAX_PATTERNS, MAX_RATE_LIMIT, NewWebhook, WebhookPatch};
use crate::{
    custom_headers::validate_headers,
    matching::is_valid_pattern,
    retry::RetryPolicySpec,
    signing_keys::{Key, SignatureScheme},
    ssrf,
};

/// A field that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidField {
    /// The field, or a path inside it (`filter.data.plan`).
    pub field: String,
    pub reason: String,
}

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> InvalidField {
    InvalidField {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Checks a name.
pub fn validate_name(name: &str) -> Result<(), InvalidField> {
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(invalid("name", format!("must be 1-{MAX_NAME_LEN} characters")));
    }
    Ok(())
}

/// Checks a URL (scheme, credentials, private literals).
pub fn validate_url(url: &str, allow_private: bool) -> Result<(), InvalidField> {
    ssrf::check_url(url, allow_private)
        .map(|_| ())
        .map_err(|e| invalid("url", e.to_string()))
}

/// Checks subscription patterns.
pub fn validate_patterns(patterns: &[String]) -> Result<(), InvalidField> {
    if patterns.is_empty() || patterns.len() > MAX_PATTERNS {
        return Err(invalid("event_types", format!("give 1-{MAX_PATTERNS} patterns")));
    }
    if let Some(bad) = patterns.iter().find(|p| !is_valid_pattern(p)) {
        return Err(invalid(
            "event_types",
            format!(
                "`{bad}` is not an event type (`license.assigned`), a prefix wildcard \
                 (`license.*`, `license.key.*`) or `*`: `*` may only be a whole last segment"
            ),
        ));
    }
    Ok(())
}

/// Checks `max_in_flight`.
pub fn validate_max_in_flight(n: Option<u32>) -> Result<(), InvalidField> {
    match n {
        Some(n) if n == 0 || n > MAX_MAX_IN_FLIGHT => {
            Err(invalid("max_in_flight", format!("must be 1-{MAX_MAX_IN_FLIGHT}")))
        }
        _ => Ok(()),
    }
}

/// Checks `rate_limit` (requests per second; fractions allowed, e.g. 0.5 = one every 2 s).
pub fn validate_rate_limit(r: Option<f64>) -> Result<(), InvalidField> {
    match r {
        Some(r) if !r.is_finite() || !(0.01..=MAX_RATE_LIMIT).contains(&r) => Err(invalid(
            "rate_limit",
            format!("must be null or 0.01-{MAX_RATE_LIMIT} requests per second"),
        )),
        _ => Ok(()),
    }
}

/// Checks a retry policy.
pub fn validate_policy(policy: &Option<RetryPolicySpec>) -> Result<(), InvalidField> {
    match policy {
        Some(p) => p.validate().map_err(|r| invalid("retry_policy", r)),
        None => Ok(()),
    }
}

impl NewWebhook {
    /// Checks every field.
    pub fn validate(&self, allow_private: bool) -> Result<(), InvalidField> {
        validate_name(&self.name)?;
        validate_url(&self.url, allow_private)?;
        validate_patterns(&self.event_types)?;
        validate_policy(&self.retry_policy)?;
        validate_max_in_flight(self.max_in_flight)?;
        validate_rate_limit(self.rate_limit)?;
        crate::filter::validate_field(self.filter.as_ref())?;
        validate_headers(self.headers.as_ref())?;
        if let Some(s) = &self.secret {
            validate_given_key(s, self.signature_scheme.unwrap_or_default())?;
        }
        Ok(())
    }
}

/// Checks a key someone supplies against the scheme it is for.
pub fn validate_given_key(text: &str, scheme: SignatureScheme) -> Result<Key, InvalidField> {
    let key = Key::parse_given(text).map_err(|e| invalid("secret", e))?;
    if !scheme.uses(key.kind()) {
        return Err(invalid(
            "secret",
            format!(
                "a `{}` key is not used by signature_scheme `{}`",
                key.kind().prefix(),
                scheme.as_str()
            ),
        ));
    }
    Ok(key)
}

impl WebhookPatch {
    /// Checks every field that is given.
    pub fn validate(&self, allow_private: bool) -> Result<(), InvalidField> {
        if let Some(n) = &self.name {
            validate_name(n)?;
        }
        if let Some(u) = &self.url {
            validate_url(u, allow_private)?;
        }
        if let Some(p) = &self.event_types {
            validate_patterns(p)?;
        }
        if let Some(p) = &self.retry_policy {
            validate_policy(p)?;
        }
        validate_max_in_flight(self.max_in_flight)?;
        if let Some(r) = self.rate_limit {
            validate_rate_limit(r)?;
        }
        if let Some(f) = &self.filter {
            crate::filter::validate_field(f.as_ref())?;
        }
        if let Some(h) = &self.headers {
            validate_headers(h.as_ref())?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "webhook_validate_tests.rs"]
mod tests;
