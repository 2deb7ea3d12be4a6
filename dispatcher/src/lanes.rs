//! One lane per webhook: its requests in flight in this dispatcher (at most the webhook's
//! `max_in_flight`), a short queue of attempts waiting for one of its slots, and this replica's
//! view of the webhook's shared guard state. The lanes only decide; [`crate::Core`] starts,
//! queues or defers what they say.
//!
//! An attempt waits in a lane's queue only while the lane is moving: at most
//! [`MAX_QUEUE_WAIT`], and only behind a request in flight (whose end pumps the queue). Anything
//! else is deferred, so a stuck endpoint holds its own slots and nothing more.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use hookrelay_shared::jobs::Trigger;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use uuid::Uuid;

use crate::{
    guard::{Circuit, View},
    send::AttemptRequest,
};

/// The longest an attempt waits in a lane's queue before it is deferred instead.
pub const MAX_QUEUE_WAIT: Duration = Duration::from_secs(1);
/// How old this replica's view of a webhook's shared state may get before it is re-read.
pub const VIEW_TTL: Duration = Duration::from_secs(1);

/// The longest queue a lane keeps: enough for several intake batches at full speed.
fn queue_cap(max_in_flight: u32) -> usize {
    (max_in_flight as usize).saturating_mul(256).clamp(256, 16_384)
}

/// A lane whose requests take less than this on average queues up to its bound.
const FAST_REQUEST_MS: f64 = 250.0;
/// A lane none of whose requests ended for this long is not moving its queue.
const STALLED: Duration = Duration::from_millis(250);

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
    pub start: Vec<(Attempt, OwnedSemaphorePermit)>,
    /// With the time (Unix ms) to come back at and the reason.
    pub defer: Vec<(Attempt, i64, &'static str)>,
}

struct State {
    in_flight: u32,
    queue: VecDeque<(Attempt, Instant)>,
    view: View,
    view_at: Option<Instant>,
    refreshing: bool,
    /// Moving average of this webhook's request duration (ms).
    avg_ms: f64,
    /// The latest time an `in_flight` deferral was given, so the next is spread after it.
    horizon_ms: i64,
    /// When a request of this lane last ended (or, before any has, when the first started).
    progress_at: Option<Instant>,
    /// How many of this lane's queued attempts count in the process's backlog.
    counted: usize,
}

impl State {
    /// Whether this lane's queue is the process's backlog rather than the endpoint's own: its
    /// requests are fast and one ended just now. A lane that stalls (no answer yet, or none
    /// lately) keeps its queue to itself, so it never pauses intake for everyone; its queue is
    /// bounded by its own rules and deferred after [`MAX_QUEUE_WAIT`].
    fn counts(&self, now: Instant) -> bool {
        self.avg_ms > 0.0
            && self.avg_ms < FAST_REQUEST_MS
            && self
                .progress_at
                .is_some_and(|t| now.saturating_duration_since(t) < STALLED)
    }
}

/// One webhook's lane.
pub struct Lane {
    pub webhook_id: Uuid,
    state: Mutex<State>,
    /// Attempts queued in every lane of the process.
    backlog: Arc<std::sync::atomic::AtomicUsize>,
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

