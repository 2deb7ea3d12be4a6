//! One lane per webhook: its requests in flight in this dispatcher (at most the webhook's
//! `max_in_flight`), a short queue of attempts waiting for one of its slots, and this replica's
//! view of the webhook's shared guard state. The lanes only decide; [`crate::Core`] starts,
//! queues or defers what they say.
//!
//! An attempt waits in a lane's queue only while the lane is moving: at most
//! [`MAX_QUEUE_WAIT`], and only behind a request in flight (whose end pumps the queue). Anything
//! else is deferred, so a stuck endpoint holds its own slots and nothing more.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard, atomic::Ordering},
    time::{Duration, Instant},
};

use hookrelay_shared::jobs::Trigger;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::{
    guard::{Circuit, View},
    send::AttemptRequest,
    slots::{Slot, Slots},
};

#[path = "lane_map.rs"]
mod map;
#[path = "lane_state.rs"]
mod state;

pub use map::Lanes;
use map::Shared;
use state::{FAST_REQUEST_MS, State, queue_cap};
pub use state::{MAX_QUEUE_WAIT, VIEW_TTL};

/// One attempt to make, with what admission needs to know.
pub struct Attempt {
    pub req: AttemptRequest,
    /// Told once the attempt (or its deferral) is committed: the job is acked then.
    pub done: Option<oneshot::Sender<()>>,
    /// It was deferred to a rate-limit slot that it now holds.
    pub slot_reserved: bool,
    /// The one attempt a half-open circuit lets through.
    pub probe: bool,
}

impl Attempt {
    pub fn new(req: AttemptRequest, done: Option<oneshot::Sender<()>>) -> Self {
        Self {
            req,
            done,
            slot_reserved: false,
            probe: false,
        }
    }

    /// Manual attempts are an admin's explicit request: never deferred, never rate limited.
    pub fn manual(&self) -> bool {
        self.req.trigger == Trigger::Manual
    }

    fn cap(&self) -> u32 {
        self.req.target.webhook.max_in_flight.max(1)
    }
}

/// What a lane decided for attempts.
#[derive(Default)]
pub struct Moves {
    pub start: Vec<(Attempt, Slot)>,
    /// With the time (Unix ms) to come back at and the reason.
    pub defer: Vec<(Attempt, i64, &'static str)>,
}

/// One webhook's lane.
pub struct Lane {
    pub webhook_id: Uuid,
    state: Mutex<State>,
    shared: Arc<Shared>,
    /// When this process disabled the webhook: attempts whose target is older are dropped.
    disabled_at: Mutex<Option<time::OffsetDateTime>>,
}

impl Lane {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lane only ever held counters: keep using them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This replica's view, and whether the caller should refresh it (it then owns the refresh).
    pub fn view(&self) -> (View, bool) {
        let mut st = self.lock();
        let stale = st.view_at.is_none_or(|t| t.elapsed() > VIEW_TTL);
        let refresh = stale && !st.refreshing;
        if refresh {
            st.refreshing = true;
        }
        (st.view, refresh)
    }

    /// Takes the shared state read from Redis. A Retry-After pause known here is kept even if
    /// the shared state does not have it (its report may not have reached Redis): a pause only
    /// ends with time.
    pub fn set_view(&self, view: View) {
        let mut st = self.lock();
        let paused = st.view.pause_until_ms;
        st.view = view;
        st.view.pause_until_ms = st.view.pause_until_ms.max(paused);
        st.view_at = Some(Instant::now());
        st.refreshing = false;
    }

    /// The endpoint asked to wait until `until_ms`: this replica holds the webhook's attempts
    /// at once, before (and whether or not) the shared state says so.
    pub fn pause_until(&self, until_ms: i64) {
        let mut st = self.lock();
        st.view.pause_until_ms = st.view.pause_until_ms.max(until_ms);
    }

    pub fn refresh_failed(&self) {
        let mut st = self.lock();
        st.refreshing = false;
        st.view_at = Some(Instant::now());
    }

    /// Notes that this process disabled the webhook now.
    pub fn mark_disabled(&self) {
        *self.disabled_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(time::OffsetDateTime::now_utc());
    }

