//! Layered configuration: defaults, then an optional TOML file (`HOOKRELAY_CONFIG`), then
//! `HOOKRELAY_*` environment variables. Validated once at start-up; errors name the key.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

use crate::{
    duration::{DurationList, HumanDuration, OrOff},
    retry::RetryPolicy,
};

/// Bodies of responses are stored up to this many bytes and marked truncated beyond.
pub const MAX_RESPONSE_BODY_BYTES: usize = 64 * 1024;
/// Response headers are stored up to this many (names joined) and marked truncated beyond.
pub const MAX_RESPONSE_HEADERS: usize = 64;
/// ... and up to this many bytes of names and values in all.
pub const MAX_RESPONSE_HEADER_BYTES: usize = 16 * 1024;

/// A configuration problem, naming the key (as its environment variable) that is wrong.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// The whole configuration of every component.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub amqp_url: String,
    pub redis_url: String,
    pub database_url: String,
    pub api_addr: SocketAddr,
    /// Prefix of every queue, exchange and Redis key.
    pub namespace: String,
    pub max_event_bytes: usize,
    pub allow_private_targets: bool,
    /// Whether `allow_private_targets` was given (in the file or the environment) rather than
    /// defaulted: `hookrelay up` relaxes only the default, never an explicit `false`.
    #[serde(skip)]
    pub allow_private_targets_given: bool,
    pub retry_max: u32,
    pub retry_window: HumanDuration,
    #[serde(default, skip_serializing)]
    pub retry_schedule: Option<DurationList>,
    pub retention: HumanDuration,
    pub shutdown_grace: HumanDuration,
    #[serde(default)]
    pub metrics_addr: Option<SocketAddr>,
    pub log_format: LogFormat,
    /// Hard limit on HTTP requests in flight per dispatcher process.
    pub dispatch_concurrency: usize,
    /// AMQP prefetch per dispatcher consumer.
    pub prefetch: u16,
    /// Total timeout of one webhook request.
    pub request_timeout: HumanDuration,
    /// How long an attempt in flight may stay unrecorded before the scheduler re-fires it.
    pub attempt_lease: HumanDuration,
    /// A webhook whose attempts all failed for this long is disabled (`off`: never).
    pub disable_after: OrOff,
    /// Consecutive failures (timeouts, connection errors, 5xx) that open a webhook's circuit.
    pub circuit_failures: u32,
    /// The first cool-down of an open circuit; it doubles at each failed probe.
    pub circuit_cooldown: HumanDuration,
    /// The longest cool-down.
    pub circuit_max_cooldown: HumanDuration,
    /// How often each component re-reads the settings stored by `PUT /api/v1/settings`
    /// (100ms-30s).
    pub settings_refresh: HumanDuration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            redis_url: "redis://127.0.0.1:6379/0".into(),
            database_url: "postgres://postgres@127.0.0.1:5432/hookrelay".into(),
            api_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            namespace: "hookrelay".into(),
            max_event_bytes: 256 * 1024,
            allow_private_targets: false,
            allow_private_targets_given: false,
            retry_max: 3,
            retry_window: HumanDuration::secs(30 * 60),
            retry_schedule: None,
            retention: HumanDuration::secs(30 * 86_400),
            shutdown_grace: HumanDuration::secs(30),
            metrics_addr: None,
            log_format: LogFormat::Text,
            dispatch_concurrency: 512,
            prefetch: 1000,
            request_timeout: HumanDuration::secs(10),
            attempt_lease: HumanDuration::secs(120),
            disable_after: OrOff(Some(Duration::from_secs(5 * 86_400))),
            circuit_failures: 5,
            circuit_cooldown: HumanDuration::secs(30),
            circuit_max_cooldown: HumanDuration::secs(600),
            settings_refresh: HumanDuration::secs(10),
        }
    }
}

