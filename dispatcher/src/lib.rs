//! The dispatcher: consumes events, fans them out to subscribed webhooks, sends signed POSTs
//! and records every attempt.
//!
//! Two stages. **Intake** ([`events`]) takes batches off `{ns}.events`, stores the events and
//! their deliveries and acks them, several batches at once, and never waits on an endpoint.
//! **Sending** ([`Core::submit`]) takes what intake stored (and the jobs of [`jobs`]: retries,
//! manual retries, deferred attempts coming back) through each webhook's lane ([`lanes`]:
//! `max_in_flight`, a short queue) and the shared guard ([`guard`]: circuit breaker,
//! Retry-After pause, rate limit, in Redis). What can't go now is deferred ([`defer`]): a later
//! `next_attempt_at` and a place in the scheduler's retry set, no attempt row, no retry used.
//! Attempts are sent ([`send`]) and handed to the recorder ([`record`]), which writes them in
//! batches. An ordered (`fifo`) webhook has one delivery sendable at a time, its head; the
//! recorder promotes the next one when it ends ([`ordered`]). The AMQP connection is supervised: when it fails, the dispatcher reconnects with
//! backoff and RabbitMQ redelivers what was unacked.

pub mod defer;
pub mod events;
pub mod guard;
pub mod jobs;
pub mod lanes;
pub mod ordered;
pub mod pace;
mod process;
pub mod record;
pub mod rollup;
pub mod send;
pub mod slots;
pub mod targets;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use hookrelay_shared::{Context, amqp};
use rand::Rng;
use time::OffsetDateTime;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use crate::process::{Dispatcher, run};
use crate::{
    defer::{DeferHandle, Deferral},
    guard::{Admission, Circuit, Guard, Verdict},
    lanes::{Attempt, Lane, Lanes, Moves},
    record::{Plan, Record, RecorderHandle},
    send::{AttemptOutcome, Sender},
    slots::{Slot, Slots},
    targets::TargetCache,
};

/// What the consumers and attempt tasks share.
pub struct Core {
    pub ctx: Context,
    pub names: amqp::Names,
    pub cache: TargetCache,
    pub sender: Sender,
    pub recorder: RecorderHandle,
    pub deferrer: DeferHandle,
    pub guard: Guard,
    pub lanes: Lanes,
    /// How much intake may queue ahead of sending ([`pace`]).
    pub pace: pace::Pace,
    /// One slot per request in flight in this process (`HOOKRELAY_DISPATCH_CONCURRENCY`).
    pub permits: Slots,
    /// Attempt and job tasks, awaited on shutdown.
    pub tasks: TaskTracker,
    /// Turns for a job's database calls ([`jobs::PREPARING`]).
    pub job_prepares: tokio::sync::Semaphore,
    /// Each event type and the minute it was last written to `event_types` (`last_seen_at`),
    /// to skip redundant upserts.
    pub known_types: Mutex<HashMap<String, i64>>,
    /// Cancelled when shutdown begins: nothing new starts (leases and unacked jobs bring
    /// what was not started back).
    pub stopping: CancellationToken,
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
}

/// `until` plus a random part of `spread_ms`, so deferred work comes back spread out.
fn spread(until_ms: i64, spread_ms: i64) -> i64 {
    let spread_ms = spread_ms.max(1);
    until_ms.saturating_add(rand::rng().random_range(0..spread_ms))
}

/// How an outcome counts for the breaker.
fn verdict(out: &AttemptOutcome) -> Verdict {
    if out.success() {
        return Verdict::Ok;
    }
    match out.response_code {
        None => Verdict::Fail,
        Some(c) if c >= 500 => Verdict::Fail,
        Some(_) => Verdict::Soft,
    }
}

impl Core {
    /// Takes one attempt to send: through the webhook's guard and lane, it is started now,
    /// queued briefly behind that webhook's requests in flight, or deferred. Never waits.
    pub fn submit(self: &Arc<Self>, a: Attempt) {
        if self.stopping.is_cancelled() {
            return;
        }
        let lane = self.lanes.get(a.req.target.webhook.id);
        let (view, refresh) = lane.view();
        if refresh {
            let (core, lane) = (self.clone(), lane.clone());
            self.tasks.spawn(async move {
                match core.guard.view(lane.webhook_id).await {
                    Some(v) => lane.set_view(v),
                    None => lane.refresh_failed(),
                }
            });
        }
        if !a.manual() {
            let now = now_ms();
            if view.pause_until_ms > now {
                let wait = view.pause_until_ms - now;
                let at = spread(view.pause_until_ms, wait.clamp(100, 5_000));
                return self.defer(a, "retry_after", at);
            }
            if view.circuit == Circuit::Open && view.open_until_ms > now {
                let wait = view.open_until_ms - now;
                let at = spread(view.open_until_ms, (wait / 2).clamp(100, 60_000));
                return self.defer(a, "circuit", at);
            }
            if a.req.target.webhook.rate_limit.is_some() || view.circuit != Circuit::Closed {
                let core = self.clone();
                self.tasks.spawn(async move { core.admit(lane, a).await });
                return;
            }
        }
        self.offer(&lane, a);
    }

