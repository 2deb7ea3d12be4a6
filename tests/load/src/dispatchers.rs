//! The dispatcher processes of a load run: spawned from the release binary with the run's
//! services, awaited until they consume, and stopped with SIGTERM (a dispatcher still running
//! 45 s later fails the run).

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use hookrelay_shared::{Config, amqp};
use lapin::{options::QueueDeclareOptions, types::FieldTable};

use crate::Args;

/// Spawns `--dispatchers` processes and waits (up to 30 s) until each consumes the events queue.
pub async fn start(
    args: &Args,
    config: &Config,
    setup: &lapin::Channel,
    names: &amqp::Names,
) -> anyhow::Result<Vec<Child>> {
    let mut children = Vec::new();
    for n in 0..args.dispatchers {
        children.push(spawn(args, config, n)?);
    }
    // Wait for the dispatchers' consumers.
    let ready = Instant::now();
    loop {
        let q = setup
            .queue_declare(
                names.events_queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        if q.consumer_count() as usize >= args.dispatchers {
            break;
        }
        if ready.elapsed() > Duration::from_secs(30) {
            bail!(
                "the dispatcher did not start consuming within 30 s (see /tmp/hookrelay-load-dispatcher-0.log)"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(children)
}

/// SIGTERMs the dispatchers and waits for them; returns the pids of those still running 45 s
/// later (killed then).
pub async fn stop(children: &mut [Child]) -> Vec<u32> {
    for c in children.iter_mut() {
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
    }
    // The shutdown grace is 30 s by default; a dispatcher still running well after it is a bug
    // worth failing the run for.
    let mut hung = vec![];
    for c in children.iter_mut() {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            match c.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    hung.push(c.id());
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    hung
}

/// `--scheduler`: a `hookrelay scheduler` process beside the dispatchers, so deferred and
/// failed deliveries come back to them as they would in production (its memory is not the
/// dispatchers' and is not counted), logging to `/tmp/hookrelay-load-scheduler.log`.
pub fn start_scheduler(args: &Args, config: &Config) -> anyhow::Result<Option<Child>> {
    if !args.scheduler || args.up {
        return Ok(None);
    }
    spawn_as(
        args,
        config,
        "scheduler",
        "/tmp/hookrelay-load-scheduler.log",
        17_999,
    )
    .map(Some)
}

/// Runs dispatcher `n` (or `hookrelay up`) on the run's database and namespace, logging to
/// `/tmp/hookrelay-load-dispatcher-{n}.log`.
fn spawn(args: &Args, config: &Config, n: usize) -> anyhow::Result<Child> {
    let log = format!("/tmp/hookrelay-load-dispatcher-{n}.log");
    let port = 18_000u16.saturating_add(u16::try_from(n).unwrap_or(u16::MAX));
    spawn_as(
        args,
        config,
        if args.up { "up" } else { "dispatcher" },
        &log,
        port,
    )
}

fn spawn_as(args: &Args, config: &Config, command: &str, log: &str, port: u16) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log)?;
    let mut cmd = Command::new(&args.binary);
    cmd.arg(command)
        .env("HOOKRELAY_API_ADDR", format!("127.0.0.1:{port}"))
        .env("HOOKRELAY_DATABASE_URL", &config.database_url)
        .env("HOOKRELAY_AMQP_URL", &config.amqp_url)
        .env("HOOKRELAY_REDIS_URL", &config.redis_url)
        .env("HOOKRELAY_NAMESPACE", &config.namespace)
        .env("HOOKRELAY_ALLOW_PRIVATE_TARGETS", "true")
        .env_remove("HOOKRELAY_CONFIG")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    for kv in &args.env {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("--env {kv}: expected KEY=VALUE");
        };
        cmd.env(k, v);
    }
    cmd.spawn().with_context(|| {
        format!(
            "cannot run {} (build it with cargo build --release)",
            args.binary.display()
        )
    })
}