    pub fn set_view(&self, view: View) {
        let mut st = self.lock();
        st.view = view;
        st.view_at = Some(Instant::now());
        st.refreshing = false;
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
    /// behind the requests in flight, else defers it.
    pub fn offer(&self, a: Attempt, permits: &Arc<Semaphore>, now_ms: i64) -> Moves {
        let mut st = self.lock();
        let moves = self.offer_locked(&mut st, a, permits, now_ms);
        self.settle(&mut st);
        moves
    }

    /// Brings this lane's share of the process backlog up to date.
    fn settle(&self, st: &mut State) {
        use std::sync::atomic::Ordering;
        let want = if st.counts(Instant::now()) {
            st.queue.len()
        } else {
            0
        };
        if want > st.counted {
            self.backlog.fetch_add(want - st.counted, Ordering::Relaxed);
        } else if st.counted > want {
            self.backlog.fetch_sub(st.counted - want, Ordering::Relaxed);
        }
        st.counted = want;
    }

    /// Defers the attempts that waited in the queue too long (the sweeper calls it, so a lane
    /// with nothing arriving and nothing ending does not keep them).
    pub fn sweep(&self, now_ms: i64) -> Moves {
        let mut moves = Moves::default();
        let mut st = self.lock();
        let now = Instant::now();
        while st
            .queue
            .front()
            .is_some_and(|(q, t)| !q.manual() && now.duration_since(*t) > MAX_QUEUE_WAIT)
        {
            if let Some((q, _)) = st.queue.pop_front() {
                let at = st.in_flight_deferral(now_ms, q.cap());
                moves.defer.push((q, at, "in_flight"));
            }
        }
        self.settle(&mut st);
        moves
    }

    fn offer_locked(&self, st: &mut State, a: Attempt, permits: &Arc<Semaphore>, now_ms: i64) -> Moves {
        let mut moves = Moves::default();
        let now = Instant::now();
        if st.in_flight < a.cap()
            && let Ok(p) = permits.clone().try_acquire_owned()
        {
            st.in_flight += 1;
            if st.progress_at.is_none() {
                st.progress_at = Some(now);
            }
            moves.start.push((a, p));
            return moves;
        }
        // Stale attempts at the front are deferred now rather than when a slot frees.
        while st
            .queue
            .front()
            .is_some_and(|(q, t)| !q.manual() && now.duration_since(*t) > MAX_QUEUE_WAIT)
        {
            if let Some((q, _)) = st.queue.pop_front() {
                let at = st.in_flight_deferral(now_ms, q.cap());
                moves.defer.push((q, at, "in_flight"));
            }
        }
        let moving = st.in_flight > 0;
        // A lane none of whose requests has ended yet (a new endpoint, or one that never
        // answers) queues only during its first requests' first second; a fast lane queues up to its bound (intake
        // pauses on the total first); a slow one only what its pace sends within MAX_QUEUE_WAIT.
        let soon = if st.avg_ms == 0.0 {
            st.progress_at
                .is_some_and(|t| now.saturating_duration_since(t) < MAX_QUEUE_WAIT)
        } else {
            st.avg_ms < FAST_REQUEST_MS || {
                let wait_ms = (st.queue.len() + 1) as f64 * st.avg_ms / f64::from(a.cap());
                wait_ms < MAX_QUEUE_WAIT.as_millis() as f64
            }
        };
        if a.manual() || (moving && soon && st.queue.len() < queue_cap(a.cap())) {
            st.queue.push_back((a, now));
        } else {
            let at = st.in_flight_deferral(now_ms, a.cap());
            moves.defer.push((a, at, "in_flight"));
        }
        moves
    }

    /// A request of this lane ended after `took`: frees its slot and moves the queue on.
    pub fn release(&self, took: Duration, permits: &Arc<Semaphore>, now_ms: i64, stopping: bool) -> Moves {
        let mut st = self.lock();
        let moves = Self::release_locked(&mut st, took, permits, now_ms, stopping);
        self.settle(&mut st);
        moves
    }

    fn release_locked(
        st: &mut State,
        took: Duration,
        permits: &Arc<Semaphore>,
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
        let now = Instant::now();
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
        while let Some((a, t)) = st.queue.pop_front() {
            if !a.manual() && now.duration_since(t) > MAX_QUEUE_WAIT {
                let at = st.in_flight_deferral(now_ms, a.cap());
                moves.defer.push((a, at, "in_flight"));
                continue;
            }
            if st.in_flight >= a.cap() {
                st.queue.push_front((a, t));
                break;
            }
            match permits.clone().try_acquire_owned() {
                Ok(p) => {
                    st.in_flight += 1;
                    moves.start.push((a, p));
                }
                Err(_) if st.in_flight > 0 || a.manual() => {
                    st.queue.push_front((a, t));
                    break;
                }
                Err(_) => {
                    let at = st.in_flight_deferral(now_ms, a.cap());
                    moves.defer.push((a, at, "in_flight"));
                }
            }
        }
        moves
    }
}

impl State {
    /// When an attempt that found no free slot should come back: after about one request's
    /// time, and each one later than the last by a slot's share of it, so a backlog returns
    /// spread at the rate the endpoint takes it rather than all at once.
    fn in_flight_deferral(&mut self, now_ms: i64, cap: u32) -> i64 {
        let est = self.avg_ms.clamp(50.0, 60_000.0);
        let at = (now_ms + est as i64).max(self.horizon_ms);
        let at = at.min(now_ms + 600_000);
        self.horizon_ms = at + (est / f64::from(cap.max(1))) as i64;
        at
    }
}

/// Every lane of this dispatcher.
#[derive(Default)]
pub struct Lanes {
    map: Mutex<HashMap<Uuid, Arc<Lane>>>,
    backlog: Arc<std::sync::atomic::AtomicUsize>,
}

impl Lanes {
    pub fn get(&self, webhook_id: Uuid) -> Arc<Lane> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(webhook_id)
            .or_insert_with(|| {
                Arc::new(Lane {
                    webhook_id,
                    backlog: self.backlog.clone(),
                    disabled_at: Mutex::new(None),
                    state: Mutex::new(State {
                        in_flight: 0,
                        queue: VecDeque::new(),
                        view: View::default(),
                        view_at: None,
                        refreshing: false,
                        avg_ms: 0.0,
                        horizon_ms: 0,
                        progress_at: None,
                        counted: 0,
                    }),
                })
            })
            .clone()
    }

