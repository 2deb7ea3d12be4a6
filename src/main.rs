//! `hookrelay`: one binary for every component and the admin commands. Thin: it parses
//! arguments, loads the config and wires the component crates together.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hookrelay_shared::{
    Config, Context, amqp, db,
    metrics::Metrics,
    shutdown,
    signing_keys::SignatureScheme,
    startup, telemetry,
    tokens::{self, Role},
    webhooks::{self, NewWebhook},
};
use tokio_util::sync::CancellationToken;

mod listen;
mod manage;

#[derive(Parser)]
#[command(
    name = "hookrelay",
    version,
    about = "Webhook delivery: RabbitMQ in, signed HTTP POSTs out, every attempt in PostgreSQL."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate, then run the API, a dispatcher and a scheduler in one process.
    Up,
    /// Run a dispatcher alone.
    Dispatcher,
    /// Run a scheduler alone.
    Scheduler,
    /// Run the query API alone.
    Api,
    /// Create or upgrade the database schema and the AMQP topology.
    Migrate,
    /// Manage API tokens.
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Manage webhooks.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// Read the delivery log and retry deliveries.
    Deliveries {
        #[command(subcommand)]
        command: manage::DeliveriesCommand,
    },
    /// Show or change the data retention and the default retry policy.
    Settings {
        #[command(subcommand)]
        command: manage::SettingsCommand,
    },
    /// Publish one event to the events exchange.
    Publish {
        /// Event type, e.g. `license.assigned`.
        #[arg(long = "type")]
        event_type: String,
        /// The event's `data`, a JSON object.
        #[arg(long)]
        data: String,
        /// The event id (idempotency key); generated when absent.
        #[arg(long)]
        id: Option<String>,
    },
    /// Run retention once and print what it removed.
    Purge,
    /// Run a local receiver that prints every webhook it gets (and checks signatures).
    Listen {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        addr: std::net::SocketAddr,
        /// The webhook's secret (`whsec_…`), to verify signatures.
        #[arg(long, env = "HOOKRELAY_LISTEN_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Answer with this HTTP status (to try failures and retries).
        #[arg(long, default_value_t = 200)]
        status: u16,
    },
}

