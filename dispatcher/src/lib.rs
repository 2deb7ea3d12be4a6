//! The dispatcher: consumes events, fans them out to subscribed webhooks, sends signed POSTs
//! and records every attempt.
//!
//! Two consumers share one AMQP connection: the events path ([`events`]) and the jobs path
//! ([`jobs`]). Both hand attempts to spawned tasks bounded by one semaphore
//! (`HOOKRELAY_DISPATCH_CONCURRENCY`); the tasks send ([`send`]) and pass their results to
//! one recorder ([`record`]) that writes them in batches. The connection is supervised: when
//! it fails, the dispatcher reconnects with backoff and RabbitMQ redelivers what was unacked.

pub mod events;
pub mod jobs;
pub mod record;
pub mod send;
pub mod targets;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use hookrelay_shared::{Context, amqp};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    record::{Plan, Record, RecorderHandle},
    send::{AttemptRequest, Sender},
    targets::TargetCache,
};

/// What the consumers and attempt tasks share.
pub struct Core {
    pub ctx: Context,
    pub names: amqp::Names,
    pub cache: TargetCache,
    pub sender: Sender,
    pub recorder: RecorderHandle,
    /// One permit per request in flight (or waiting for room in the recorder's queue).
    pub permits: Arc<Semaphore>,
    /// Attempt and job tasks, awaited on shutdown.
    pub tasks: TaskTracker,
    /// Event types known to be in `event_types`, to skip a redundant INSERT.
    pub known_types: Mutex<HashSet<String>>,
    /// Cancelled when shutdown begins: attempts still waiting for a permit then give up
    /// (their delivery's lease brings them back) instead of starting during the drain.
    pub stopping: CancellationToken,
}

impl Core {
    /// Sends one attempt and hands its record to the recorder.
    pub async fn attempt(
        &self,
        req: AttemptRequest,
        permit: Option<OwnedSemaphorePermit>,
        done: Option<oneshot::Sender<()>>,
    ) {
        let permit = match permit {
            Some(p) => Some(p),
            None => tokio::select! {
                biased;
                _ = self.stopping.cancelled() => {
                    // Not started: the job (if any) stays unacked and goes back to RabbitMQ;
                    // a first attempt is re-fired by the scheduler when its lease runs out.
                    tracing::debug!(delivery_id = %req.delivery_id, "shutting down; attempt not started");
                    return;
                }
                p = self.permits.clone().acquire_owned() => p.ok(),
            },
        };
        self.ctx.metrics.deliveries_in_flight.inc();
        let out = self.sender.send(&req).await;
        self.ctx.metrics.deliveries_in_flight.dec();
        tracing::debug!(delivery_id = %req.delivery_id, webhook_id = %req.target.webhook.id,
            attempt = req.attempt, status = ?out.response_code, error = ?out.error,
            duration_ms = out.duration.as_millis() as u64, "attempt made");
        let plan = Plan::decide(&self.ctx, &req, &out);
        self.recorder.record(Record { req, out, plan, done }).await;
        // The slot is held until the record is queued, not until it is committed: the
        // recorder's bounded queue keeps the unrecorded work bounded (while it is full, this
        // task and its slot wait above), and holding slots through the commit capped the
        // throughput at concurrency / (request + commit latency): 2,822 vs 4,952 deliveries/s.
        drop(permit);
    }

    /// Runs [`Core::attempt`] on its own task.
    pub fn spawn_attempt(
        self: &Arc<Self>,
        req: AttemptRequest,
        permit: Option<OwnedSemaphorePermit>,
        done: Option<oneshot::Sender<()>>,
    ) {
        let core = self.clone();
        self.tasks
            .spawn(async move { core.attempt(req, permit, done).await });
    }
}

/// A dispatcher ready to run: webhook cache loaded, HTTP client built, recorder started.
pub struct Dispatcher {
    core: Arc<Core>,
    recorder_stop: CancellationToken,
    recorder_task: tokio::task::JoinHandle<()>,
}

impl Dispatcher {
    /// Prepares a dispatcher (loads the webhook cache, so the first event is matched correctly).
    pub async fn build(ctx: Context) -> anyhow::Result<Self> {
        let cache = TargetCache::load(&ctx.db).await?;
        let sender = Sender::new(&ctx.config)?;
        let recorder_stop = CancellationToken::new();
        let (recorder, recorder_task) = record::spawn(ctx.clone(), recorder_stop.clone());
        let core = Arc::new(Core {
            names: amqp::Names::new(&ctx.config.namespace),
            permits: Arc::new(Semaphore::new(ctx.config.dispatch_concurrency)),
            ctx,
            cache,
            sender,
            recorder,
            tasks: TaskTracker::new(),
            known_types: Mutex::new(HashSet::new()),
            stopping: CancellationToken::new(),
        });
        Ok(Self {
            core,
            recorder_stop,
            recorder_task,
        })
    }

    /// The shared state (tests use it to make single attempts).
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Consumes until `shutdown`, then drains: in-flight attempts get `shutdown_grace` to
    /// finish and be recorded; unacked messages go back to RabbitMQ when the connection closes.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let core = self.core.clone();
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
        if tokio::time::timeout(grace / 5, self.recorder_task).await.is_err() {
            tracing::warn!(
                "recorder still writing after the shutdown grace; unrecorded attempts will be retried"
            );
        }
        if let Some(conn) = connection {
            amqp::close(&conn, 200, "shutdown").await;
        }
        let _ = fresh.await;
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
