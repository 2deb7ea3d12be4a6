//! `hookrelay`: one binary for every component and the admin commands. Thin: it parses
//! arguments, loads the config and wires the component crates together; the admin commands
//! are in `manage/`, the local receiver in `listen.rs`.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hookrelay_shared::{Config, Context, amqp, db, metrics::Metrics, shutdown, startup, telemetry};
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
        command: manage::TokensCommand,
    },
    /// Manage webhooks.
    Webhooks {
        #[command(subcommand)]
        command: manage::WebhooksCommand,
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

/// mimalloc instead of glibc malloc: the dispatcher allocates per request and per record, and
/// glibc's malloc/free were 27 % of its CPU under load. Built with `no_thp`: transparent huge
/// pages cost ~50 MiB of RSS with 1,000 black holes.
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
        Command::Tokens { command } => manage::tokens_command(command, &config).await,
        Command::Webhooks { command } => manage::webhooks_command(command, &config).await,
        Command::Deliveries { command } => {
            let pool = db::migrate(&config).await.context("PostgreSQL")?;
            manage::deliveries(command, &config, &pool).await
        }
        Command::Settings { command } => {
            let pool = db::migrate(&config).await.context("PostgreSQL")?;
            manage::settings_command(command, &config, &pool).await
        }
        Command::Publish { event_type, data, id } => manage::publish(&config, event_type, data, id).await,
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