    /// Whether an attempt for this target was overtaken by the webhook's disabling (a target
    /// re-enabled since carries a later `updated_at`).
    pub fn disabled_for(&self, a: &Attempt) -> bool {
        self.disabled_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| a.req.target.webhook.updated_at <= at)
    }

    /// In flight now (tests and metrics).
    pub fn in_flight(&self) -> u32 {
        self.lock().in_flight
    }

    /// Starts the attempt if a slot of this lane and of the process are free, else queues it
    /// (behind the lane's requests in flight, or for a process slot), else defers it.
    pub fn offer(&self, a: Attempt, permits: &Slots, now_ms: i64) -> Moves {
        let mut st = self.lock();
        let moves = self.offer_locked(&mut st, a, permits, now_ms);
        self.settle(&mut st);
        moves
    }

    /// Brings this lane's share of the process backlog up to date.
    fn settle(&self, st: &mut State) {
        let want = if st.counts(Instant::now()) {
            st.queue.len()
        } else {
            0
        };
        let backlog = &self.shared.backlog;
        if want > st.counted {
            backlog.fetch_add(want - st.counted, Ordering::Relaxed);
        } else if st.counted > want {
            backlog.fetch_sub(st.counted - want, Ordering::Relaxed);
        }
        st.counted = want;
    }

    /// Puts this lane in the list of lanes waiting for a process slot (once).
    fn starve(&self, st: &mut State) {
        if !st.starved {
            st.starved = true;
            self.shared
                .starved
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(self.webhook_id);
        }
    }

    /// Defers the attempts that waited in the queue too long (the sweeper calls it, so a lane
    /// with nothing arriving and nothing ending does not keep them).
    pub fn sweep(&self, now_ms: i64) -> Moves {
        let mut moves = Moves::default();
        let mut st = self.lock();
        self.expire(&mut st, now_ms, &mut moves);
        self.settle(&mut st);
        moves
    }

    /// A process slot for this lane's next request: from the untrusted share unless the lane
    /// answers fast ([`Slots`]).
    fn take_slot(st: &State, permits: &Slots) -> Option<Slot> {
        permits.try_take(st.counts(Instant::now()), st.in_flight == 0)
    }

    /// Defers the expired attempts at the front of the queue.
    fn expire(&self, st: &mut State, now_ms: i64, moves: &mut Moves) {
        let now = Instant::now();
        while st.queue.front().is_some_and(|(q, t)| st.expired(q, *t, now)) {
            tracing::trace!(webhook_id = %self.webhook_id, avg_ms = st.avg_ms, in_flight = st.in_flight,
                queued = st.queue.len(), "waited too long in the lane: deferred");
            if let Some((q, _)) = st.queue.pop_front() {
                let at = st.in_flight_deferral(now_ms, q.cap(), self.shared.timeout_ms);
                moves.defer.push((q, at, "in_flight"));
            }
        }
    }

    fn offer_locked(&self, st: &mut State, a: Attempt, permits: &Slots, now_ms: i64) -> Moves {
        let mut moves = Moves::default();
        let now = Instant::now();
        // What already waits goes first (it waits for a process slot that may be free now).
        if st.in_flight < st.cap(&a) && !st.queue.is_empty() {
            self.drain(st, permits, now_ms, &mut moves);
        }
        let below_cap = st.in_flight < st.cap(&a);
        if below_cap
            && st.queue.is_empty()
            && let Some(p) = Self::take_slot(st, permits)
        {
            st.in_flight += 1;
            if st.progress_at.is_none() {
                st.progress_at = Some(now);
            }
            moves.start.push((a, p));
            return moves;
        }
        // Stale attempts at the front are deferred now rather than when a slot frees.
        self.expire(st, now_ms, &mut moves);
        // Below its cap, the lane waits for a process slot, not for its endpoint.
        let waits_for_process = below_cap;
        let moving = st.in_flight > 0 || waits_for_process;
        // A lane none of whose requests has ended yet (a new endpoint, or one that never
        // answers) queues only during its first requests' first second; a fast lane queues up
        // to its bound (intake pauses on the total first); a slow one only what its pace sends
        // within MAX_QUEUE_WAIT.
        let soon = if st.avg_ms == 0.0 {
            st.progress_at
                .is_none_or(|t| now.saturating_duration_since(t) < MAX_QUEUE_WAIT)
        } else {
            st.avg_ms < FAST_REQUEST_MS || {
                let wait_ms = (st.queue.len() + 1) as f64 * st.avg_ms / f64::from(a.cap());
                wait_ms < MAX_QUEUE_WAIT.as_millis() as f64
            }
        };
        if a.manual() || (moving && soon && st.queue.len() < queue_cap(a.cap())) {
            st.queue.push_back((a, now));
            if waits_for_process {
                self.starve(st);
            }
        } else {
            tracing::trace!(webhook_id = %self.webhook_id, avg_ms = st.avg_ms, in_flight = st.in_flight,
                queued = st.queue.len(), soon, moving, "lane full: deferred");
            let at = st.in_flight_deferral(now_ms, a.cap(), self.shared.timeout_ms);
            moves.defer.push((a, at, "in_flight"));
        }
        moves
    }

