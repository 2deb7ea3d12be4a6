//! Firing due retries: claim (Lua, with a lease), publish each job and wait for the broker's
//! confirms, then acknowledge (Lua: remove only what we still hold).

use std::time::Instant;

use hookrelay_shared::{
    jobs::{DeliveryJob, Trigger, publish_job},
    redis_keys,
    retry_store::RetryEntry,
};
use redis::aio::ConnectionManager;
use time::OffsetDateTime;

use crate::{Options, publisher::Publisher, scripts};

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

/// Claims, publishes and acknowledges one batch of due retries.
pub async fn round(
    redis: &mut ConnectionManager,
    publisher: &mut Publisher,
    ctx: &hookrelay_shared::Context,
    opts: &Options,
) -> anyhow::Result<FireRound> {
    let ns = &ctx.config.namespace;
    let set = redis_keys::retries(ns);
    let fired_set = redis_keys::key(ns, "fired");
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
    let mut round = FireRound {
        claimed: flat.len() / 2,
        ..Default::default()
    };
    if flat.is_empty() {
        return Ok(round);
    }

    let mut jobs = Vec::with_capacity(round.claimed);
    let mut junk = Vec::new();
    for pair in flat.chunks_exact(2) {
        let score = pair[1].parse::<f64>().map(|s| s as i64).unwrap_or(now);
        match RetryEntry::parse(&pair[0], score) {
            Some(entry) => jobs.push((pair[0].as_str(), entry)),
            None => {
                // Not something a hookrelay component wrote: drop it rather than loop on it.
                tracing::warn!(member = %pair[0], "removing a malformed retry entry");
                junk.push(pair[0].as_str());
            }
        }
    }

    let mut confirmed: Vec<&str> = junk;
    match publisher.channel().await {
        Ok(channel) => {
            let names = publisher.names().clone();
            let results = futures::future::join_all(jobs.iter().map(|(_, e)| {
                let job = job_of(e);
                let channel = &channel;
                let names = &names;
                async move { publish_job(channel, names, &job).await }
            }))
            .await;
            let mut errors = 0;
            for ((member, entry), result) in jobs.iter().zip(results) {
                match result {
                    Ok(()) => {
                        confirmed.push(member);
                        round.fired += 1;
                        let lateness_ms = (now_ms() - entry.score()).max(0);
                        ctx.metrics.retry_lateness.observe(lateness_ms as f64 / 1000.0);
                    }
                    Err(e) => {
                        errors += 1;
                        round.failed += 1;
                        if errors == 1 {
                            tracing::warn!(error = %e, "publishing a retry job failed; it fires again after its lease");
                        }
                    }
                }
            }
            if errors > 0 {
                ctx.metrics.amqp_errors.get_or_create(&[("op", "publish")]).inc();
                publisher.reset().await;
            }
        }
        Err(e) => {
            round.failed = jobs.len();
            ctx.metrics.amqp_errors.get_or_create(&[("op", "connect")]).inc();
            tracing::warn!(error = %e, "cannot reach RabbitMQ; claimed retries fire again after their lease");
        }
    }

    if !confirmed.is_empty() {
        let guard_from = now_ms() - opts.fired_guard.as_millis() as i64;
        let mut inv = scripts::ACK.key(&set);
        inv.key(&fired_set).arg(lease).arg(now_ms()).arg(guard_from);
        for m in &confirmed {
            inv.arg(*m);
        }
        let started = Instant::now();
        let _removed: i64 = inv.invoke_async(redis).await?;
        ctx.metrics
            .redis_operation
            .get_or_create(&[("op", "ack")])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(round)
}