    /// The Redis admission check, for a rate-limited webhook or a circuit that is not closed.
    async fn admit(self: Arc<Self>, lane: Arc<Lane>, mut a: Attempt) {
        let hook = &a.req.target.webhook;
        match self.guard.admit(hook.id, hook.rate_limit, a.slot_reserved).await {
            Some((Admission::Defer { reason, until_ms }, view)) => {
                lane.set_view(view);
                let wait = (until_ms - now_ms()).max(0);
                let at = match reason {
                    // The limiter reserved exactly that slot for this attempt.
                    "rate_limit" => until_ms,
                    "circuit" => spread(until_ms, (wait / 2).clamp(100, 60_000)),
                    _ => spread(until_ms, wait.clamp(100, 5_000)),
                };
                self.defer(a, reason, at);
            }
            Some((Admission::Go { probe, first }, view)) => {
                lane.set_view(view);
                if first {
                    tracing::info!(webhook_id = %lane.webhook_id, "circuit half-open: sending one probe");
                    self.ctx
                        .metrics
                        .circuit_transitions
                        .get_or_create(&[("to", "half_open")])
                        .inc();
                }
                a.probe = probe;
                self.offer(&lane, a);
            }
            None => self.offer(&lane, a),
        }
    }

    /// Every 200 ms, defers what waited in a lane's queue longer than it may, and re-estimates
    /// how far intake may run ahead.
    async fn sweep(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            self.pace.tick(std::time::Instant::now());
            for lane in self.lanes.all() {
                let moves = lane.sweep(now_ms());
                self.apply(&lane, moves);
            }
            // A lost wake-up costs at most one sweep interval.
            self.pump();
        }
    }

    /// Process slots may be free: the lanes that were waiting for one start what they can,
    /// oldest first.
    fn pump(self: &Arc<Self>) {
        // Each lane at most once: one that still finds no slot joins the list again.
        for _ in 0..self.lanes.starved_len() {
            if self.permits.available() == 0 {
                return;
            }
            let Some(lane) = self.lanes.next_starved() else {
                return;
            };
            let moves = lane.pump(&self.permits, now_ms());
            self.apply(&lane, moves);
        }
    }

    fn offer(self: &Arc<Self>, lane: &Arc<Lane>, a: Attempt) {
        let moves = lane.offer(a, &self.permits, now_ms());
        self.apply(lane, moves);
    }

    fn apply(self: &Arc<Self>, lane: &Arc<Lane>, moves: Moves) {
        for (a, permit) in moves.start {
            let (core, lane) = (self.clone(), lane.clone());
            self.tasks.spawn(async move { core.run(lane, a, permit).await });
        }
        for (a, at, reason) in moves.defer {
            let at = match reason {
                "in_flight" => at,
                // Held by a pause or an open circuit: spread over part of the wait.
                _ => spread(at, ((at - now_ms()) / 2).clamp(100, 60_000)),
            };
            self.defer(a, reason, at);
        }
    }

    fn defer(self: &Arc<Self>, a: Attempt, reason: &'static str, at_ms: i64) {
        let d = Deferral {
            delivery_id: a.req.delivery_id,
            event_received_at: a.req.event_received_at,
            attempt: a.req.attempt,
            at: from_ms(at_ms),
            reason,
            done: a.done,
        };
        tracing::debug!(delivery_id = %d.delivery_id, webhook_id = %a.req.target.webhook.id, reason,
            "attempt deferred");
        let deferrer = self.deferrer.clone();
        self.tasks.spawn(async move { deferrer.defer(d).await });
    }

    /// Sends one started attempt, frees its lane slot, tells the guard, records it.
    async fn run(self: Arc<Self>, lane: Arc<Lane>, a: Attempt, mut permit: Slot) {
        if !a.manual() && lane.disabled_for(&a) {
            // Disabled by this process meanwhile: its waiting deliveries were ended already.
            let moves = lane.release(
                Duration::ZERO,
                None,
                &self.permits,
                now_ms(),
                self.stopping.is_cancelled(),
            );
            drop(permit);
            self.apply(&lane, moves);
            self.pump();
            return;
        }
        let m = &self.ctx.metrics;
        m.deliveries_in_flight.inc();
        let out = {
            let send = self.sender.send(&a.req);
            tokio::pin!(send);
            tokio::select! {
                out = &mut send => out,
                _ = tokio::time::sleep(slots::HANG) => {
                    // Still no answer: wait without a process slot (others may use it).
                    if permit.hang(&self.permits) {
                        self.pump();
                    }
                    send.await
                }
            }
        };
        m.deliveries_in_flight.dec();
        self.pace.completed();
        tracing::debug!(delivery_id = %a.req.delivery_id, webhook_id = %a.req.target.webhook.id,
            attempt = a.req.attempt, status = ?out.response_code, error = ?out.error,
            duration_ms = out.duration.as_millis() as u64, "attempt made");
        // The guard first, so what waits in the lane sees a pause or an open circuit at once.
        // Boxed, and only when needed: this task's size is that of its largest await, and a
        // request to a black hole holds the task for the whole timeout. Inline, the guard's
        // Redis and PostgreSQL calls made it 17 KiB; what a hanging request holds is its
        // send (under 1 KiB).
        if Self::guard_needed(&lane, &a, &out) {
            Box::pin(self.tell_guard(&lane, &a, &out)).await;
        }
        let moves = lane.release(
            out.duration,
            Some(out.response_code.is_some()),
            &self.permits,
            now_ms(),
            self.stopping.is_cancelled(),
        );
        self.apply(&lane, moves);
        let plan = Plan::decide(&self.ctx, &a.req, &out);
        self.recorder
            .record(Record {
                req: a.req,
                out,
                plan,
                done: a.done,
            })
            .await;
        // The slot is held until the record is queued, not until it is committed: the
        // recorder's bounded queue keeps the unrecorded work bounded.
        drop(permit);
        self.pump();
    }

    /// Whether the outcome must go to the shared guard: a failure, a probe, a pause, a 410, or
    /// a success after failures. A healthy webhook costs no round trip.
    fn guard_needed(lane: &Lane, a: &Attempt, out: &AttemptOutcome) -> bool {
        let (view, _) = lane.view();
        verdict(out) != Verdict::Ok
            || a.probe
            || out.retry_after.is_some()
            || out.response_code == Some(410)
            || view.fails > 0
            || view.circuit != Circuit::Closed
    }

    /// Reports the outcome to the shared guard ([`Core::guard_needed`] said it must).
    async fn tell_guard(&self, lane: &Lane, a: &Attempt, out: &AttemptOutcome) {
        let hook = &a.req.target.webhook;
        if out.response_code == Some(410) {
            // Boxed (here and below): rare, and inline its 15 KiB would be in the box every
            // failure's report allocates.
            Box::pin(self.disable(lane, "gone", "webhook disabled: the endpoint answered 410 Gone")).await;
            return;
        }
        if let Some(wait) = out.retry_after {
            let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
            lane.pause_until(now_ms().saturating_add(wait_ms));
        }
        let verdict = verdict(out);
        let error = match (&out.error, out.response_code) {
            (Some(e), _) => e.clone(),
            (None, Some(code)) => format!("HTTP {code}"),
            (None, None) => String::new(),
        };
        let Some(r) = self
            .guard
            .report(hook.id, verdict, &error, out.retry_after, a.probe)
            .await
        else {
            return;
        };
        lane.set_view(r.view);
        if let Some(to) = r.transition {
            self.ctx
                .metrics
                .circuit_transitions
                .get_or_create(&[("to", to)])
                .inc();
            match to {
                "open" => tracing::warn!(webhook_id = %hook.id, consecutive_failures = r.view.fails,
                    last_error = %error, "circuit opened: attempts to this webhook are deferred"),
                _ => tracing::info!(webhook_id = %hook.id, "circuit closed"),
            }
        }
        if out.retry_after.is_some() {
            tracing::info!(webhook_id = %hook.id, retry_after_ms = out.retry_after.map(|d| d.as_millis() as u64),
                "the endpoint asked to wait: this webhook's attempts are deferred until then");
        }
        if r.disable {
            let after = self
                .ctx
                .config
                .disable_after
                .0
                .map(hookrelay_shared::duration::format_duration)
                .unwrap_or_default();
            let why = format!("webhook disabled: every attempt failed for {after}");
            Box::pin(self.disable(lane, "failing", &why)).await;
        }
    }

    async fn disable(&self, lane: &Lane, reason: &'static str, why: &str) {
        let webhook_id = lane.webhook_id;
        match hookrelay_shared::webhooks::auto_disable(&self.ctx.db, webhook_id, reason, why).await {
            Ok(true) => {
                lane.mark_disabled();
                self.ctx
                    .metrics
                    .webhooks_auto_disabled
                    .get_or_create(&[("reason", reason)])
                    .inc();
                tracing::warn!(%webhook_id, reason, "{why}");
                self.guard.clear(webhook_id).await;
                self.cache.remove(webhook_id);
            }
            // Another replica got there first.
            Ok(false) => lane.mark_disabled(),
            Err(e) => tracing::error!(error = %e, %webhook_id, reason, "disabling the webhook failed"),
        }
    }
}