    /// Attempts waiting in all queues.
    pub fn backlog(&self) -> usize {
        self.backlog.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every lane (the sweeper walks them).
    pub fn all(&self) -> Vec<Arc<Lane>> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The lane of a webhook if it has one (tests).
    pub fn find(&self, webhook_id: Uuid) -> Option<Arc<Lane>> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&webhook_id)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use hookrelay_shared::webhooks::{Target, Webhook};
    use time::OffsetDateTime;

    use super::*;
    use crate::guard::Circuit;

    fn attempt(cap: u32, trigger: Trigger) -> Attempt {
        let now = OffsetDateTime::now_utc();
        let webhook = Webhook {
            id: Uuid::nil(),
            name: "w".into(),
            url: "http://127.0.0.1:9/".into(),
            event_types: vec!["*".into()],
            enabled: true,
            retry_policy: None,
            max_in_flight: cap,
            rate_limit: None,
            disabled_reason: None,
            disabled_at: None,
            filter: None,
            headers: Default::default(),
            signature_scheme: Default::default(),
            public_key: None,
            created_at: now,
            updated_at: now,
        };
        let req = AttemptRequest {
            delivery_id: Uuid::now_v7(),
            event_id: "evt".into(),
            event_received_at: now,
            event_type: "a.b".into(),
            body: Arc::from("{}"),
            target: Arc::new(Target {
                webhook,
                keys: Default::default(),
            }),
            attempt: 1,
            trigger,
            delivery_created_at: now,
        };
        Attempt::new(req, None)
    }

    /// Starts one attempt of the lane and ends it after `took`, so the lane knows its pace.
    fn answered(lane: &Lane, permits: &Arc<Semaphore>, cap: u32, took: Duration) {
        assert_eq!(
            lane.offer(attempt(cap, Trigger::Initial), permits, 0).start.len(),
            1
        );
        let _ = lane.release(took, permits, 0, false);
    }

    #[test]
    fn a_lane_starts_up_to_its_cap_queues_behind_it_and_moves_on_when_one_ends() {
        let lanes = Lanes::default();
        let lane = lanes.get(Uuid::nil());
        let permits = Arc::new(Semaphore::new(100));
        let mut started = Vec::new();
        for _ in 0..3 {
            let m = lane.offer(attempt(2, Trigger::Initial), &permits, 0);
            started.extend(m.start);
            assert!(m.defer.is_empty());
        }
        assert_eq!(started.len(), 2, "two start, the third waits");
        assert_eq!(lane.in_flight(), 2);
        let m = lane.release(Duration::from_millis(5), &permits, 0, false);
        assert_eq!(m.start.len(), 1, "the waiting one starts when a slot frees");
        assert_eq!(lane.in_flight(), 2);
    }

    #[test]
    fn without_a_request_in_flight_nothing_waits_it_is_deferred() {
        let lanes = Lanes::default();
        let lane = lanes.get(Uuid::nil());
        // No process slot free: the lane has nothing in flight to move a queue on.
        let permits = Arc::new(Semaphore::new(0));
        let m = lane.offer(attempt(32, Trigger::Initial), &permits, 1_000);
        assert!(m.start.is_empty());
        assert_eq!(m.defer.len(), 1);
        assert_eq!(m.defer[0].2, "in_flight");
        assert!(m.defer[0].1 > 1_000, "deferred to later");
    }

