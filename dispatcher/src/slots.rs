//! The process's request slots (`HOOKRELAY_DISPATCH_CONCURRENCY`), and the share of them that
//! endpoints not known to be fast may hold.
//!
//! A lane is *trusted* while its endpoint answers fast ([`crate::lanes`] decides). Any other
//! lane — a new endpoint with no answer yet, a slow one, one whose requests hang — needs a
//! second permit from the untrusted pool, three quarters of the slots. A lane with nothing in
//! flight may start one request without the untrusted pool, as long as an eighth of the slots
//! stays free: that is how a new healthy endpoint gets its first answer, and becomes trusted,
//! while black holes hold the pool. So however many black holes a process meets, at least an
//! eighth of its slots stay for the endpoints known to answer, and a healthy endpoint is never
//! stuck behind them.

use std::{sync::Arc, time::Duration};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The slots of one process.
#[derive(Clone)]
pub struct Slots {
    all: Arc<Semaphore>,
    untrusted: Arc<Semaphore>,
    /// Requests that hung past [`HANG`] and gave their slot back (as many as there are slots).
    hanging: Arc<Semaphore>,
    /// Slots a lone untrusted request may not take: an eighth, kept for trusted lanes however
    /// many lanes are new at once.
    reserve: usize,
}

/// How long a request may hold a slot while its endpoint says nothing. After that it waits
/// without one (in the hanging budget, if there is room), so endpoints that hang — however
/// many — hold the process's slots for a second, not for the request timeout. Its webhook's
/// `max_in_flight` still counts it.
pub const HANG: Duration = Duration::from_millis(250);

/// One request's slot: held while the request is made and its record handed over.
pub struct Slot {
    _all: Option<OwnedSemaphorePermit>,
    _untrusted: Option<OwnedSemaphorePermit>,
    _hanging: Option<OwnedSemaphorePermit>,
}

impl Slot {
    /// The request has hung for [`HANG`]: trades its slot for a place in the hanging budget if
    /// there is one (true: a slot was freed).
    pub fn hang(&mut self, slots: &Slots) -> bool {
        match slots.hanging.clone().try_acquire_owned() {
            Ok(h) => {
                self._hanging = Some(h);
                self._all = None;
                self._untrusted = None;
                true
            }
            Err(_) => false,
        }
    }
}

impl Slots {
    /// `n` slots (at least one), three quarters of them open to untrusted lanes.
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        Self {
            all: Arc::new(Semaphore::new(n)),
            untrusted: Arc::new(Semaphore::new((n / 4).saturating_mul(3).max(1))),
            hanging: Arc::new(Semaphore::new(n)),
            reserve: n / 8,
        }
    }

    /// Slots free now.
    pub fn available(&self) -> usize {
        self.all.available_permits()
    }

    /// A slot for a lane that is `trusted` (answers fast) or not; `alone` when the lane has
    /// nothing in flight (it may then go without the untrusted pool).
    pub fn try_take(&self, trusted: bool, alone: bool) -> Option<Slot> {
        if trusted {
            let all = self.all.clone().try_acquire_owned().ok()?;
            return Some(Slot {
                _all: Some(all),
                _untrusted: None,
                _hanging: None,
            });
        }
        let untrusted = self.untrusted.clone().try_acquire_owned().ok();
        if untrusted.is_none() && !(alone && self.all.available_permits() > self.reserve) {
            return None;
        }
        let all = self.all.clone().try_acquire_owned().ok()?;
        Some(Slot {
            _all: Some(all),
            _untrusted: untrusted,
            _hanging: None,
        })
    }

    /// Holds `n` slots without a request (tests: a process whose slots are all taken).
    pub fn hold(&self, n: u32) -> Option<OwnedSemaphorePermit> {
        self.all.clone().try_acquire_many_owned(n).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_lanes_hold_at_most_three_quarters_and_a_lone_one_still_gets_one() {
        let slots = Slots::new(8);
        let held: Vec<Slot> = std::iter::from_fn(|| slots.try_take(false, false)).collect();
        assert_eq!(held.len(), 6, "three quarters of 8");
        assert!(slots.try_take(false, false).is_none());
        let lone = slots.try_take(false, true);
        assert!(lone.is_some(), "a lane with nothing in flight still starts one");
        let trusted = slots.try_take(true, false);
        assert!(trusted.is_some(), "the last slot is a trusted lane's");
        assert!(slots.try_take(true, false).is_none(), "all 8 taken");
        drop(held);
        assert_eq!(slots.available(), 6);
        drop((lone, trusted));
        assert_eq!(slots.available(), 8);
    }

    #[test]
    fn lone_untrusted_requests_leave_an_eighth_for_trusted_lanes() {
        let slots = Slots::new(16);
        let mut held = Vec::new();
        // Many new lanes at once, each with nothing in flight.
        while let Some(s) = slots.try_take(false, true) {
            held.push(s);
        }
        assert_eq!(held.len(), 14, "12 from the untrusted pool, 2 alone; 2 kept");
        let trusted: Vec<Slot> = std::iter::from_fn(|| slots.try_take(true, false)).collect();
        assert_eq!(trusted.len(), 2, "the eighth kept for lanes that answer fast");
    }

    #[test]
    fn a_hanging_request_gives_its_slot_back_while_the_budget_lasts() {
        let slots = Slots::new(2);
        let mut a = slots.try_take(true, true).expect("a");
        let mut b = slots.try_take(true, true).expect("b");
        assert_eq!(slots.available(), 0);
        assert!(a.hang(&slots) && b.hang(&slots));
        assert_eq!(slots.available(), 2, "both slots free again");
        let mut c = slots.try_take(true, true).expect("c");
        let _d = slots.try_take(true, true).expect("d");
        assert!(!c.hang(&slots), "the hanging budget (one per slot) is full");
        assert_eq!(slots.available(), 0);
        drop(a);
        assert!(c.hang(&slots));
        assert_eq!(slots.available(), 1);
    }

    #[test]
    fn one_slot_is_still_a_working_process() {
        let slots = Slots::new(1);
        let s = slots.try_take(false, true);
        assert!(s.is_some());
        assert!(slots.try_take(true, true).is_none());
        drop(s);
        assert!(slots.try_take(true, false).is_some());
    }
}
