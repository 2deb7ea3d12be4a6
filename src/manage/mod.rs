//! The management commands that talk to PostgreSQL (and RabbitMQ for a retry or a publish)
//! directly: `tokens create|list|revoke`,
//! `webhooks create|list|show|update|delete|rotate-secret|test|stats`,
//! `deliveries list|show|retry`, `settings show|set` and `publish`. Tables for people by
//! default, `--json` for scripts. Changes are written to the activity log with the actor `cli`.

mod deliveries;
mod output;
mod publish;
mod settings;
mod tokens;
mod webhook_create;
mod webhook_tools;
mod webhooks;

use clap::Args;
use hookrelay_shared::activity;
use uuid::Uuid;

pub use deliveries::{DeliveriesCommand, deliveries};
pub use publish::publish;
pub use settings::{SettingsCommand, settings_command};
pub use tokens::{TokensCommand, tokens_command};
pub use webhook_create::{WebhooksCommand, webhooks_command};

/// The activity log's actor for changes made on the command line.
fn actor() -> activity::Actor {
    activity::Actor {
        name: "cli".into(),
        token_id: None,
    }
}

#[derive(Args)]
pub struct Output {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of a command that prints one item: its id, and `--json`. A command whose id
/// wants a help text gives it with `#[command(mut_arg("id", …))]`.
#[derive(Args)]
pub struct OneItem {
    pub id: Uuid,
    #[command(flatten)]
    pub out: Output,
}
