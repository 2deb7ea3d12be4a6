//! Layered configuration: defaults, then an optional TOML file (`HOOKRELAY_CONFIG`), then
//! `HOOKRELAY_*` environment variables. Validated once at start-up (`config_validate.rs`);
//! errors name the key.

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

#[path = "config_validate.rs"]
mod validate;

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
#[path = "config_tests.rs"]
mod tests;
