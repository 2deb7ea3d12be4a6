//! The scheduler: fires due retries from Redis, rebuilds Redis from PostgreSQL, runs retention.
//!
//! # Redis layout (all keys share the hash tag `{ns}`)
//! - `{ns}:retries` — sorted set of pending retries: member `delivery_id|event_received_at_us|attempt`
//!   ([`hookrelay_shared::retry_store::RetryEntry`]), score = due time (Unix ms). The dispatcher
//!   ZADDs after it committed a failed attempt; the scheduler's reconcile re-adds from PostgreSQL.
//! - `{ns}:fired` — sorted set: member → when its job was confirmed (Unix ms), kept for
//!   [`Options::fired_guard`], so reconcile does not re-add a retry whose job is still queued.
//! - `{ns}:reconcile` — a lock with expiry so one replica reconciles per period.
//!
//! # Claim algorithm (any number of replicas)
//! 1. Claim (Lua, atomic): `ZRANGEBYSCORE retries -inf now LIMIT n`, and re-score each member
//!    to `now + claim_lease`. No other replica sees them as due until the lease runs out.
//! 2. Publish one [`hookrelay_shared::jobs::DeliveryJob`] per member to `{ns}.deliveries` on a
//!    confirm channel and wait for the broker's confirms.
//! 3. Ack (Lua): remove each confirmed member only if its score is still our lease score, and
//!    note it in `{ns}:fired`. A failed publish leaves the member leased: it fires again after
//!    the lease, as does everything a crashed replica had claimed.
//!
//! So the scheduler is at-least-once toward RabbitMQ; the dispatcher makes it exactly-once
//! toward the endpoint by claiming the delivery in PostgreSQL (`attempt_count = attempt - 1`,
//! due) before sending, and dropping the job if that claim fails.
//!
//! # Reconcile
//! PostgreSQL is the record of truth and this Redis keeps nothing on disk. On start and every
//! [`Options::reconcile_every`] (one replica per period, by the lock), every `pending`/`retrying`
//! delivery is streamed in keyset batches and `ZADD NX`-ed as `attempt_count + 1` due at
//! `next_attempt_at`. After a FLUSHALL every waiting retry fires again.

mod fire;
mod publisher;
mod reconcile;
mod retention;
mod scripts;

use std::time::Duration;

use hookrelay_shared::{Context, amqp::Names, redis_keys};
use redis::aio::ConnectionManager;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use fire::FireRound;
pub use reconcile::ReconcileReport;
pub use retention::{DroppedPartition, KeptPartition, PurgeReport, RowsPurged, purge_once};

/// Tuning of a scheduler. The defaults suit production; tests shorten the periods.
#[derive(Clone, Debug)]
pub struct Options {
    /// How often to look for due retries when the last round found fewer than a batch.
    pub poll_every: Duration,
    /// Most retries claimed per round.
    pub claim_batch: usize,
    /// Claimed batches that may wait for their confirms at once (the loop claims the next batch
    /// meanwhile, so confirm latency does not cap throughput).
    pub max_in_flight: usize,
    /// How long a claimed retry is held before another replica may fire it. Publishing takes
    /// milliseconds; this only matters after a crash or while RabbitMQ is unreachable.
    pub claim_lease: Duration,
    /// How long a fired job keeps reconcile from re-adding its retry (it is still queued).
    pub fired_guard: Duration,
    /// Period of the reconcile from PostgreSQL.
    pub reconcile_every: Duration,
    /// Rows per reconcile batch.
    pub reconcile_batch: usize,
    /// Period of retention runs.
    pub retention_every: Duration,
}

impl Options {
    /// The defaults, with the fired guard as long as the dispatcher's attempt lease (a job still
    /// unclaimed after that is taken as lost).
    pub fn for_config(config: &hookrelay_shared::Config) -> Self {
        Self {
            poll_every: Duration::from_millis(50),
            claim_batch: 500,
            max_in_flight: 4,
            claim_lease: Duration::from_secs(10),
            fired_guard: config.attempt_lease.0,
            reconcile_every: Duration::from_secs(20),
            reconcile_batch: 2000,
            retention_every: Duration::from_secs(3600),
        }
    }
}