    #[test]
    fn a_full_queue_defers_and_spreads_the_deferrals() {
        let lanes = Lanes::default();
        let lane = lanes.get(Uuid::nil());
        let permits = Arc::new(Semaphore::new(100));
        let cap = 1;
        // One fast answer: the lane is known to move quickly, so it queues up to its bound.
        answered(&lane, &permits, cap, Duration::from_millis(5));
        let first = lane.offer(attempt(cap, Trigger::Initial), &permits, 0);
        assert_eq!(first.start.len(), 1);
        let mut deferred = Vec::new();
        for _ in 0..(queue_cap(cap) + 10) {
            deferred.extend(lane.offer(attempt(cap, Trigger::Initial), &permits, 0).defer);
        }
        assert_eq!(
            deferred.len(),
            10,
            "beyond the queue's bound, attempts are deferred"
        );
        let times: Vec<i64> = deferred.iter().map(|d| d.1).collect();
        assert!(
            times.windows(2).all(|w| w[1] > w[0]),
            "each later than the last: {times:?}"
        );
    }

    #[test]
    fn a_slow_lane_queues_only_what_it_sends_within_a_second() {
        let lanes = Lanes::default();
        let lane = lanes.get(Uuid::nil());
        let permits = Arc::new(Semaphore::new(100));
        // Two requests that took 2 s each: the lane's pace is known to be slow.
        for _ in 0..2 {
            answered(&lane, &permits, 1, Duration::from_secs(2));
        }
        assert_eq!(
            lane.offer(attempt(1, Trigger::Initial), &permits, 0).start.len(),
            1
        );
        let m = lane.offer(attempt(1, Trigger::Initial), &permits, 0);
        assert_eq!(m.defer.len(), 1, "it would wait 2 s: deferred at once");
        assert_eq!(lanes.backlog(), 0);
    }

    #[test]
    fn only_a_fast_moving_lanes_queue_counts_in_the_backlog() {
        let lanes = Lanes::default();
        let lane = lanes.get(Uuid::nil());
        let permits = Arc::new(Semaphore::new(100));
        let cap = 4;
        let mut started = Vec::new();
        for _ in 0..20 {
            let m = lane.offer(attempt(cap, Trigger::Initial), &permits, 0);
            assert!(m.defer.is_empty(), "queued during its first second");
            started.extend(m.start);
        }
        assert_eq!(started.len(), 4, "its cap in flight");
        assert_eq!(
            lanes.backlog(),
            0,
            "no answer yet: its queue is its own, it does not pause intake"
        );
        let m = lane.release(Duration::from_millis(5), &permits, 0, false);
        assert_eq!(m.start.len(), 1);
        assert_eq!(
            lanes.backlog(),
            15,
            "answering fast: its queue is the process's backlog"
        );
        let _ = lane.sweep(0);
        assert_eq!(lanes.backlog(), 15);
    }

    #[test]
    fn manual_attempts_wait_rather_than_being_deferred() {
        let lanes = Lanes::default();
        let lane = lanes.get(Uuid::nil());
        let permits = Arc::new(Semaphore::new(0));
        let m = lane.offer(attempt(1, Trigger::Manual), &permits, 0);
        assert!(m.start.is_empty() && m.defer.is_empty(), "queued");
    }

    #[test]
    fn a_pause_seen_when_a_request_ends_defers_what_waits() {
        let lanes = Lanes::default();
        let lane = lanes.get(Uuid::nil());
        let permits = Arc::new(Semaphore::new(100));
        // One fast answer first, so the lane queues more than its cap.
        answered(&lane, &permits, 1, Duration::from_millis(5));
        assert_eq!(
            lane.offer(attempt(1, Trigger::Initial), &permits, 0).start.len(),
            1
        );
        for _ in 0..3 {
            assert!(
                lane.offer(attempt(1, Trigger::Initial), &permits, 0)
                    .defer
                    .is_empty()
            );
        }
        lane.set_view(View {
            circuit: Circuit::Closed,
            fails: 0,
            open_until_ms: 0,
            pause_until_ms: 5_000,
        });
        let m = lane.release(Duration::from_millis(5), &permits, 1_000, false);
        assert!(m.start.is_empty(), "nothing starts during the pause");
        assert_eq!(m.defer.len(), 3);
        assert!(m.defer.iter().all(|d| d.2 == "retry_after" && d.1 == 5_000));
    }
}
