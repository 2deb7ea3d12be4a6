//! `hookrelay settings show|set`: the stored settings through the same change function as
//! the API.

use std::time::Duration;

use clap::Subcommand;
use hookrelay_shared::{
    Config,
    duration::{HumanDuration, format_duration, parse_duration, parse_duration_list},
    event::rfc3339,
    retry::RetryPolicySpec,
    settings::{self, Change, Settings},
};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{
    Output, actor,
    output::{print_json, table},
};

#[derive(Subcommand)]
pub enum SettingsCommand {
    /// The data retention and the default retry policy in force, and where each comes from.
    Show {
        #[command(flatten)]
        out: Output,
    },
    /// Change them; every running component takes the change up within
    /// HOOKRELAY_SETTINGS_REFRESH (10 s by default).
    Set {
        /// 1d-365d, or `default` for HOOKRELAY_RETENTION.
        #[arg(long)]
        retention: Option<String>,
        /// Automatic retries (0-100), spread over --retry-window.
        #[arg(long, requires = "retry_window", conflicts_with = "retry_schedule")]
        retry_max: Option<u32>,
        #[arg(long, requires = "retry_max")]
        retry_window: Option<String>,
        /// Explicit delays, e.g. `1s,1m,10m`.
        #[arg(long, conflicts_with = "retry_default")]
        retry_schedule: Option<String>,
        /// Go back to HOOKRELAY_RETRY_* for the default retry policy.
        #[arg(long, conflicts_with = "retry_max")]
        retry_default: bool,
        #[command(flatten)]
        out: Output,
    },
}

fn settings_json(config: &Config, stored: Option<&settings::Stored>) -> Value {
    let base = Settings::from_config(config);
    let s = match stored {
        Some(st) => base.clone().with(st),
        None => base.clone(),
    };
    let source = |set: bool| if set { "stored" } else { "config" };
    json!({
        "retention": format_duration(s.retention),
        "retry": serde_json::to_value(settings::spec_of(&s.retry)).unwrap_or_default(),
        "source": {
            "retention": source(stored.is_some_and(|s| s.retention.is_some())),
            "retry": source(stored.is_some_and(|s| s.retry.is_some())),
        },
        "defaults": {
            "retention": format_duration(base.retention),
            "retry": serde_json::to_value(settings::spec_of(&base.retry)).unwrap_or_default(),
        },
        "updated_at": stored.and_then(|s| s.updated_at).map(rfc3339),
        "updated_by": stored.and_then(|s| s.updated_by.clone()),
    })
}

fn print_settings(v: &Value) {
    let retry = match &v["retry"] {
        r if r["schedule"].is_array() => format!(
            "schedule {}",
            r["schedule"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        ),
        r => format!(
            "{} retries over {}",
            r["max_retries"],
            r["window"].as_str().unwrap_or("?")
        ),
    };
    table(
        &["setting", "value", "from"],
        &[
            vec![
                "retention".into(),
                v["retention"].as_str().unwrap_or("").into(),
                v["source"]["retention"].as_str().unwrap_or("").into(),
            ],
            vec![
                "retry".into(),
                retry,
                v["source"]["retry"].as_str().unwrap_or("").into(),
            ],
        ],
    );
    if let Some(at) = v["updated_at"].as_str() {
        println!(
            "\nlast changed {at} by {}",
            v["updated_by"].as_str().unwrap_or("?")
        );
    }
}

pub async fn settings_command(
    command: SettingsCommand,
    config: &Config,
    pool: &PgPool,
) -> anyhow::Result<()> {
    match command {
        SettingsCommand::Show { out } => {
            let stored = settings::load(pool).await?;
            let v = settings_json(config, stored.as_ref());
            if out.json {
                return print_json(&v);
            }
            print_settings(&v);
        }
        SettingsCommand::Set {
            retention,
            retry_max,
            retry_window,
            retry_schedule,
            retry_default,
            out,
        } => {
            let retention = match retention.as_deref() {
                None => Change::Keep,
                Some("default") => Change::Reset,
                Some(text) => {
                    Change::Set(parse_duration(text).map_err(|e| anyhow::anyhow!("--retention: {e}"))?)
                }
            };
            let retry = if retry_default {
                Change::Reset
            } else if let Some(list) = retry_schedule {
                let delays: Vec<Duration> =
                    parse_duration_list(&list).map_err(|e| anyhow::anyhow!("--retry-schedule: {e}"))?;
                Change::Set(RetryPolicySpec {
                    max_retries: None,
                    window: None,
                    schedule: Some(delays.into_iter().map(HumanDuration).collect()),
                })
            } else if let (Some(max), Some(window)) = (retry_max, retry_window) {
                let window = parse_duration(&window).map_err(|e| anyhow::anyhow!("--retry-window: {e}"))?;
                Change::Set(RetryPolicySpec {
                    max_retries: Some(max),
                    window: Some(HumanDuration(window)),
                    schedule: None,
                })
            } else {
                Change::Keep
            };
            if retention == Change::Keep && retry == Change::Keep {
                anyhow::bail!(
                    "give --retention, --retry-max with --retry-window, --retry-schedule or --retry-default"
                );
            }
            let changed = settings::change(pool, config, retention, retry, &actor())
                .await
                .map_err(|e| match e {
                    // The message names the API's field; say the flag.
                    settings::ChangeError::Invalid(d) => anyhow::anyhow!("{}", flag_names(&d)),
                    settings::ChangeError::Db(e) => anyhow::Error::new(e),
                })?;
            let v = settings_json(config, changed.after.as_ref());
            if out.json {
                return print_json(&v);
            }
            print_settings(&v);
            println!(
                "\nrunning components use it within {}",
                format_duration(config.settings_refresh.0)
            );
        }
    }
    Ok(())
}

/// An error about `retention` or `retry.<field>` in terms of the command's flags.
fn flag_names(detail: &str) -> String {
    for (field, flag) in [
        ("retry.max_retries", "--retry-max"),
        ("retry.window", "--retry-window"),
        ("retry.schedule", "--retry-schedule"),
        ("retry: max_retries", "--retry-max"),
        ("retry: schedule", "--retry-schedule"),
        ("retention", "--retention"),
    ] {
        if let Some(rest) = detail.strip_prefix(field) {
            return format!("{flag}{rest}");
        }
    }
    detail.to_owned()
}
