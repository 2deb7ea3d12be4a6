//! `hookrelay webhooks create` (the other `webhooks` subcommands are in `webhooks.rs`): the
//! flags turned into a `NewWebhook`, validated with each refusal naming its flag, and the new
//! webhook printed as JSON with its secret.

use anyhow::Context as _;
use clap::Subcommand;
use hookrelay_shared::{
    Config, db,
    signing_keys::SignatureScheme,
    webhooks::{self, NewWebhook},
};

use super::webhooks::{WebhooksManage, parse_ordering, webhooks};

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// Create a webhook; prints it as JSON with its secret.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        url: String,
        /// Comma-separated patterns: `license.assigned`, `license.*` or `*`.
        #[arg(long)]
        events: String,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
        /// A payload filter as JSON, e.g. '{"data.plan": ["pro", "team"], "data.seats": {"$gte": 5}}'
        /// (see docs/webhook-options.md).
        #[arg(long)]
        filter: Option<String>,
        /// A static request header, `Name: value`; repeat for more. The value is a secret: the
        /// printed webhook shows it as `***`.
        #[arg(long = "header", value_name = "NAME: VALUE")]
        headers: Vec<String>,
        /// `v1` (HMAC, the default), `v1a` (ed25519: prints the `public_key`) or `v1,v1a`.
        #[arg(long, value_name = "SCHEME")]
        signature_scheme: Option<String>,
        /// `none` (the default) or `fifo`: one delivery at a time, in acceptance order.
        #[arg(long, value_name = "ORDERING")]
        ordering: Option<String>,
    },
    #[command(flatten)]
    Manage(WebhooksManage),
}

pub async fn webhooks_command(command: WebhooksCommand, config: &Config) -> anyhow::Result<()> {
    let pool = db::migrate(config).await.context("PostgreSQL")?;
    match command {
        WebhooksCommand::Manage(command) => webhooks(command, config, &pool).await?,
        WebhooksCommand::Create {
            name,
            url,
            events,
            disabled,
            filter,
            headers,
            signature_scheme,
            ordering,
        } => {
            let headers = header_args(&headers)?;
            let ordering = ordering.as_deref().map(parse_ordering).transpose()?;
            let signature_scheme = signature_scheme
                .map(|s| {
                    SignatureScheme::parse(&s)
                        .ok_or_else(|| anyhow::anyhow!("--signature-scheme: one of v1, v1a, v1,v1a"))
                })
                .transpose()?;
            let filter = filter
                .map(|f| serde_json::from_str::<serde_json::Value>(&f))
                .transpose()
                .context("--filter must be JSON")?;
            let new = NewWebhook {
                name,
                url,
                event_types: events
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
                enabled: !disabled,
                retry_policy: None,
                secret: None,
                max_in_flight: None,
                rate_limit: None,
                filter,
                headers,
                signature_scheme,
                ordering,
            };
            new.validate(config.allow_private_targets).map_err(|e| {
                anyhow::anyhow!(
                    "--{}: {}",
                    if e.field == "event_types" {
                        "events"
                    } else {
                        e.field.as_str()
                    },
                    e.reason
                )
            })?;
            let (webhook, keys) = webhooks::create(&pool, new).await?;
            let mut json = serde_json::to_value(&webhook)?;
            if let Some(secret) = keys.secret {
                json["secret"] = serde_json::Value::String(secret.expose());
            }
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
    }
    Ok(())
}

/// `--header 'Name: value'` flags as the `headers` object (`None` when there are none).
fn header_args(args: &[String]) -> anyhow::Result<Option<serde_json::Value>> {
    if args.is_empty() {
        return Ok(None);
    }
    let mut map = serde_json::Map::new();
    for a in args {
        let (name, value) = a
            .split_once(':')
            // The text is not echoed: it may hold the secret value.
            .ok_or_else(|| anyhow::anyhow!("--header: write each as `Name: value`"))?;
        map.insert(
            name.trim().to_owned(),
            serde_json::Value::String(value.trim().to_owned()),
        );
    }
    Ok(Some(serde_json::Value::Object(map)))
}
