//! The lanes' decisions, without a network.
use hookrelay_shared::webhooks::{Target, Webhook};
use time::OffsetDateTime;

use super::*;
use crate::guard::Circuit;

fn attempt(cap: u32, trigger: Trigger) -> Attempt {
    let now = OffsetDateTime::now_utc();
    let webhook = Webhook {
        id: Uuid::nil(),
        max_in_flight: cap,
        created_at: now,
        updated_at: now,
        ..hookrelay_shared::testing::webhook("*")
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
        seq: None,
    };
    Attempt::new(req, None)
}

/// Starts one attempt of the lane and ends it after `took`, so the lane knows its pace.
fn answered(lane: &Lane, permits: &Slots, cap: u32, took: Duration) {
    assert_eq!(
        lane.offer(attempt(cap, Trigger::Initial), permits, 0).start.len(),
        1
    );
    let _ = lane.release(took, Some(true), permits, 0, false);
}

/// Marks the lane's endpoint as one that answers (its last request got an HTTP status).
fn known(lane: &Lane) {
    lane.lock().answering = true;
}

#[test]
fn a_lane_starts_up_to_its_cap_queues_behind_it_and_moves_on_when_one_ends() {
    let lanes = Lanes::default();
    let lane = lanes.get(Uuid::nil());
    known(&lane);
    let permits = Slots::new(100);
    let mut started = Vec::new();
    for _ in 0..3 {
        let m = lane.offer(attempt(2, Trigger::Initial), &permits, 0);
        started.extend(m.start);
        assert!(m.defer.is_empty());
    }
    assert_eq!(started.len(), 2, "two start, the third waits");
    assert_eq!(lane.in_flight(), 2);
    let m = lane.release(Duration::from_millis(5), Some(true), &permits, 0, false);
    assert_eq!(m.start.len(), 1, "the waiting one starts when a slot frees");
    assert_eq!(lane.in_flight(), 2);
}

#[test]
fn an_endpoint_that_has_not_answered_gets_one_request_at_a_time() {
    let lanes = Lanes::default();
    let lane = lanes.get(Uuid::nil());
    let permits = Slots::new(100);
    let cap = 4;
    let mut started = 0;
    for _ in 0..6 {
        let m = lane.offer(attempt(cap, Trigger::Initial), &permits, 0);
        assert!(m.defer.is_empty(), "queued during its first second");
        started += m.start.len();
    }
    assert_eq!(started, 1, "a new endpoint: one request until it answers");
    // It timed out (no answer): still one at a time.
    let m = lane.release(Duration::from_secs(10), Some(false), &permits, 0, false);
    assert_eq!(m.start.len(), 1, "the next one, alone");
    assert_eq!(lane.in_flight(), 1);
    // It answered: up to its cap.
    let m = lane.release(Duration::from_millis(5), Some(true), &permits, 0, false);
    assert_eq!(m.start.len(), 4, "its cap in flight once it answers");
    assert_eq!(lane.in_flight(), 4);
    // One of those gets no answer: nothing new starts until one answers again.
    let m = lane.release(Duration::from_secs(10), Some(false), &permits, 0, false);
    assert!(m.start.is_empty() && lane.in_flight() == 3);
    // A manual attempt is not held to one.
    let m = lane.offer(attempt(cap, Trigger::Manual), &permits, 0);
    assert_eq!(m.start.len(), 1, "an admin's retry goes at once");
}

#[test]
fn out_of_process_slots_a_lane_waits_and_a_freed_slot_starts_it() {
    let lanes = Lanes::default();
    let lane = lanes.get(Uuid::nil());
    known(&lane);
    // No process slot free (they are all held, say, by tasks handing records over).
    let permits = Slots::new(1);
    let held = permits.hold(1);
    let m = lane.offer(attempt(32, Trigger::Initial), &permits, 1_000);
    assert!(
        m.start.is_empty() && m.defer.is_empty(),
        "it waits, it is not deferred"
    );
    let m = lane.offer(attempt(32, Trigger::Initial), &permits, 1_000);
    assert!(m.start.is_empty() && m.defer.is_empty());
    assert_eq!(
        lanes.starved_len(),
        1,
        "the lane waits for a process slot, listed once"
    );
    let starved = lanes.next_starved().expect("listed");
    // Pumped while still out of slots: it lists itself again.
    assert!(starved.pump(&permits, 1_000).start.is_empty());
    assert_eq!(lanes.starved_len(), 1);
    let starved = lanes.next_starved().expect("listed");
    drop(held);
    let m = starved.pump(&permits, 1_000);
    assert_eq!(m.start.len(), 1, "a freed slot starts the first");
    assert_eq!(lanes.starved_len(), 1, "the second waits (one slot)");
}

/// Makes everything in the lane's queue look as if it had waited `secs`.
fn age_queue(lane: &Lane, secs: u64) {
    let mut st = lane.lock();
    let then = Instant::now() - Duration::from_secs(secs);
    for (_, t) in st.queue.iter_mut() {
        *t = then;
    }
}

