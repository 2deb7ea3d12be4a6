//! Settings changed at run time (`PUT /api/v1/settings`): the data retention and the default
//! retry policy. One PostgreSQL row holds what was set; while a value is not stored, the
//! env/TOML value (`HOOKRELAY_RETENTION`, `HOOKRELAY_RETRY_*`) stands. Components read
//! [`SettingsCache`] (`settings_cache.rs`): a synchronous, cheap read of a snapshot that a background task refreshes
//! every `HOOKRELAY_SETTINGS_REFRESH` (10 s by default, at most 30 s), so every replica takes a
//! change up without a restart.

use std::time::Duration;

use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;

use crate::{
    Config,
    duration::HumanDuration,
    retry::{RetryPolicy, RetryPolicySpec},
};

/// The shortest retention (partitions are daily).
pub const MIN_RETENTION: Duration = Duration::from_secs(86_400);
/// The longest retention.
pub const MAX_RETENTION: Duration = Duration::from_secs(365 * 86_400);

/// The values in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub retention: Duration,
    /// The retry policy of webhooks without their own.
    pub retry: RetryPolicy,
}

impl Settings {
    /// The env/TOML values.
    pub fn from_config(config: &Config) -> Self {
        Self {
            retention: config.retention.0,
            retry: config.retry_policy(),
        }
    }

    /// These values with what is stored laid over them.
    pub fn with(mut self, stored: &Stored) -> Self {
        if let Some(r) = stored.retention {
            self.retention = r;
        }
        if let Some(spec) = &stored.retry {
            self.retry = spec.resolve(&self.retry);
        }
        self
    }
}

/// A policy as the API shows it: `{"max_retries", "window"}` or `{"schedule"}`.
pub fn spec_of(policy: &RetryPolicy) -> RetryPolicySpec {
    match policy {
        RetryPolicy::Exponential { max_retries, window } => RetryPolicySpec {
            max_retries: Some(*max_retries),
            window: Some(HumanDuration(*window)),
            schedule: None,
        },
        RetryPolicy::Schedule(s) => RetryPolicySpec {
            max_retries: None,
            window: None,
            schedule: Some(s.iter().copied().map(HumanDuration).collect()),
        },
    }
}

/// The stored row: `None` fields were never set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stored {
    pub retention: Option<Duration>,
    pub retry: Option<RetryPolicySpec>,
    pub updated_at: Option<OffsetDateTime>,
    /// The name of the token that made the last change.
    pub updated_by: Option<String>,
}

/// Checks a retention; the error starts with `retention:`.
pub fn validate_retention(d: Duration) -> Result<(), String> {
    if d < MIN_RETENTION || d > MAX_RETENTION {
        return Err(format!(
            "retention: `{}` is not between 1d and 365d",
            crate::duration::format_duration(d)
        ));
    }
    if !d.as_millis().is_multiple_of(1000) {
        return Err("retention: give whole seconds (e.g. `30d`)".into());
    }
    Ok(())
}

/// Checks a default retry policy the way a webhook's own is checked
/// ([`RetryPolicySpec::validate`] and [`RetryPolicySpec::validate_bounds`] against the
/// retention), and that it is complete (a default has nothing to fill gaps from). The error
/// names the field (`retry.window: ...`).
pub fn validate_retry(spec: &RetryPolicySpec, retention: Duration) -> Result<(), String> {
    spec.validate().map_err(|e| format!("retry: {e}"))?;
    if spec.schedule.is_none() {
        if spec.max_retries.is_none() {
            return Err("retry.max_retries: required with `window` (or give `schedule`)".into());
        }
        if spec.window.is_none() {
            return Err("retry.window: required with `max_retries` (or give `schedule`)".into());
        }
    }
    spec.validate_bounds(retention).map_err(|e| format!("retry.{e}"))
}

type Row = (
    Option<i64>,
    Option<serde_json::Value>,
    OffsetDateTime,
    Option<String>,
);

/// The stored row, if any. A stored value that no longer parses is ignored (logged).
pub async fn load<'e>(db: impl PgExecutor<'e>) -> sqlx::Result<Option<Stored>> {
    let row: Option<Row> =
        sqlx::query_as("SELECT retention_secs, retry, updated_at, updated_by FROM settings WHERE id")
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(secs, retry, updated_at, updated_by)| Stored {
        retention: secs.map(|s| Duration::from_secs(s.max(0) as u64)),
        retry: retry.and_then(|v| match serde_json::from_value::<RetryPolicySpec>(v) {
            Ok(spec) => Some(spec),
            Err(e) => {
                tracing::error!(error = %e, "the stored default retry policy does not parse; the configured one is used");
                None
            }
        }),
        updated_at: Some(updated_at),
        updated_by,
    }))
}

/// Stores the row (values validated by the caller); `None` = not set, the config's value
/// stands.
pub async fn store<'e>(
    db: impl PgExecutor<'e>,
    retention: Option<Duration>,
    retry: Option<&RetryPolicySpec>,
    by: &str,
) -> sqlx::Result<()> {
    let retry = retry
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO settings (id, retention_secs, retry, updated_at, updated_by) VALUES (true, $1, $2, now(), $3)
         ON CONFLICT (id) DO UPDATE SET retention_secs = EXCLUDED.retention_secs, retry = EXCLUDED.retry,
             updated_at = now(), updated_by = EXCLUDED.updated_by",
    )
    .bind(retention.map(|r| r.as_secs() as i64))
    .bind(retry)
    .bind(by)
    .execute(db)
    .await?;
    Ok(())
}

