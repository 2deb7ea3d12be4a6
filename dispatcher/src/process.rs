//! A dispatcher process's life: building its [`Core`], the AMQP session with both consumers
//! (reconnected with backoff when it fails), and the shutdown drain.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use hookrelay_shared::{Context, amqp};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    Core, defer, events, guard::Guard, jobs, lanes::Lanes, pace, record, send::Sender, slots::Slots,
    targets::TargetCache,
};

/// A dispatcher ready to run: webhook cache loaded, HTTP client built, recorder started.
pub struct Dispatcher {
    core: Arc<Core>,
    recorder_stop: CancellationToken,
    recorder_task: tokio::task::JoinHandle<()>,
    defer_task: tokio::task::JoinHandle<()>,
    promoted: tokio::sync::mpsc::UnboundedReceiver<hookrelay_shared::ordering::Promoted>,
}

impl Dispatcher {
    /// Prepares a dispatcher (loads the webhook cache, so the first event is matched correctly).
    pub async fn build(ctx: Context) -> anyhow::Result<Self> {
        let cache = TargetCache::load(&ctx.db).await?;
        let sender = Sender::new(&ctx.config)?;
        let recorder_stop = CancellationToken::new();
        let (promoted_tx, promoted) = tokio::sync::mpsc::unbounded_channel();
        let (recorder, recorder_task) = record::spawn(ctx.clone(), recorder_stop.clone(), promoted_tx);
        let (deferrer, defer_task) = defer::spawn(ctx.clone(), recorder_stop.clone());
        let core = Arc::new(Core {
            deferrer,
            guard: Guard::new(ctx.clone()),
            lanes: Lanes::new(ctx.config.request_timeout.0),
            pace: pace::Pace::default(),
            names: amqp::Names::new(&ctx.config.namespace),
            permits: Slots::new(ctx.config.dispatch_concurrency),
            ctx,
            cache,
            sender,
            recorder,
            tasks: TaskTracker::new(),
            job_prepares: tokio::sync::Semaphore::new(jobs::PREPARING),
            known_types: Mutex::new(HashMap::new()),
            stopping: CancellationToken::new(),
        });
        Ok(Self {
            core,
            recorder_stop,
            recorder_task,
            defer_task,
            promoted,
        })
    }

    /// The shared state (tests use it to make single attempts).
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Consumes until `shutdown`, then drains: in-flight attempts get `shutdown_grace` to
    /// finish and be recorded; unacked messages go back to RabbitMQ when the connection closes.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let core = self.core.clone();
        // Heads the recorder promoted are sent at once (the loop ends with the recorder).
        let mut promoted = std::mem::replace(&mut self.promoted, tokio::sync::mpsc::unbounded_channel().1);
        let sender = core.clone();
        tokio::spawn(async move {
            while let Some(p) = promoted.recv().await {
                sender.send_promoted(p);
            }
        });
        // Attempts waiting for a slot stop waiting at the signal itself, not after the
        // consumers have wound down.
        let stopping = core.stopping.clone();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            signal.cancelled().await;
            stopping.cancel();
        });
        let fresh = tokio::spawn(
            core.cache
                .clone()
                .keep_fresh(core.ctx.db.clone(), shutdown.clone()),
        );
        let sweeper = tokio::spawn(core.clone().sweep(shutdown.clone()));
        let mut backoff = Duration::from_millis(200);
        let mut connection = None;
        while !shutdown.is_cancelled() {
            match session(&core, &shutdown, &mut backoff).await {
                Ok(conn) => connection = Some(conn),
                Err(e) => {
                    core.ctx
                        .metrics
                        .amqp_errors
                        .get_or_create(&[("op", "connect")])
                        .inc();
                    tracing::error!(error = %format!("{e:#}"), retry_in_ms = backoff.as_millis() as u64,
                        "RabbitMQ session failed; reconnecting");
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        tracing::info!("dispatcher stopping: waiting for attempts in flight");
        core.stopping.cancel();
        core.tasks.close();
        let grace = core.ctx.config.shutdown_grace.0;
        // Leave a little of the grace for flushing the recorder and closing the connection.
        let drain = grace.saturating_sub(grace / 5);
        if tokio::time::timeout(drain, core.tasks.wait()).await.is_err() {
            tracing::warn!(
                in_flight = core.tasks.len(),
                "attempts still in flight after the shutdown grace; their leases make them retried"
            );
        }
        self.recorder_stop.cancel();
        let writers = async {
            let _ = self.recorder_task.await;
            let _ = self.defer_task.await;
        };
        if tokio::time::timeout(grace / 5, writers).await.is_err() {
            tracing::warn!(
                "recorder still writing after the shutdown grace; unrecorded attempts will be retried"
            );
        }
        if let Some(conn) = connection {
            amqp::close(&conn, 200, "shutdown").await;
        }
        let _ = fresh.await;
        let _ = sweeper.await;
        tracing::info!("dispatcher stopped");
        Ok(())
    }
}

/// One AMQP connection with both consumers. Returns the connection (still open, so jobs in
/// flight can be acked) when `shutdown` stops the consumers, or an error when it fails.
async fn session(
    core: &Arc<Core>,
    shutdown: &CancellationToken,
    backoff: &mut Duration,
) -> anyhow::Result<lapin::Connection> {
    // Named after the namespace so an operator (or a test) can tell replicas of systems apart.
    let name = format!("dispatcher-{}", core.ctx.config.namespace);
    let conn = amqp::connect(&core.ctx.config.amqp_url, &name).await?;
    let setup = conn.create_channel().await?;
    amqp::declare_topology(&setup, &core.names).await?;
    amqp::declare_dead_queue(&conn, &core.names).await?;
    let events_channel = conn.create_channel().await?;
    let dead_channel = amqp::confirm_channel(&conn).await?;
    let jobs_channel = conn.create_channel().await?;
    *backoff = Duration::from_millis(200);
    tracing::info!("connected to RabbitMQ");
    let result = tokio::try_join!(
        events::consume(core.clone(), events_channel, dead_channel, shutdown.clone()),
        jobs::consume(core.clone(), jobs_channel, shutdown.clone()),
    );
    match result {
        Ok(_) => Ok(conn),
        Err(e) => {
            amqp::close(&conn, 320, "reconnecting").await;
            Err(e)
        }
    }
}

/// Runs a dispatcher until `shutdown` is cancelled.
pub async fn run(ctx: Context, shutdown: CancellationToken) -> anyhow::Result<()> {
    Dispatcher::build(ctx).await?.run(shutdown).await
}