#[test]
fn a_fast_lane_waiting_for_the_process_is_never_deferred_an_unknown_one_is() {
    let lanes = Lanes::default();
    let permits = Slots::new(1);
    let fast = lanes.get(Uuid::from_u128(1));
    answered(&fast, &permits, 32, Duration::from_millis(5));
    let unknown = lanes.get(Uuid::from_u128(2));
    let held = permits.hold(1);
    for lane in [&fast, &unknown] {
        let m = lane.offer(attempt(32, Trigger::Initial), &permits, 0);
        assert!(m.start.is_empty() && m.defer.is_empty(), "both wait for a slot");
        age_queue(lane, 2);
    }
    assert_eq!(
        lanes.backlog(),
        1,
        "the fast lane's wait is the process's backlog"
    );
    assert!(
        fast.sweep(0).defer.is_empty(),
        "the process, not its endpoint, holds it back: it waits (intake pauses meanwhile)"
    );
    let m = unknown.sweep(0);
    assert_eq!(
        m.defer.len(),
        1,
        "a lane with no answer yet keeps its queue at most a second"
    );
    drop(held);
    let m = fast.pump(&permits, 0);
    assert_eq!(m.start.len(), 1);
}

#[test]
fn a_lane_whose_requests_hang_defers_by_how_long_they_have_hung() {
    let lanes = Lanes::new(Duration::from_secs(10));
    let lane = lanes.get(Uuid::nil());
    known(&lane);
    let permits = Slots::new(100);
    let cap = 2;
    for _ in 0..cap {
        assert_eq!(
            lane.offer(attempt(cap, Trigger::Initial), &permits, 0)
                .start
                .len(),
            1
        );
    }
    // Its requests went out 4 s ago and nothing has answered.
    lane.lock().progress_at = Some(Instant::now() - Duration::from_secs(4));
    let now_ms = 1_000_000;
    let mut times = Vec::new();
    for _ in 0..4 {
        let m = lane.offer(attempt(cap, Trigger::Initial), &permits, now_ms);
        assert_eq!(m.defer.len(), 1, "past its first second: deferred");
        times.push(m.defer[0].1 - now_ms);
    }
    assert!(
        (4_000..4_100).contains(&times[0]),
        "about as long as its requests have hung: {times:?}"
    );
    assert!(
        times.windows(2).all(|w| w[1] - w[0] >= 1_900),
        "each a slot's share of that later: {times:?}"
    );
    // Hanging for a minute: never longer than the request timeout (10 s).
    let other = lanes.get(Uuid::from_u128(9));
    known(&other);
    for _ in 0..cap {
        assert_eq!(
            other
                .offer(attempt(cap, Trigger::Initial), &permits, 0)
                .start
                .len(),
            1
        );
    }
    other.lock().progress_at = Some(Instant::now() - Duration::from_secs(60));
    let m = other.offer(attempt(cap, Trigger::Initial), &permits, now_ms);
    assert_eq!(m.defer[0].1 - now_ms, 10_000, "bounded by the request timeout");
}

#[test]
fn a_full_queue_defers_and_spreads_the_deferrals() {
    let lanes = Lanes::default();
    let lane = lanes.get(Uuid::nil());
    let permits = Slots::new(100);
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
    let permits = Slots::new(100);
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
    known(&lane);
    let permits = Slots::new(100);
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
    let m = lane.release(Duration::from_millis(5), Some(true), &permits, 0, false);
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
    let permits = Slots::new(1);
    let _held = permits.hold(1);
    let m = lane.offer(attempt(1, Trigger::Manual), &permits, 0);
    assert!(m.start.is_empty() && m.defer.is_empty(), "queued");
}

#[test]
fn a_pause_seen_when_a_request_ends_defers_what_waits() {
    let lanes = Lanes::default();
    let lane = lanes.get(Uuid::nil());
    let permits = Slots::new(100);
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
    let m = lane.release(Duration::from_millis(5), Some(true), &permits, 1_000, false);
    assert!(m.start.is_empty(), "nothing starts during the pause");
    assert_eq!(m.defer.len(), 3);
    assert!(m.defer.iter().all(|d| d.2 == "retry_after" && d.1 == 5_000));
}

#[test]
fn a_pause_known_here_survives_a_shared_view_without_it() {
    let lanes = Lanes::default();
    let lane = lanes.get(Uuid::nil());
    lane.pause_until(9_000);
    // The report did not reach Redis: the view read back has no pause.
    lane.set_view(View::default());
    assert_eq!(
        lane.view().0.pause_until_ms,
        9_000,
        "the pause holds until it ends"
    );
    lane.set_view(View {
        pause_until_ms: 12_000,
        ..View::default()
    });
    assert_eq!(lane.view().0.pause_until_ms, 12_000, "a longer shared pause wins");
}