    /// A request of this lane ended after `took`, its endpoint having `answered` (any HTTP
    /// status) or not (a timeout, a connection error; `None`: no request was made): frees its
    /// slot and moves the queue on.
    pub fn release(
        &self,
        took: Duration,
        answered: Option<bool>,
        permits: &Slots,
        now_ms: i64,
        stopping: bool,
    ) -> Moves {
        let mut st = self.lock();
        if let Some(answered) = answered {
            st.answering = answered;
        }
        let moves = self.release_locked(&mut st, took, permits, now_ms, stopping);
        self.settle(&mut st);
        moves
    }

    /// A process slot may be free: starts what this lane's queue can (the process calls it for
    /// the lanes that were waiting for one).
    pub fn pump(&self, permits: &Slots, now_ms: i64) -> Moves {
        let mut moves = Moves::default();
        let mut st = self.lock();
        st.starved = false;
        self.drain(&mut st, permits, now_ms, &mut moves);
        self.settle(&mut st);
        moves
    }

    fn release_locked(
        &self,
        st: &mut State,
        took: Duration,
        permits: &Slots,
        now_ms: i64,
        stopping: bool,
    ) -> Moves {
        let mut moves = Moves::default();
        st.in_flight = st.in_flight.saturating_sub(1);
        st.progress_at = Some(Instant::now());
        let ms = took.as_secs_f64() * 1000.0;
        st.avg_ms = if st.avg_ms == 0.0 {
            ms
        } else {
            st.avg_ms * 0.9 + ms * 0.1
        };
        if stopping {
            // Not started during shutdown: leases (or the unacked jobs) bring them back.
            st.queue.clear();
            return moves;
        }
        // The request that just ended may have paused the webhook or opened its circuit.
        let held = if st.view.pause_until_ms > now_ms {
            Some(("retry_after", st.view.pause_until_ms))
        } else if st.view.circuit == Circuit::Open && st.view.open_until_ms > now_ms {
            Some(("circuit", st.view.open_until_ms))
        } else {
            None
        };
        if let Some((reason, until)) = held {
            let (manual, other): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut st.queue)
                .into_iter()
                .partition(|(a, _)| a.manual());
            st.queue = manual;
            for (a, _) in other {
                moves.defer.push((a, until, reason));
            }
        }
        self.drain(st, permits, now_ms, &mut moves);
        moves
    }

    /// Starts what waits in the queue while this lane and the process have slots; what waited
    /// too long is deferred; when the process is out of slots, the lane waits for one.
    fn drain(&self, st: &mut State, permits: &Slots, now_ms: i64, moves: &mut Moves) {
        let now = Instant::now();
        while let Some((a, t)) = st.queue.pop_front() {
            if st.expired(&a, t, now) {
                let at = st.in_flight_deferral(now_ms, a.cap(), self.shared.timeout_ms);
                moves.defer.push((a, at, "in_flight"));
                continue;
            }
            if st.in_flight >= st.cap(&a) {
                st.queue.push_front((a, t));
                break;
            }
            match Self::take_slot(st, permits) {
                Some(p) => {
                    st.in_flight += 1;
                    if st.progress_at.is_none() {
                        st.progress_at = Some(now);
                    }
                    moves.start.push((a, p));
                }
                None => {
                    st.queue.push_front((a, t));
                    self.starve(st);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "lanes_tests.rs"]
mod tests;