/// A scheduler replica: Redis and RabbitMQ connections plus the context.
pub struct Scheduler {
    ctx: Context,
    opts: Options,
    redis: ConnectionManager,
    publisher: publisher::Publisher,
}

impl Scheduler {
    /// Connects to Redis (RabbitMQ is connected lazily, on the first due retry).
    pub async fn build(ctx: Context, opts: Options) -> anyhow::Result<Self> {
        let client = redis::Client::open(ctx.config.redis_url.as_str())
            .map_err(|e| anyhow::anyhow!("HOOKRELAY_REDIS_URL: {e}"))?;
        // One plain connection first: it fails at once when Redis is unreachable, where the
        // manager would retry on its own for seconds before saying anything.
        match tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => anyhow::bail!("Redis did not answer within 2 s"),
        }
        let redis = ConnectionManager::new(client).await?;
        let publisher = publisher::Publisher::new(&ctx.config.amqp_url, Names::new(&ctx.config.namespace));
        Ok(Self {
            ctx,
            opts,
            redis,
            publisher,
        })
    }

    /// One claim–publish–ack round (tests step the scheduler with it).
    pub async fn fire_due(&mut self) -> anyhow::Result<FireRound> {
        let claimed = fire::claim(&mut self.redis, &self.ctx, &self.opts).await?;
        if claimed.len() == 0 {
            return Ok(FireRound::default());
        }
        let channel = self.channel().await;
        let names = self.publisher.names().clone();
        let round = fire::deliver(
            claimed,
            channel.as_ref(),
            &names,
            &mut self.redis,
            &self.ctx,
            &self.opts,
        )
        .await?;
        if round.failed > 0 {
            self.publisher.reset().await;
        }
        Ok(round)
    }

    async fn channel(&mut self) -> Option<lapin::Channel> {
        match self.publisher.channel().await {
            Ok(ch) => Some(ch),
            Err(e) => {
                self.ctx
                    .metrics
                    .amqp_errors
                    .get_or_create(&[("op", "connect")])
                    .inc();
                tracing::warn!(error = %e, "cannot reach RabbitMQ; claimed retries fire again after their lease");
                None
            }
        }
    }

    /// Claims one batch and hands its publishing to a task. Returns how many were claimed.
    async fn claim_and_spawn(
        &mut self,
        inflight: &mut JoinSet<anyhow::Result<FireRound>>,
    ) -> anyhow::Result<usize> {
        let claimed = fire::claim(&mut self.redis, &self.ctx, &self.opts).await?;
        let n = claimed.len();
        if n > 0 {
            let channel = self.channel().await;
            let names = self.publisher.names().clone();
            let (mut redis, ctx, opts) = (self.redis.clone(), self.ctx.clone(), self.opts.clone());
            inflight.spawn(async move {
                fire::deliver(claimed, channel.as_ref(), &names, &mut redis, &ctx, &opts).await
            });
        }
        Ok(n)
    }

    /// Looks at a finished delivery task; reconnects RabbitMQ after a failed publish.
    async fn finished(&mut self, result: Result<anyhow::Result<FireRound>, tokio::task::JoinError>) {
        match result {
            Ok(Ok(round)) if round.failed > 0 => self.publisher.reset().await,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "acknowledging fired retries failed; they fire again after their lease")
            }
            Err(e) => tracing::error!(error = %e, "a delivery task panicked"),
        }
    }

    /// Reconciles Redis from PostgreSQL now, without the lock.
    pub async fn reconcile(&mut self) -> anyhow::Result<ReconcileReport> {
        reconcile::reconcile(&mut self.redis, &self.ctx, &self.opts).await
    }

    /// Updates `hookrelay_retries_pending` from the set's size.
    pub async fn refresh_pending(&mut self) -> anyhow::Result<i64> {
        let n: i64 = redis::cmd("ZCARD")
            .arg(redis_keys::retries(&self.ctx.config.namespace))
            .query_async(&mut self.redis)
            .await?;
        self.ctx.metrics.retries_pending.set(n);
        Ok(n)
    }

    /// Fires due retries, reconciles and runs retention until `shutdown` is cancelled. Batches
    /// already claimed are published and acknowledged before it returns.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let retention = tokio::spawn(retention_loop(
            self.ctx.clone(),
            self.opts.retention_every,
            shutdown.clone(),
        ));
        let mut inflight = JoinSet::new();
        let mut next_reconcile = tokio::time::Instant::now();
        let mut next_gauge = tokio::time::Instant::now();
        let mut failures: u32 = 0;
        tracing::info!(namespace = %self.ctx.config.namespace, "scheduler started");
        while !shutdown.is_cancelled() {
            let now = tokio::time::Instant::now();
            if now >= next_reconcile {
                next_reconcile = now + self.opts.reconcile_every;
                self.reconcile_if_first().await;
            }
            if now >= next_gauge {
                next_gauge = now + Duration::from_secs(1);
                if let Err(e) = self.refresh_pending().await {
                    tracing::debug!(error = %e, "could not read the retry set's size");
                }
            }
            while let Some(done) = inflight.try_join_next() {
                self.finished(done).await;
            }
            if inflight.len() >= self.opts.max_in_flight.max(1) {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    Some(done) = inflight.join_next() => self.finished(done).await,
                }
                continue;
            }
            let pause = match self.claim_and_spawn(&mut inflight).await {
                Ok(n) => {
                    failures = 0;
                    if n >= self.opts.claim_batch {
                        continue; // more are due: no pause
                    }
                    self.opts.poll_every
                }
                Err(e) => {
                    // ConnectionManager reconnects by itself; the first command after a drop
                    // errors, so just back off a little and go again.
                    failures = failures.saturating_add(1);
                    if failures == 1 || failures.is_multiple_of(100) {
                        tracing::warn!(error = %e, failures, "claiming due retries failed; retrying");
                    }
                    Duration::from_millis(100 * u64::from(failures.min(10)))
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        while let Some(done) = inflight.join_next().await {
            self.finished(done).await;
        }
        self.publisher.reset().await;
        let _ = retention.await;
        tracing::info!("scheduler stopped");
        Ok(())
    }

    async fn reconcile_if_first(&mut self) {
        let ns = self.ctx.config.namespace.clone();
        match reconcile::try_lock(&mut self.redis, &ns, self.opts.reconcile_every).await {
            Ok(true) => {
                if let Err(e) = self.reconcile().await {
                    tracing::warn!(error = %e, "reconcile failed; it runs again next period");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not take the reconcile lock"),
        }
    }
}

async fn retention_loop(ctx: Context, every: Duration, shutdown: CancellationToken) {
    loop {
        // Errors are logged and retried next period; a run never blocks retries from firing.
        let run = purge_once(&ctx);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = run => if let Err(e) = r {
                tracing::warn!(error = %e, "retention run failed; it runs again next period");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Runs a scheduler until `shutdown` is cancelled, waiting for Redis if it is not up yet.
pub async fn run(ctx: Context, shutdown: CancellationToken) -> anyhow::Result<()> {
    let opts = Options::for_config(&ctx.config);
    let mut delay = Duration::from_millis(200);
    let mut warned: Option<std::time::Instant> = None;
    let scheduler = loop {
        match Scheduler::build(ctx.clone(), opts.clone()).await {
            Ok(s) => {
                if warned.is_some() {
                    tracing::info!("scheduler reached Redis");
                }
                break s;
            }
            Err(e) => {
                // Said once (then once a minute), with the address and the fix, never the
                // password: the retries every few seconds would otherwise flood the log.
                let why = match hookrelay_shared::startup::explain(&e, &ctx.config) {
                    Some(unreachable) => unreachable.to_string(),
                    None => format!("cannot start with Redis: {e}"),
                };
                if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    tracing::warn!("scheduler: {why} Retrying until it is reachable.");
                    warned = Some(std::time::Instant::now());
                } else {
                    tracing::debug!("scheduler: {why}");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    };
    scheduler.run(shutdown).await
}
