//! `hookrelay tokens create|list|revoke`: API tokens, straight in PostgreSQL (a new token is
//! printed once, as the last line).

use anyhow::Context as _;
use clap::Subcommand;
use hookrelay_shared::{
    Config, db,
    tokens::{self, Role},
};

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Create a token; prints it as the last line (shown once).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["viewer", "admin", "owner"])]
        role: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke { id: uuid::Uuid },
}

pub async fn tokens_command(command: TokensCommand, config: &Config) -> anyhow::Result<()> {
    let pool = db::migrate(config).await.context("PostgreSQL")?;
    match command {
        TokensCommand::Create { name, role } => {
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            if name.trim().is_empty() {
                anyhow::bail!("--name must not be empty");
            }
            let (token, info) = tokens::create(&pool, name.trim(), role).await?;
            println!(
                "created {} token `{}` ({}); it is shown only once:",
                info.role.as_str(),
                info.name,
                info.id
            );
            println!("{token}");
        }
        TokensCommand::List => {
            for t in tokens::list(&pool).await? {
                println!("{}", serde_json::to_string(&t)?);
            }
        }
        TokensCommand::Revoke { id } => {
            if !tokens::revoke(&pool, id).await? {
                anyhow::bail!("no live token with id {id}");
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}
