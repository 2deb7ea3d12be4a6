//! Firing due retries: claim (Lua, with a lease), publish each job and wait for the broker's
//! confirms, then acknowledge (Lua: remove only what we still hold). Claiming and delivering
//! are separate steps so the run loop can claim the next batch while earlier ones still wait
//! for their confirms (a quorum queue confirms only after its log is synced).

use std::time::Instant;

use hookrelay_shared::{
    Context,
    amqp::Names,
    jobs::{DeliveryJob, Trigger, publish_job},
    redis_keys,
    retry_store::RetryEntry,
};
use redis::aio::ConnectionManager;
use time::OffsetDateTime;

use crate::{Options, scripts};

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FireRound {
    /// Members claimed (due entries taken under a lease).
    pub claimed: usize,
    /// Jobs confirmed by the broker and removed from the set.
    pub fired: usize,
    /// Jobs whose publish failed; they stay leased and fire again when the lease runs out.
    pub failed: usize,
}

/// One claimed batch, waiting to be published.
pub struct Claimed {
    /// The lease score every member was given; the ack removes only members still at it.
    lease: i64,
    entries: Vec<(String, RetryEntry)>,
    /// Members that don't parse: removed without a job.
    junk: Vec<String>,
}

impl Claimed {
    pub fn len(&self) -> usize {
        self.entries.len() + self.junk.len()
    }
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn job_of(entry: &RetryEntry) -> DeliveryJob {
    DeliveryJob {
        delivery_id: entry.delivery_id,
        event_received_at: entry.event_received_at,
        // Attempt 1 is a first attempt that a dispatcher lost (crash, lost job): it is still
        // an initial attempt, not a retry.
        trigger: if entry.attempt <= 1 {
            Trigger::Initial
        } else {
            Trigger::Automatic
        },
        attempt: entry.attempt,
    }
}

/// Claims up to `opts.claim_batch` due retries under a lease.
pub async fn claim(
    redis: &mut ConnectionManager,
    ctx: &Context,
    opts: &Options,
) -> redis::RedisResult<Claimed> {
    let set = redis_keys::retries(&ctx.config.namespace);
    let now = now_ms();
    let lease = now + opts.claim_lease.as_millis() as i64;
    let started = Instant::now();
    let flat: Vec<String> = scripts::CLAIM
        .key(&set)
        .arg(now)
        .arg(lease)
        .arg(opts.claim_batch)
        .invoke_async(redis)
        .await?;
    ctx.metrics
        .redis_operation
        .get_or_create(&[("op", "claim")])
        .observe(started.elapsed().as_secs_f64());
    let mut claimed = Claimed {
        lease,
        entries: Vec::with_capacity(flat.len() / 2),
        junk: vec![],
    };
    let mut flat = flat.into_iter();
    while let (Some(member), Some(score)) = (flat.next(), flat.next()) {
        let score = score.parse::<f64>().map(|s| s as i64).unwrap_or(now);
        match RetryEntry::parse(&member, score) {
            Some(entry) => claimed.entries.push((member, entry)),
            None => {
                // Not something a hookrelay component wrote: drop it rather than loop on it.
                tracing::warn!(member = %member, "removing a malformed retry entry");
                claimed.junk.push(member);
            }
        }
    }
    Ok(claimed)
}

/// Publishes the jobs of a claimed batch (all at once, then every confirm awaited) and
/// acknowledges the confirmed ones. A failed publish leaves its member leased.
pub async fn deliver(
    claimed: Claimed,
    channel: Option<&lapin::Channel>,
    names: &Names,
    redis: &mut ConnectionManager,
    ctx: &Context,
    opts: &Options,
) -> anyhow::Result<FireRound> {
    let started = Instant::now();
    let mut round = FireRound {
        claimed: claimed.len(),
        ..Default::default()
    };
    let mut confirmed: Vec<&str> = claimed.junk.iter().map(String::as_str).collect();
    match channel {
        Some(channel) => {
            let results = futures::future::join_all(claimed.entries.iter().map(|(_, e)| {
                let job = job_of(e);
                async move { publish_job(channel, names, &job).await }
            }))
            .await;
            for ((member, entry), result) in claimed.entries.iter().zip(results) {
                match result {
                    Ok(()) => {
                        confirmed.push(member);
                        round.fired += 1;
                        let lateness_ms = (now_ms() - entry.score()).max(0);
                        ctx.metrics.retry_lateness.observe(lateness_ms as f64 / 1000.0);
                    }
                    Err(e) => {
                        if round.failed == 0 {
                            tracing::warn!(error = %e, "publishing a retry job failed; it fires again after its lease");
                        }
                        round.failed += 1;
                    }
                }
            }
            if round.failed > 0 {
                ctx.metrics.amqp_errors.get_or_create(&[("op", "publish")]).inc();
            }
        }
        None => round.failed = claimed.entries.len(),
    }
    let publish_ms = started.elapsed().as_millis() as u64;

    if !confirmed.is_empty() {
        let ns = &ctx.config.namespace;
        let set = redis_keys::retries(ns);
        let fired_set = redis_keys::key(ns, "fired");
        let guard_from = now_ms() - opts.fired_guard.as_millis() as i64;
        let mut inv = scripts::ACK.key(&set);
        inv.key(&fired_set)
            .arg(claimed.lease)
            .arg(now_ms())
            .arg(guard_from);
        for m in &confirmed {
            inv.arg(*m);
        }
        let ack_started = Instant::now();
        let _removed: i64 = inv.invoke_async(redis).await?;
        ctx.metrics
            .redis_operation
            .get_or_create(&[("op", "ack")])
            .observe(ack_started.elapsed().as_secs_f64());
    }
    let total_ms = started.elapsed().as_millis() as u64;
    if total_ms > 1000 {
        // A slow round makes every retry in it late: say which step was slow.
        tracing::warn!(
            claimed = round.claimed,
            publish_ms,
            ack_ms = total_ms - publish_ms,
            "slow scheduler round"
        );
    }
    Ok(round)
}