#[derive(Subcommand)]
enum TokensCommand {
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

#[derive(Subcommand)]
enum WebhooksCommand {
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
    Manage(manage::WebhooksManage),
}

/// mimalloc instead of glibc malloc: the dispatcher allocates per request and per record, and
/// glibc's malloc/free were 27 % of its CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    hookrelay_shared::install_crypto_provider();
    let cli = Cli::parse();
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hookrelay: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hookrelay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config.clone())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A service that can't be reached is said once, with its address and the fix.
            match startup::explain(&e, &config) {
                Some(unreachable) => eprintln!("hookrelay: {unreachable}"),
                None => eprintln!("hookrelay: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// The database created and migrated (every component does it on start, see [`db::prepare`]),
/// and a pool on it.
/// `warm` connections are opened before it returns ([`db::connect_warm`]): the dispatcher's,
/// so its first busy second does not wait on connection set-up.
async fn context(config: Config, pool_size: u32, warm: u32) -> anyhow::Result<Context> {
    db::prepare(&config).await.context("PostgreSQL")?;
    let db = db::connect_warm(&config, pool_size, warm)
        .await
        .context("PostgreSQL")?;
    let ctx = Context::new(config, db, Metrics::new());
    // The stored settings in force from the first event on (not the env values until the
    // first background refresh).
    ctx.settings.refresh().await.context("PostgreSQL settings")?;
    Ok(ctx)
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let pool = db::migrate(config).await.context("PostgreSQL migrations")?;
    pool.close().await;
    let conn = amqp::connect(&config.amqp_url, "migrate")
        .await
        .context("RabbitMQ")?;
    let ch = conn.create_channel().await.context("RabbitMQ channel")?;
    let names = amqp::Names::new(&config.namespace);
    amqp::declare_topology(&ch, &names)
        .await
        .context("AMQP topology")?;
    amqp::declare_dead_queue(&conn, &names)
        .await
        .context("AMQP dead-letter queue")?;
    amqp::close(&conn, 200, "done").await;
    Ok(())
}

async fn run(command: Command, mut config: Config) -> anyhow::Result<()> {
    match command {
        Command::Up => {
            if !config.allow_private_targets && config.up_allows_private_targets() {
                config.allow_private_targets = true;
                println!(
                    "hookrelay up: private targets allowed for local use, the API listens on loopback only (set HOOKRELAY_ALLOW_PRIVATE_TARGETS=false to refuse them)"
                );
            }
            migrate(&config).await?;
            let ctx = context(config, 16, 8).await?;
            let listener = tokio::net::TcpListener::bind(ctx.config.api_addr)
                .await
                .with_context(|| format!("cannot listen on HOOKRELAY_API_ADDR {}", ctx.config.api_addr))?;
            let addr = listener.local_addr()?;
            println!("hookrelay API:        http://{addr}/api/v1");
            println!("hookrelay admin page: http://{addr}/admin/webhook-deliveries");
            println!("hookrelay metrics:    http://{addr}/metrics");
            let stop = shutdown::on_signal();
            let api = tokio::spawn(hookrelay_query_api::run(ctx.clone(), listener, stop.clone()));
            let dispatcher = tokio::spawn(hookrelay_dispatcher::run(ctx.clone(), stop.clone()));
            let scheduler = tokio::spawn(hookrelay_scheduler::run(ctx.clone(), stop.clone()));
            let results = [
                ("api", api.await),
                ("dispatcher", dispatcher.await),
                ("scheduler", scheduler.await),
            ];
            finish(&stop, results)
        }
        Command::Dispatcher => {
            let ctx = context(config, 8, 8).await?;
            let stop = shutdown::on_signal();
            let ops = ops_server(&ctx, &stop).await?;
            let result = hookrelay_dispatcher::run(ctx, stop.clone()).await;
            stop_ops(&stop, ops).await;
            result
        }
        Command::Scheduler => {
            let ctx = context(config, 4, 0).await?;
            let stop = shutdown::on_signal();
            let ops = ops_server(&ctx, &stop).await?;
            let result = hookrelay_scheduler::run(ctx, stop.clone()).await;
            stop_ops(&stop, ops).await;
            result
        }
        Command::Api => {
            let ctx = context(config, 16, 0).await?;
            let listener = tokio::net::TcpListener::bind(ctx.config.api_addr)
                .await
                .with_context(|| format!("cannot listen on HOOKRELAY_API_ADDR {}", ctx.config.api_addr))?;
            println!("hookrelay API: http://{}/api/v1", listener.local_addr()?);
            let stop = shutdown::on_signal();
            hookrelay_query_api::run(ctx, listener, stop).await
        }
        Command::Migrate => {
            migrate(&config).await?;
            println!(
                "migrated database {} and AMQP namespace {}",
                config.database_name().unwrap_or_default(),
                config.namespace
            );
            Ok(())
        }
        Command::Tokens { command } => tokens_command(command, &config).await,
        Command::Webhooks { command } => webhooks_command(command, &config).await,
        Command::Deliveries { command } => {
            let pool = db::migrate(&config).await.context("PostgreSQL")?;
            manage::deliveries(command, &config, &pool).await
        }
        Command::Settings { command } => {
            let pool = db::migrate(&config).await.context("PostgreSQL")?;
            manage::settings_command(command, &config, &pool).await
        }
        Command::Publish { event_type, data, id } => publish(&config, event_type, data, id).await,
        Command::Listen { addr, secret, status } => listen::run(addr, secret, status).await,
        Command::Purge => {
            let pool = db::migrate(&config).await.context("PostgreSQL")?;
            let ctx = Context::new(config, pool, Metrics::new());
            let report = hookrelay_scheduler::purge_once(&ctx).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` for a dispatcher or scheduler running alone,
/// when `HOOKRELAY_METRICS_ADDR` is set (the API serves them itself). Prints the bound
/// address, so port 0 works.
async fn ops_server(
    ctx: &Context,
    stop: &CancellationToken,
) -> anyhow::Result<Option<tokio::task::JoinHandle<anyhow::Result<()>>>> {
    let Some(addr) = ctx.config.metrics_addr else {
        return Ok(None);
    };
    let (local, task) = hookrelay_shared::ops::spawn(ctx.clone(), addr, stop.clone()).await?;
    println!("hookrelay metrics: http://{local}/metrics");
    Ok(Some(task))
}

/// Stops the operations server after the component returned (also when it failed).
async fn stop_ops(stop: &CancellationToken, ops: Option<tokio::task::JoinHandle<anyhow::Result<()>>>) {
    stop.cancel();
    if let Some(task) = ops {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "operations server failed"),
            Err(e) => tracing::error!(error = %e, "operations server panicked"),
        }
    }
}

fn finish(
    stop: &CancellationToken,
    results: [(&str, Result<anyhow::Result<()>, tokio::task::JoinError>); 3],
) -> anyhow::Result<()> {
    stop.cancel();
    let mut first_error = None;
    for (name, r) in results {
        let err = match r {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(e) => anyhow::anyhow!("{e}"),
        };
        tracing::error!(component = name, error = %format!("{err:#}"), "component failed");
        first_error.get_or_insert(err.context(format!("{name} failed")));
    }
    first_error.map_or(Ok(()), Err)
}

async fn tokens_command(command: TokensCommand, config: &Config) -> anyhow::Result<()> {
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

async fn webhooks_command(command: WebhooksCommand, config: &Config) -> anyhow::Result<()> {
    let pool = db::migrate(config).await.context("PostgreSQL")?;
    match command {
        WebhooksCommand::Manage(command) => manage::webhooks(command, config, &pool).await?,
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
            let ordering = ordering.as_deref().map(manage::parse_ordering).transpose()?;
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

async fn publish(
    config: &Config,
    event_type: String,
    data: String,
    id: Option<String>,
) -> anyhow::Result<()> {
    let data: serde_json::Value = serde_json::from_str(&data).context("--data must be JSON")?;
    if !data.is_object() {
        anyhow::bail!("--data must be a JSON object");
    }
    if !hookrelay_shared::event::is_valid_type(&event_type) {
        anyhow::bail!("--type `{event_type}`: dot-separated lowercase segments [a-z0-9_-]+, at least two");
    }
    let id = id.unwrap_or_else(hookrelay_shared::event::new_event_id);
    if !hookrelay_shared::event::is_valid_id(&id) {
        anyhow::bail!("--id: 1-128 printable ASCII characters without spaces");
    }
    let occurred_at = hookrelay_shared::event::rfc3339(time::OffsetDateTime::now_utc());
    let body = serde_json::json!({"id": id, "type": event_type, "data": data, "occurred_at": occurred_at});
    let conn = amqp::connect(&config.amqp_url, "publish")
        .await
        .context("RabbitMQ")?;
    let ch = amqp::confirm_channel(&conn).await.context("RabbitMQ channel")?;
    let names = amqp::Names::new(&config.namespace);
    amqp::declare_topology(&ch, &names)
        .await
        .context("AMQP topology")?;
    amqp::publish_event(&ch, &names, &event_type, &serde_json::to_vec(&body)?).await?;
    amqp::close(&conn, 200, "done").await;
    println!("published {id} ({event_type}) to {}", names.events_exchange);
    Ok(())
}
