//! The checks a loaded configuration passes before any component starts: each refusal names
//! the key as its environment variable, and says what it accepts.

use std::time::Duration;

use super::{Config, ConfigError};

impl Config {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: String| Err(ConfigError(format!("HOOKRELAY_{key}: {why}")));
        let ns_ok = !self.namespace.is_empty()
            && self.namespace.len() <= 64
            && self
                .namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !ns_ok {
            return bad(
                "NAMESPACE",
                format!(
                    "`{}` must be 1-64 characters of a-z, 0-9, _, - or .",
                    self.namespace
                ),
            );
        }
        for (key, url, schemes) in [
            ("AMQP_URL", &self.amqp_url, &["amqp", "amqps"][..]),
            ("REDIS_URL", &self.redis_url, &["redis", "rediss"][..]),
            (
                "DATABASE_URL",
                &self.database_url,
                &["postgres", "postgresql"][..],
            ),
        ] {
            match url::Url::parse(url) {
                Ok(u) if schemes.contains(&u.scheme()) => {}
                Ok(u) => return bad(key, format!("scheme `{}` is not one of {schemes:?}", u.scheme())),
                Err(e) => return bad(key, format!("not a URL: {e}")),
            }
        }
        if self.max_event_bytes == 0 {
            return bad("MAX_EVENT_BYTES", "must be greater than 0".into());
        }
        if self.dispatch_concurrency == 0 {
            return bad("DISPATCH_CONCURRENCY", "must be greater than 0".into());
        }
        if self.prefetch == 0 {
            return bad("PREFETCH", "must be greater than 0".into());
        }
        if self.request_timeout.0.is_zero() {
            return bad("DELIVERY_TIMEOUT", "must be greater than 0".into());
        }
        if self.retry_window.0.is_zero() && self.retry_max > 0 {
            return bad(
                "RETRY_WINDOW",
                "must be greater than 0 when retries are on".into(),
            );
        }
        if self.retention.0 < Duration::from_secs(86_400) {
            return bad("RETENTION", "must be at least 1d (partitions are daily)".into());
        }
        if self.circuit_failures == 0 {
            return bad("CIRCUIT_FAILURES", "must be greater than 0".into());
        }
        if self.circuit_cooldown.0 < Duration::from_millis(100)
            || self.circuit_max_cooldown.0 < self.circuit_cooldown.0
            || self.circuit_max_cooldown.0 > Duration::from_secs(86_400)
        {
            return bad(
                "CIRCUIT_COOLDOWN",
                "must be at least 100ms, and HOOKRELAY_CIRCUIT_MAX_COOLDOWN between it and 1d".into(),
            );
        }
        if self
            .disable_after
            .0
            .is_some_and(|d| d.is_zero() || d > Duration::from_secs(365 * 86_400))
        {
            return bad("DISABLE_AFTER", "must be `off` or between 1ms and 365d".into());
        }
        if self.retry_max > crate::retry::MAX_RETRIES_LIMIT {
            return bad(
                "RETRY_MAX",
                format!("at most {}", crate::retry::MAX_RETRIES_LIMIT),
            );
        }
        if self.retry_window.0 > self.retention.0 {
            return bad(
                "RETRY_WINDOW",
                "must not be longer than HOOKRELAY_RETENTION".into(),
            );
        }
        if let Some(list) = &self.retry_schedule {
            if list.0.len() > crate::retry::MAX_RETRIES_LIMIT as usize {
                return bad(
                    "RETRY_SCHEDULE",
                    format!("at most {} entries", crate::retry::MAX_RETRIES_LIMIT),
                );
            }
            let sum = list.0.iter().fold(Duration::ZERO, |a, d| a.saturating_add(*d));
            if sum > self.retention.0 {
                return bad(
                    "RETRY_SCHEDULE",
                    "its delays must not add up to more than HOOKRELAY_RETENTION".into(),
                );
            }
        }
        if self.settings_refresh.0 < Duration::from_millis(100)
            || self.settings_refresh.0 > Duration::from_secs(30)
        {
            return bad("SETTINGS_REFRESH", "must be between 100ms and 30s".into());
        }
        if self.attempt_lease.0 <= self.request_timeout.0 {
            return bad(
                "ATTEMPT_LEASE",
                "must be longer than HOOKRELAY_DELIVERY_TIMEOUT".into(),
            );
        }
        Ok(())
    }
}