/// The values in force for `config` and the database `db`, read now.
pub async fn current(config: &Config, db: &PgPool) -> sqlx::Result<(Settings, Option<Stored>)> {
    let stored = load(db).await?;
    let base = Settings::from_config(config);
    let s = match &stored {
        Some(st) => base.with(st),
        None => base,
    };
    Ok((s, stored))
}

/// What a change says about one value: leave it, go back to the config's, or set it.
#[derive(Clone, Debug, PartialEq)]
pub enum Change<T> {
    Keep,
    Reset,
    Set(T),
}

impl<T: Clone> Change<T> {
    fn apply(&self, old: Option<T>) -> Option<T> {
        match self {
            Change::Keep => old,
            Change::Reset => None,
            Change::Set(v) => Some(v.clone()),
        }
    }
}

/// Why a change was refused: the message names the field.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A change made: the row before and after.
#[derive(Clone, Debug)]
pub struct Changed {
    pub before: Option<Stored>,
    pub after: Option<Stored>,
}

/// Applies a change in one transaction: validates what would be in force afterwards (the
/// retention's bounds, the default policy against that retention), stores it, and writes a
/// `settings.changed` activity entry by `actor`. Changes are serialized (an advisory lock), so
/// two at once can't interleave between read and write.
pub async fn change(
    db: &PgPool,
    config: &Config,
    retention: Change<Duration>,
    retry: Change<RetryPolicySpec>,
    actor: &crate::activity::Actor,
) -> Result<Changed, ChangeError> {
    if let Change::Set(d) = retention {
        validate_retention(d).map_err(ChangeError::Invalid)?;
    }
    let mut tx = db.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7236828393961276275)")
        .execute(&mut *tx)
        .await?;
    let before = load(&mut *tx).await?;
    let prev = before.clone().unwrap_or_default();
    let new_retention = retention.apply(prev.retention);
    let new_retry = retry.apply(prev.retry.clone());
    let in_force = new_retention.unwrap_or(config.retention.0);
    match &new_retry {
        Some(spec) => validate_retry(spec, in_force).map_err(ChangeError::Invalid)?,
        None => validate_retry(&spec_of(&config.retry_policy()), in_force).map_err(|e| {
            ChangeError::Invalid(format!(
                "retention: the configured default retry policy does not fit in it ({e})"
            ))
        })?,
    }
    store(&mut *tx, new_retention, new_retry.as_ref(), &actor.name).await?;
    let after = load(&mut *tx).await?;
    let shown = |st: &Option<Stored>| {
        let s = match st {
            Some(st) => Settings::from_config(config).with(st),
            None => Settings::from_config(config),
        };
        serde_json::json!({
            "retention": crate::duration::format_duration(s.retention),
            "retry": serde_json::to_value(spec_of(&s.retry)).unwrap_or_default(),
        })
    };
    crate::activity::record(
        &mut *tx,
        actor,
        crate::activity::kind::SETTINGS_CHANGED,
        None,
        serde_json::json!({"before": shown(&before), "after": shown(&after)}),
    )
    .await?;
    tx.commit().await?;
    Ok(Changed { before, after })
}

#[path = "settings_cache.rs"]
mod cache;

pub use cache::SettingsCache;

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> RetryPolicySpec {
        serde_json::from_str(json).expect("parses")
    }

    #[test]
    fn retention_is_bounded_to_a_day_and_a_year() {
        assert!(validate_retention(Duration::from_secs(86_400)).is_ok());
        assert!(validate_retention(MAX_RETENTION).is_ok());
        for bad in [Duration::from_secs(3600), MAX_RETENTION + Duration::from_secs(1)] {
            let e = validate_retention(bad).expect_err("refused");
            assert!(e.starts_with("retention:"), "{e}");
        }
    }

    #[test]
    fn a_default_policy_is_checked_like_a_webhooks_and_must_be_complete() {
        let month = Duration::from_secs(30 * 86_400);
        assert!(validate_retry(&spec(r#"{"max_retries":3,"window":"30m"}"#), month).is_ok());
        assert!(validate_retry(&spec(r#"{"schedule":["1s","2s"]}"#), month).is_ok());
        for (json, field) in [
            (r#"{"max_retries":3}"#, "retry.window"),
            (r#"{"window":"1h"}"#, "retry.max_retries"),
            (r#"{"max_retries":101,"window":"1h"}"#, "retry: max_retries"),
            (r#"{"max_retries":3,"window":"31d"}"#, "retry.window"),
            (r#"{"schedule":["1s","31d"]}"#, "retry.schedule[1]"),
            (r#"{"schedule":["1s"],"max_retries":1}"#, "retry:"),
        ] {
            let e = validate_retry(&spec(json), month).expect_err(json);
            assert!(e.starts_with(field), "{json}: {e}");
        }
    }

    #[test]
    fn stored_values_lay_over_the_configured_ones() {
        let base = Settings::from_config(&Config::default());
        let s = base.clone().with(&Stored {
            retry: Some(spec(r#"{"schedule":["1s"]}"#)),
            ..Default::default()
        });
        assert_eq!(s.retention, base.retention);
        assert_eq!(s.retry, RetryPolicy::Schedule(vec![Duration::from_secs(1)]));
        assert_eq!(spec_of(&base.retry), spec(r#"{"max_retries":3,"window":"30m"}"#));
    }
}
