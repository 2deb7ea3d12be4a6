//! The process's request slots (`HOOKRELAY_DISPATCH_CONCURRENCY`), and how endpoints not known
//! to be fast are kept from holding them.
//!
//! A lane is *trusted* while its endpoint answers fast ([`crate::lanes`] decides); it takes a
//! slot and nothing else. Any other lane — a new endpoint with no answer yet, a slow one, one
//! whose requests hang — is held three ways:
//!
//! - **A probe**: a lane with nothing in flight may start one request, as long as an eighth of
//!   the slots stays free. That is how a new healthy endpoint gets its first answer (and
//!   becomes trusted) while black holes hold everything else.
//! - **The untrusted pool**: its other requests also need a permit of this pool (three quarters
//!   of the slots), and start only while the hanging budget has room.
//! - **Hanging**: a request that has had no answer for [`HANG`] gives its slot back and waits in
//!   a budget of its own (one place per slot; probes, at most one per webhook, in a larger one).
//!
//! So however many black holes a process meets, they hold its slots for a quarter second, at
//! least an eighth of the slots stay for endpoints known to answer, and a new healthy endpoint
//! gets its probe through. Each webhook's `max_in_flight` counts all of its requests, hanging
//! or not.

use std::{sync::Arc, time::Duration};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a request may hold a slot while its endpoint says nothing.
pub const HANG: Duration = Duration::from_millis(250);
/// Probes that may hang at once (one per webhook at most): they are cheap (a socket and a
/// request each), and a new endpoint must not wait behind them.
pub const HANGING_PROBES: usize = 4_096;

/// The slots of one process.
#[derive(Clone)]
pub struct Slots {
    all: Arc<Semaphore>,
    untrusted: Arc<Semaphore>,
    /// Untrusted requests that hung past [`HANG`] and gave their slot back.
    hanging: Arc<Semaphore>,
    /// Probes that did.
    hanging_probes: Arc<Semaphore>,
    /// Slots a probe may not take: an eighth, kept for trusted lanes.
    reserve: usize,
}

/// One request's slot: held while the request is made and its record handed over.
pub struct Slot {
    probe: bool,
    _all: Option<OwnedSemaphorePermit>,
    _untrusted: Option<OwnedSemaphorePermit>,
    _hanging: Option<OwnedSemaphorePermit>,
}

impl Slot {
    fn new(probe: bool, all: OwnedSemaphorePermit, untrusted: Option<OwnedSemaphorePermit>) -> Self {
        Self {
            probe,
            _all: Some(all),
            _untrusted: untrusted,
            _hanging: None,
        }
    }

    /// The request has hung for [`HANG`]: trades its slot for a place in the hanging budget if
    /// there is one (true: a slot was freed).
    pub fn hang(&mut self, slots: &Slots) -> bool {
        if self._hanging.is_some() {
            return false;
        }
        let budget = if self.probe {
            &slots.hanging_probes
        } else {
            &slots.hanging
        };
        match budget.clone().try_acquire_owned() {
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
    /// `n` slots (at least one).
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        Self {
            all: Arc::new(Semaphore::new(n)),
            untrusted: Arc::new(Semaphore::new((n / 4).saturating_mul(3).max(1))),
            hanging: Arc::new(Semaphore::new(n)),
            hanging_probes: Arc::new(Semaphore::new(HANGING_PROBES)),
            reserve: n / 8,
        }
    }

    /// Slots free now.
    pub fn available(&self) -> usize {
        self.all.available_permits()
    }

    /// A slot for a lane that is `trusted` (answers fast) or not; `alone` when the lane has
    /// nothing in flight (its request is then a probe).
    pub fn try_take(&self, trusted: bool, alone: bool) -> Option<Slot> {
        if trusted {
            let all = self.all.clone().try_acquire_owned().ok()?;
            return Some(Slot::new(false, all, None));
        }
        if alone {
            if self.all.available_permits() <= self.reserve {
                return None;
            }
            let all = self.all.clone().try_acquire_owned().ok()?;
            return Some(Slot::new(true, all, None));
        }
        if self.hanging.available_permits() == 0 {
            return None;
        }
        let untrusted = self.untrusted.clone().try_acquire_owned().ok()?;
        let all = self.all.clone().try_acquire_owned().ok()?;
        Some(Slot::new(false, all, Some(untrusted)))
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
    fn untrusted_lanes_hold_at_most_three_quarters_and_a_probe_still_goes() {
        let slots = Slots::new(8);
        let held: Vec<Slot> = std::iter::from_fn(|| slots.try_take(false, false)).collect();
        assert_eq!(held.len(), 6, "three quarters of 8");
        let probe = slots.try_take(false, true);
        assert!(probe.is_some(), "a lane with nothing in flight still starts one");
        assert!(slots.try_take(false, true).is_none(), "the last eighth is kept");
        let trusted = slots.try_take(true, false);
        assert!(trusted.is_some(), "the last slot is a trusted lane's");
        assert!(slots.try_take(true, false).is_none(), "all 8 taken");
        drop(held);
        assert_eq!(slots.available(), 6);
        drop((probe, trusted));
        assert_eq!(slots.available(), 8);
    }

    #[test]
    fn probes_leave_an_eighth_for_trusted_lanes() {
        let slots = Slots::new(16);
        // Many new lanes at once, each with nothing in flight.
        let held: Vec<Slot> = std::iter::from_fn(|| slots.try_take(false, true)).collect();
        assert_eq!(held.len(), 14, "2 kept");
        let trusted: Vec<Slot> = std::iter::from_fn(|| slots.try_take(true, false)).collect();
        assert_eq!(trusted.len(), 2, "the eighth kept for lanes that answer fast");
    }

    #[test]
    fn a_hanging_request_gives_its_slot_back_while_the_budget_lasts() {
        let slots = Slots::new(2);
        let mut a = slots.try_take(false, false).expect("a");
        let mut b = slots.try_take(true, false).expect("b");
        assert_eq!(slots.available(), 0);
        assert!(a.hang(&slots) && b.hang(&slots));
        assert!(!a.hang(&slots), "once");
        assert_eq!(slots.available(), 2, "both slots free again");
        assert!(
            slots.try_take(false, false).is_none(),
            "the hanging budget (one per slot) is full: no untrusted request starts"
        );
        let mut c = slots.try_take(true, false).expect("c");
        assert!(!c.hang(&slots), "full: it keeps its slot");
        let mut p = slots.try_take(false, true).expect("a probe");
        assert!(p.hang(&slots), "probes hang in a budget of their own");
        drop(a);
        assert!(c.hang(&slots));
        assert_eq!(slots.available(), 2);
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