impl Config {
    /// Loads defaults, then `HOOKRELAY_CONFIG` (a TOML file) if set, then `HOOKRELAY_*` env.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var_os("HOOKRELAY_CONFIG").map(PathBuf::from);
        Self::load_from(file, Self::env())
    }

    /// The `HOOKRELAY_*` variables that are configuration: all but those read by others —
    /// `HOOKRELAY_CONFIG` (the file), `HOOKRELAY_LISTEN_SECRET` (`hookrelay listen --secret`),
    /// `HOOKRELAY_TEST_DATABASE_URL` (the tests' server) and `HOOKRELAY_BENCH_DATABASE_URL` (the
    /// log benchmark). Any other unknown one is refused.
    pub fn env() -> Env {
        Env::prefixed("HOOKRELAY_").ignore(&[
            "config",
            "listen_secret",
            "test_database_url",
            "bench_database_url",
        ])
    }

    /// Loads from an explicit file and env provider (tests use a scoped env).
    pub fn load_from(file: Option<PathBuf>, env: Env) -> Result<Self, ConfigError> {
        // What the file and the environment say, without the defaults (to tell what was given).
        let mut given = Figment::new();
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "HOOKRELAY_CONFIG: the file {} does not exist",
                    path.display()
                )));
            }
            given = given.merge(Toml::file(path));
        }
        // The contract names the request timeout HOOKRELAY_DELIVERY_TIMEOUT; HOOKRELAY_REQUEST_TIMEOUT
        // (the field's own name) is accepted too.
        let env = env.map(|k| {
            if k == "delivery_timeout" {
                "request_timeout".into()
            } else {
                k.into()
            }
        });
        let given = given.merge(env);
        let private_given = given.find_value("allow_private_targets").is_ok();
        let mut config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(given)
            .extract()
            .map_err(describe)?;
        config.allow_private_targets_given = private_given;
        config.validate()?;
        Ok(config)
    }

    /// Whether `hookrelay up` allows private targets: when they are allowed explicitly, or
    /// when nothing says either way and the API listens on loopback only (a local trial run,
    /// whose receivers are on 127.0.0.1). An explicit `false` anywhere wins, and an API on
    /// `0.0.0.0` (the Docker image) keeps the default `false`.
    pub fn up_allows_private_targets(&self) -> bool {
        self.allow_private_targets || (!self.allow_private_targets_given && self.api_addr.ip().is_loopback())
    }

    fn validate(&self) -> Result<(), ConfigError> {
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

    /// The default retry policy: the explicit schedule if one is set, else exponential.
    pub fn retry_policy(&self) -> RetryPolicy {
        match &self.retry_schedule {
            Some(list) if !list.0.is_empty() => RetryPolicy::Schedule(list.0.clone()),
            _ => RetryPolicy::Exponential {
                max_retries: self.retry_max,
                window: self.retry_window.0,
            },
        }
    }

    /// The database name in `database_url` (created on start if missing).
    pub fn database_name(&self) -> Option<String> {
        url::Url::parse(&self.database_url)
            .ok()
            .map(|u| u.path().trim_start_matches('/').to_owned())
            .filter(|n| !n.is_empty())
    }
}

fn describe(err: figment::Error) -> ConfigError {
    let msgs: Vec<String> = err
        .into_iter()
        .map(|e| {
            let key = e.path.join("_").to_uppercase();
            if key.is_empty() {
                e.kind.to_string()
            } else {
                format!("HOOKRELAY_{key}: {}", e.kind)
            }
        })
        .collect();
    ConfigError(msgs.join("; "))
}

/// Hides the password of a URL so it can be printed.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<invalid url>".into(),
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("amqp_url", &redact_url(&self.amqp_url))
            .field("redis_url", &redact_url(&self.redis_url))
            .field("database_url", &redact_url(&self.database_url))
            .field("api_addr", &self.api_addr)
            .field("namespace", &self.namespace)
            .field("allow_private_targets", &self.allow_private_targets)
            .field("retry_policy", &self.retry_policy())
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::result_large_err)] // figment::Jail fixes the closure's error type
    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let owned: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let env = Config::env();
        // figment::Env reads the real environment; jail it.
        let mut result = None;
        figment::Jail::expect_with(|jail| {
            for (k, v) in &owned {
                jail.set_env(k, v);
            }
            result = Some(Config::load_from(None, env.clone()));
            Ok(())
        });
        result.unwrap_or_else(|| Err(ConfigError("jail did not run".into())))
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = load(&[]).expect("defaults load");
        assert_eq!(c.namespace, "hookrelay");
        assert_eq!(c.api_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.max_event_bytes, 262_144);
        assert_eq!(c.retention.0, Duration::from_secs(30 * 86_400));
        assert_eq!(
            c.retry_policy(),
            RetryPolicy::Exponential {
                max_retries: 3,
                window: Duration::from_secs(1800)
            }
        );
    }

    #[test]
    fn the_variables_other_readers_own_are_not_refused_any_other_unknown_one_is() {
        let c = load(&[
            ("HOOKRELAY_LISTEN_SECRET", "whsec_x"),
            ("HOOKRELAY_TEST_DATABASE_URL", "postgres://127.0.0.1:5432"),
        ]);
        assert!(c.is_ok(), "{c:?}");
        let e = load(&[("HOOKRELAY_LISTEN_SECRETS", "x")]).expect_err("a typo is refused");
        assert!(e.to_string().contains("HOOKRELAY_LISTEN_SECRETS"), "{e}");
    }

    #[test]
    fn env_overrides_and_schedule_parses() {
        let c = load(&[
            ("HOOKRELAY_NAMESPACE", "t_1"),
            ("HOOKRELAY_RETRY_SCHEDULE", "1s,2s,4s"),
            ("HOOKRELAY_ALLOW_PRIVATE_TARGETS", "true"),
        ])
        .expect("loads");
        assert_eq!(c.namespace, "t_1");
        assert!(c.allow_private_targets);
        assert_eq!(
            c.retry_policy(),
            RetryPolicy::Schedule(vec![
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(4)
            ])
        );
    }

    #[test]
    fn the_delivery_timeout_has_the_contract_name() {
        let c = load(&[("HOOKRELAY_DELIVERY_TIMEOUT", "3s")]).expect("loads");
        assert_eq!(c.request_timeout.0, Duration::from_secs(3));
        let err = load(&[("HOOKRELAY_DELIVERY_TIMEOUT", "0s")]).expect_err("rejected");
        assert!(err.to_string().contains("HOOKRELAY_DELIVERY_TIMEOUT"), "{err}");
    }

    #[test]
    fn disable_after_takes_off() {
        let c = load(&[]).expect("defaults load");
        assert_eq!(c.disable_after.0, Some(Duration::from_secs(5 * 86_400)));
        let c = load(&[("HOOKRELAY_DISABLE_AFTER", "off")]).expect("loads");
        assert_eq!(c.disable_after.0, None);
        let c = load(&[("HOOKRELAY_DISABLE_AFTER", "2s")]).expect("loads");
        assert_eq!(c.disable_after.0, Some(Duration::from_secs(2)));
        let err = load(&[("HOOKRELAY_DISABLE_AFTER", "soon")]).expect_err("rejected");
        assert!(err.to_string().contains("HOOKRELAY_DISABLE_AFTER"), "{err}");
    }

    #[test]
    fn up_allows_private_targets_only_by_default_on_loopback_and_never_against_an_explicit_false() {
        let c = load(&[]).expect("defaults");
        assert!(!c.allow_private_targets && !c.allow_private_targets_given);
        assert!(c.up_allows_private_targets(), "default, API on 127.0.0.1");
        let c = load(&[("HOOKRELAY_API_ADDR", "[::1]:8080")]).expect("loads");
        assert!(c.up_allows_private_targets(), "default, API on ::1");
        let c = load(&[("HOOKRELAY_ALLOW_PRIVATE_TARGETS", "false")]).expect("loads");
        assert!(c.allow_private_targets_given);
        assert!(
            !c.up_allows_private_targets(),
            "explicit false in the environment"
        );
        let c = load(&[("HOOKRELAY_API_ADDR", "0.0.0.0:8080")]).expect("loads");
        assert!(!c.up_allows_private_targets(), "default, API on every interface");
        let c = load(&[
            ("HOOKRELAY_API_ADDR", "0.0.0.0:8080"),
            ("HOOKRELAY_ALLOW_PRIVATE_TARGETS", "true"),
        ])
        .expect("loads");
        assert!(c.up_allows_private_targets(), "explicit true wins everywhere");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail fixes the closure's error type
    fn an_explicit_false_in_the_config_file_is_kept_by_up() {
        let mut result = None;
        figment::Jail::expect_with(|jail| {
            jail.create_file("hookrelay.toml", "allow_private_targets = false\n")?;
            let env = Env::prefixed("HOOKRELAY_").ignore(&["config"]);
            result = Some(Config::load_from(
                Some(jail.directory().join("hookrelay.toml")),
                env,
            ));
            Ok(())
        });
        let c = result.expect("jail ran").expect("loads");
        assert!(c.allow_private_targets_given, "given in the file");
        assert!(!c.up_allows_private_targets());
        let mut result = None;
        figment::Jail::expect_with(|jail| {
            jail.create_file("hookrelay.toml", "namespace = \"other\"\n")?;
            let env = Env::prefixed("HOOKRELAY_").ignore(&["config"]);
            result = Some(Config::load_from(
                Some(jail.directory().join("hookrelay.toml")),
                env,
            ));
            Ok(())
        });
        let c = result.expect("jail ran").expect("loads");
        assert_eq!(c.namespace, "other");
        assert!(
            !c.allow_private_targets_given,
            "a file without the key leaves it defaulted"
        );
        assert!(c.up_allows_private_targets());
    }

    #[test]
    fn a_bad_value_names_the_key() {
        let err = load(&[("HOOKRELAY_RETRY_WINDOW", "soon")]).expect_err("rejected");
        assert!(err.to_string().contains("HOOKRELAY_RETRY_WINDOW"), "{err}");
        let err = load(&[("HOOKRELAY_API_ADDR", "nowhere")]).expect_err("rejected");
        assert!(err.to_string().contains("HOOKRELAY_API_ADDR"), "{err}");
        let err = load(&[("HOOKRELAY_NAMESPACE", "a b")]).expect_err("rejected");
        assert!(err.to_string().contains("HOOKRELAY_NAMESPACE"), "{err}");
    }

    #[test]
    fn retry_settings_longer_than_the_retention_are_refused_naming_the_key() {
        for (vars, key) in [
            (
                vec![("HOOKRELAY_RETRY_WINDOW", "3000000d")],
                "HOOKRELAY_RETRY_WINDOW",
            ),
            (
                vec![("HOOKRELAY_RETRY_SCHEDULE", "1s,31d")],
                "HOOKRELAY_RETRY_SCHEDULE",
            ),
            (vec![("HOOKRELAY_RETRY_MAX", "100000")], "HOOKRELAY_RETRY_MAX"),
        ] {
            let err = load(&vars).expect_err(key);
            assert!(err.to_string().contains(key), "{err}");
        }
        let c = load(&[("HOOKRELAY_RETENTION", "60d"), ("HOOKRELAY_RETRY_WINDOW", "45d")]).expect("loads");
        assert_eq!(c.retry_window.0, Duration::from_secs(45 * 86_400));
    }
}
